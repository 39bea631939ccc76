"""The browser tests' plumbing: JupyterLab or Voila in a subprocess, and Debian's headless chromium
driven by Playwright (never a downloaded browser). Entry points: require_browser, jupyter_lab, voila,
open_browser, estimate_text.

    python tests/browser_support.py docs/img/calculator.png   # the README's screenshot of the calculator page
"""

from __future__ import annotations

import importlib.util
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SERVER_START_S = 90  # JupyterLab's first start on two busy cores


def missing_browser_deps() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} not found: run .ci/browser-deps (apt-get install chromium)"
    for module, package in [("playwright", "playwright"), ("jupyterlab", "jupyterlab"), ("voila", "voila")]:
        if importlib.util.find_spec(module) is None:
            return f"python package {package} not installed: run .ci/browser-deps"
    return None


def require_browser():
    """Skip with the reason when chromium or a package is missing; fail instead in CI (CI=true, or
    FINEGPT_BROWSER_TESTS=require), so the tests cannot silently stop running there."""
    import pytest

    reason = missing_browser_deps()
    if reason and (os.environ.get("FINEGPT_BROWSER_TESTS") == "require" or os.environ.get("CI") in ("true", "1")):
        pytest.fail(f"CI must run the browser tests, but {reason}")
    if reason:
        pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kernel_env(tmp: Path) -> dict:
    """The notebooks' smoke mode (tiny, offline, CPU), with Jupyter's state kept inside `tmp`."""
    env = {
        **os.environ,
        "FINEGPT_MODE": "smoke",
        "FINEGPT_HOME": str(tmp / "lab"),
        "CUDA_VISIBLE_DEVICES": "",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
        "WANDB_MODE": "offline",
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "JUPYTER_CONFIG_DIR": str(tmp / "config"),
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"),
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        # the "python3" kernel starts `python` from PATH: this interpreter's, wherever the shell's PATH points
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    # every cell stays in the page (a locator finds the widget however far down it is); no news pop-up
    for plugin, settings in [
        ("notebook-extension/tracker", '{"windowingMode": "none"}'),
        ("apputils-extension/notification", '{"fetchNews": "false"}'),
    ]:
        path = tmp / "settings" / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(settings)
    return env


class Server:
    """A server process whose merged output is read by a thread; `ready` is set when a line matches."""

    def __init__(self, cmd: list[str], cwd: Path, env: dict, ready_pattern: str):
        self.lines: list[str] = []
        self.ready, self.matched = threading.Event(), False
        self.proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
        pattern = re.compile(ready_pattern)

        def read():
            for line in self.proc.stdout:
                self.lines.append(line)
                if not self.matched and pattern.search(line):
                    self.matched = True
                    self.ready.set()
            self.ready.set()  # the process ended: stop waiting

        threading.Thread(target=read, daemon=True).start()

    @property
    def log(self) -> str:
        return "".join(self.lines[-60:])

    def wait_ready(self, timeout_s: float = SERVER_START_S):
        if not (self.ready.wait(timeout_s) and self.matched):
            self.stop()
            raise RuntimeError(f"{self.proc.args[:3]} did not start within {timeout_s} s:\n{self.log}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()  # Jupyter shuts its kernels down on SIGTERM
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)  # the server and the kernels it started
                self.proc.wait(5)


@contextmanager
def jupyter_lab(root_dir: Path, tmp: Path):
    """JupyterLab on 127.0.0.1 with a token; yields (server, base_url, token)."""
    port, token = free_port(), secrets.token_hex(16)
    cmd = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        "--ServerApp.allow_root=True",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root_dir}",
        "--LabApp.expose_app_in_browser=True",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    server = Server(cmd, root_dir, kernel_env(tmp), rf"http://127\.0\.0\.1:{port}/lab")
    try:
        server.wait_ready()
        yield server, f"http://127.0.0.1:{port}", token
    finally:
        server.stop()


@contextmanager
def voila(notebook: Path, tmp: Path):
    """`voila <notebook> --port P --no-browser --Voila.ip=127.0.0.1`, the README's command; yields (server, url)."""
    port = free_port()
    cmd = [sys.executable, "-m", "voila", str(notebook), f"--port={port}", "--no-browser", "--Voila.ip=127.0.0.1"]
    server = Server(cmd, notebook.parent, kernel_env(tmp), rf"http://127\.0\.0\.1:{port}")
    try:
        server.wait_ready()
        yield server, f"http://127.0.0.1:{port}/"
    finally:
        server.stop()


@contextmanager
def open_browser(tmp: Path, width: int = 1280, height: int = 1000):
    """A page of headless Debian chromium with a new, empty profile."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp / "chromium-profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": width, "height": height},
        )
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()


def estimate_text(**settings) -> tuple[str, str] | str:
    """What the calculator must show for `settings` (over its defaults), from `finegpt.memory.estimate`
    itself: (peak GiB with two decimals, the verdict's label), or the one-line error for bad settings."""
    from finegpt import memory as M
    from finegpt.config import ModelConfig
    from finegpt.errors import FinegptError
    from finegpt.widgets import MEMORY_DEFAULTS

    s = {**MEMORY_DEFAULTS, **settings}
    try:
        cfg = ModelConfig(
            n_layer=s["n_layer"], n_head=s["n_head"], n_embd=s["n_embd"], block_size=s["block_size"], bias=False
        )
        report = M.estimate(
            cfg,
            M.RunConfig(
                batch_size=s["batch_size"],
                gradient_accumulation_steps=s["gradient_accumulation_steps"],
                dtype=s["dtype"],
                attention=s["attention"],
                optimizer=s["optimizer"],
                activation_checkpointing=s["activation_checkpointing"],
                compile=s["compile"],
                gpu=s["gpu"],
            ),
        )
    except FinegptError as e:
        return str(e)
    return f"{report.peak_bytes / M.GIB:.2f}", report.verdict.label


if __name__ == "__main__":
    import tempfile

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "calculator.png").resolve()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        shutil.copy(ROOT / "notebooks" / "calculator.ipynb", tmp)
        with voila(tmp / "calculator.ipynb", tmp) as (_, url), open_browser(tmp, width=1100, height=760) as page:
            page.goto(url)
            page.locator(".finegpt-memory-output .finegpt-verdict").wait_for(timeout=60_000)
            page.screenshot(path=str(out))  # voila scrolls inside its own panel: size the window to fit
    print(out)
