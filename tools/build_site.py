"""Build the static memory calculator into site/: the page (web/), Pyodide's core files from the npm package
pinned in package-lock.json, and a pure-Python wheel of finegpt built from this checkout. Nothing in it
is fetched from another server at run time, so any static file server (or GitHub Pages) can host it.

    npm ci && python tools/build_site.py        # what `make site` runs
    python -m http.server -d site 8000           # then open http://localhost:8000/#gpu=4090&n_layer=12
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYODIDE_DIR = ROOT / "node_modules" / "pyodide"
# What loadPyodide() reads at start: the loader, the CPython build, the standard library and the lock
# file (it lists the optional packages, which this page never loads)
PYODIDE_FILES = ("pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm", "python_stdlib.zip", "pyodide-lock.json")
WEB_FILES = ("index.html", "calculator.js", "calculator.css")


def pinned_pyodide_version() -> str:
    """The pyodide version package-lock.json pins; the installed package must be that one."""
    lock = json.loads((ROOT / "package-lock.json").read_text())
    pinned = lock["packages"]["node_modules/pyodide"]["version"]
    installed_file = PYODIDE_DIR / "package.json"
    installed = json.loads(installed_file.read_text())["version"] if installed_file.is_file() else None
    if installed != pinned:
        sys.exit(f"pyodide={installed}: package-lock.json pins {pinned}. Run `npm ci` first.")
    return pinned


def setuptools_major() -> int:
    try:
        return int(importlib.metadata.version("setuptools").split(".")[0])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return 0


def build_wheel(dest: Path) -> Path:
    """finegpt as a pure-Python wheel (its own code and calibration.json, no dependencies): Pyodide's
    CPython imports the estimate path, which needs only the standard library."""
    with tempfile.TemporaryDirectory() as tmp:
        # a copy of the package sources, so the build leaves no build/ or egg-info in the checkout
        src = Path(tmp) / "src"
        shutil.copytree(ROOT / "finegpt", src / "finegpt", ignore=shutil.ignore_patterns("__pycache__"))
        for name in ("pyproject.toml", "README.md"):
            shutil.copy(ROOT / name, src / name)
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-q", "-w", tmp]
        if setuptools_major() >= 68:  # pyproject.toml's build requirement is here: build offline with it
            cmd.append("--no-build-isolation")  # (else pip fetches it from the package index, in isolation)
        subprocess.run([*cmd, str(src)], check=True)
        (wheel,) = Path(tmp).glob("finegpt-*.whl")
        return Path(shutil.copy(wheel, dest / wheel.name))


def guide_configs() -> dict[str, str]:
    """The config files the page offers as buttons: configs/*.py, by name, as text."""
    return {p.name: p.read_text() for p in sorted((ROOT / "configs").glob("*.py"))}


def build(out: Path) -> Path:
    version = pinned_pyodide_version()
    if out.exists():
        shutil.rmtree(out)
    (out / "pyodide").mkdir(parents=True)
    for name in PYODIDE_FILES:
        shutil.copy(PYODIDE_DIR / name, out / "pyodide" / name)
    for name in WEB_FILES:
        shutil.copy(ROOT / "web" / name, out / name)
    wheel = build_wheel(out)
    manifest = {"pyodide": version, "wheel": wheel.name, "configs": guide_configs()}
    (out / "site.json").write_text(json.dumps(manifest, indent=1) + "\n")
    (out / ".nojekyll").touch()  # GitHub Pages: serve the files as they are
    size_mib = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 2**20
    print(f"{out}: pyodide {version}, {wheel.name}, {len(manifest['configs'])} configs, {size_mib:.1f} MiB")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "site"), help="output folder (default: site/)")
    build(Path(parser.parse_args(argv).out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
