"""Where the lab lives: the mode a notebook runs in and the one work folder that carries shards,
checkpoints and timings from notebook 01 to 05.

Entry points: pick_mode(MODE), choose_home(...) (pure), home(), make_home, paths(mode), LabPaths.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from finegpt.errors import bad

MODES = ("smoke", "cpu", "full")
MODE_WORDS = {
    "smoke": "smoke: tiny and offline, for the tests (under a minute)",
    "cpu": "cpu: a laptop without a GPU, offline; every lesson for real in a few minutes",
    "full": "full: FineWeb on a CUDA GPU",
}
COLAB_CONTENT = Path("/content")
COLAB_DRIVE = Path("/content/drive/MyDrive")
LAB_NAME = "finegpt-lab"


def pick_mode(requested: str | None = None, cuda: bool | None = None, env: dict | None = None) -> str:
    """The parameters cell's MODE made a decision: as given, else $FINEGPT_MODE, else 'full' on a
    CUDA GPU and 'cpu' without one. 'full' without CUDA is refused, never quietly run on the CPU."""
    env = os.environ if env is None else env
    if cuda is None:
        import torch

        cuda = torch.cuda.is_available()
    mode = requested or env.get("FINEGPT_MODE") or ("full" if cuda else "cpu")
    if mode not in MODES:
        raise bad("MODE", mode, "is not a mode", "Use 'smoke', 'cpu' or 'full' in the parameters cell")
    if mode == "full" and not cuda:
        raise bad(
            "MODE",
            mode,
            "needs a CUDA GPU and this machine has none",
            "On Colab pick Runtime > Change runtime type > T4 GPU, or set MODE = 'cpu' to learn on the CPU",
        )
    return mode


def on_colab() -> bool:
    return "google.colab" in sys.modules


def choose_home(env: dict, colab: bool, drive_mounted: bool, user_home: Path) -> tuple[Path, str]:
    """(lab folder, a note to print). $FINEGPT_HOME wins; on Colab Google Drive when mounted, else
    /content with a plain warning; locally ~/finegpt-lab."""
    if env.get("FINEGPT_HOME"):
        return Path(env["FINEGPT_HOME"]).expanduser(), "set by FINEGPT_HOME"
    if colab and drive_mounted:
        return COLAB_DRIVE / LAB_NAME, "on your Google Drive: it outlives this runtime, so 02-05 find 01's files"
    if colab:
        return COLAB_CONTENT / LAB_NAME, (
            "WARNING: /content vanishes when this Colab runtime ends or disconnects, and with it the shards and "
            "checkpoints the next notebooks need. To keep them, accept the Google Drive prompt (rerun this cell), "
            "or run 01-05 in one runtime without a break"
        )
    return user_home / LAB_NAME, "this machine's lab folder (set FINEGPT_HOME to move it)"


def _mount_drive() -> bool:
    """Ask Colab to mount Google Drive (it shows a consent prompt); False when declined or impossible."""
    try:
        from google.colab import drive

        drive.mount(str(COLAB_DRIVE.parent))
    except Exception as e:  # declined, no browser, or not Colab: the caller prints the /content warning
        print(f"Google Drive not mounted ({type(e).__name__}: {e})")
        return False
    return COLAB_DRIVE.is_dir()


def home(drive: bool = True) -> Path:
    """The lab folder, created, with a line saying where it is and why. On Colab, drive=True offers
    to mount Google Drive first (Colab asks for consent)."""
    colab = on_colab()
    mounted = COLAB_DRIVE.is_dir()
    if colab and drive and not mounted and not os.environ.get("FINEGPT_HOME"):
        mounted = _mount_drive()
    path, note = choose_home(dict(os.environ), colab, mounted, Path.home())
    make_home(path, "FINEGPT_HOME" if os.environ.get("FINEGPT_HOME") else "lab folder")
    print(f"lab folder: {path} ({note})")
    return path


def make_home(path: Path, field: str) -> Path:
    """The lab folder, created; one line when it cannot be: a file in the way, a symlink to nowhere, a
    place this user cannot write."""
    fix = "Point FINEGPT_HOME at a folder you can write to, e.g. export FINEGPT_HOME=~/finegpt-lab"
    if path.is_symlink() and not path.exists():
        raise bad(field, str(path), f"is a symlink to {os.readlink(path)!r}, which does not exist", fix)
    if path.exists() and not path.is_dir():
        raise bad(field, str(path), "is a file, not a folder", fix)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise bad(field, str(path), f"cannot be created ({e.strerror or e})", fix) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise bad(field, str(path), "is read-only for this user", fix)
    return path


@dataclass(frozen=True)
class LabPaths:
    """One mode's files in the lab folder. Modes never share files: a cpu run cannot feed a full one."""

    root: Path
    mode: str

    @property
    def fineweb_source(self) -> Path:  # cpu / smoke: the FineWeb-schema parquet 01 writes from the plays
        return self.root / "fineweb-source" / "shakespeare.parquet"

    @property
    def fineweb(self) -> Path:  # 01: GPT-2 token shards of FineWeb (full) or of that parquet (cpu, smoke)
        return self.root / "fineweb-gpt2"

    @property
    def shakespeare(self) -> Path:  # 01: byte-token shards of the embedded plays
        return self.root / "shakespeare-bytes"

    @property
    def train_data(self) -> Path:  # what 04 trains on: FineWeb on a GPU, the plays as bytes on a CPU
        return self.fineweb if self.mode == "full" else self.shakespeare

    @property
    def probe(self) -> Path:  # 02: the small model whose attention it draws
        return self.root / "probe-02"

    @property
    def run(self) -> Path:  # 04: checkpoints and metrics.jsonl; 05 samples from here
        return self.root / "run-04"

    @property
    def timings(self) -> Path:  # each notebook's measured minutes
        return self.root / "timings.json"


def paths(mode: str, root: Path | None = None) -> LabPaths:
    """The mode's folder inside the lab folder (home() unless root is given)."""
    if mode not in MODES:
        raise bad("mode", mode, "is not a mode", "Use 'smoke', 'cpu' or 'full'")
    base = Path(root) if root is not None else home()
    make_home(base / mode, "lab folder")
    return LabPaths(base / mode, mode)
