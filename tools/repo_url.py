"""The repository URL lives in one place, `[project.urls] Repository` in pyproject.toml. This tool
writes it into every notebook's Open-in-Colab badge and install cell (the five lessons and their worked
solutions, the .py source and its .ipynb, outputs kept; a notebook without them gets them) and into the
README's badges.

    python tools/repo_url.py                                       # rewrite everything from pyproject.toml
    python tools/repo_url.py --set https://github.com/you/finegpt  # a fork: change the URL, then rewrite
    python tools/repo_url.py --check                               # list what disagrees; exit 1 if anything does

Colab opens notebooks from GitHub, so the URL is a GitHub repository; notebooks are taken from `main`.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
BRANCH = "main"
URL_LINE = re.compile(r'^(Repository\s*=\s*)"([^"]*)"', re.M)
GITHUB = re.compile(r"^https://github\.com/([\w.-]+)/([\w.-]+?)(?:\.git)?/?$")
BADGE = re.compile(r"https://colab\.research\.google\.com/github/[^)\s]+?/blob/[^/)\s]+/notebooks/")
INSTALL_MARKER = "# Install finegpt when this kernel lacks it."
BADGE_IMAGE = "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"

INSTALL_CELL = """# Install finegpt when this kernel lacks it. Written by tools/repo_url.py from pyproject.toml.
import importlib.metadata
import importlib.util
import subprocess
import sys

REPO = "{url}"
if importlib.util.find_spec("finegpt") is None:
    if "google.colab" not in sys.modules:
        raise ModuleNotFoundError(f"finegpt is not installed in this kernel. In a clone of {{REPO}} run "
                                  "`pip install -e .`, then restart the kernel")
    loaded = [n for n in ("ipywidgets", "numpy", "pandas", "matplotlib", "torch") if n in sys.modules]
    before = {{n: importlib.metadata.version(n) for n in loaded}}
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"finegpt @ git+{{REPO}}"],
                         capture_output=True, text=True)
    if pip.returncode != 0:
        raise RuntimeError(f"pip could not install finegpt from {{REPO}}:\\n{{pip.stderr[-1500:]}}\\nCheck that "
                           "the URL opens in a browser; a fork sets its own with `python tools/repo_url.py --set URL`")
    changed = [f"{{n}} {{v}} -> {{importlib.metadata.version(n)}}" for n, v in before.items()
               if importlib.metadata.version(n) != v]
    if changed:  # finegpt asks for versions Colab has; a package this kernel already uses changed anyway
        raise RuntimeError(f"pip replaced packages this kernel had already loaded ({{', '.join(changed)}}). "
                           "Restart the session (Runtime > Restart session), then run the notebook from the top")
    importlib.invalidate_caches()
import finegpt

print(f"finegpt {{finegpt.__version__}}")"""


def read_url(pyproject: str) -> str:
    found = URL_LINE.search(pyproject)
    if not found:
        sys.exit('pyproject.toml: no `Repository = "https://github.com/..."` under [project.urls]')
    return check_url(found.group(2))


def check_url(url: str) -> str:
    if not GITHUB.match(url):
        sys.exit(f"url={url!r}: not a GitHub repository URL. Use https://github.com/<owner>/<repo>.")
    return url.rstrip("/").removesuffix(".git")


def colab_prefix(url: str) -> str:
    owner, repo = GITHUB.match(url).groups()
    return f"https://colab.research.google.com/github/{owner}/{repo}/blob/{BRANCH}/notebooks/"


def install_cell(url: str) -> str:
    return INSTALL_CELL.format(url=url)


def badge(url: str, rel: str) -> str:
    """The badge line for notebooks/<rel>, e.g. rel='solutions/01_data_prep_solutions.ipynb'."""
    return f"{BADGE_IMAGE}({colab_prefix(url)}{rel})"


def rewrite_cells(cells: list[tuple[str, str]], url: str) -> list[str]:
    """New sources for (cell_type, source) pairs: badges pointed at url, the install cell regenerated."""
    out = []
    for kind, source in cells:
        if kind == "markdown":
            source = BADGE.sub(colab_prefix(url), source)
        elif source.startswith(INSTALL_MARKER):
            source = install_cell(url)
        out.append(source)
    return out


def rewrite_py(text: str, url: str, rel: str | None = None) -> str:
    """A py:percent source: badge lines (comments) and the install cell between its `# %%` markers. With rel
    (the notebook's path under notebooks/), a source without them gets the badge at the end of its first cell
    and the install cell right after it."""
    text = BADGE.sub(colab_prefix(url), text)
    first_end = text.find("\n# %%", 1)
    if rel and BADGE_IMAGE not in text and first_end > 0:
        text = text[:first_end].rstrip("\n") + f"\n#\n# {badge(url, rel)}\n" + text[first_end:]
        first_end = text.find("\n# %%", 1)
    if rel and INSTALL_MARKER not in text and first_end > 0:
        text = text[:first_end] + "\n# %%\n" + INSTALL_MARKER + "\n" + text[first_end:]
    start = text.find(INSTALL_MARKER)
    if start < 0:
        return text
    end = text.find("\n# %%", start)
    return text[:start] + install_cell(url) + "\n" + (text[end:] if end >= 0 else "")


def rewrite_ipynb(nb, url: str, rel: str | None = None):
    """As rewrite_py, cell by cell; with rel, a notebook without a badge or an install cell gets them."""
    if rel and nb.cells and BADGE_IMAGE not in nb.cells[0].source:
        nb.cells[0].source = nb.cells[0].source.rstrip("\n") + f"\n\n{badge(url, rel)}"
    if rel and (len(nb.cells) < 2 or not nb.cells[1].source.startswith(INSTALL_MARKER)):
        nb.cells.insert(1, nbformat.v4.new_code_cell(install_cell(url)))
    for cell, source in zip(nb.cells, rewrite_cells([(c.cell_type, c.source) for c in nb.cells], url)):
        cell.source = source
    return nb


def notebook_sources(root: Path = ROOT) -> list[Path]:
    """The five lessons, then their worked solutions."""
    return sorted((root / "notebooks").glob("[0-9][0-9]_*.py")) + sorted(
        (root / "notebooks" / "solutions").glob("[0-9][0-9]_*.py")
    )


def targets(url: str, root: Path = ROOT) -> dict[Path, tuple[str, str]]:
    """Each file that carries the URL: (what it holds now, what it should hold)."""
    out = {}
    for py in notebook_sources(root):
        rel = py.with_suffix(".ipynb").relative_to(root / "notebooks").as_posix()
        text = py.read_text()
        out[py] = (text, rewrite_py(text, url, rel))
        ipynb = py.with_suffix(".ipynb")
        if ipynb.exists():
            now = ipynb.read_text()
            out[ipynb] = (now, nbformat.writes(rewrite_ipynb(nbformat.reads(now, as_version=4), url, rel)) + "\n")
    readme = root / "README.md"
    text = readme.read_text()
    out[readme] = (text, BADGE.sub(colab_prefix(url), text))
    return out


def _differs(path: Path, now: str, want: str) -> bool:
    """True when the file does not carry the URL everywhere; a notebook without an install cell counts."""
    if path.suffix == ".py":
        return now != want or INSTALL_MARKER not in now
    if path.suffix != ".ipynb":
        return now != want
    cells = [c.source for c in nbformat.reads(now, 4).cells]
    return cells != [c.source for c in nbformat.reads(want, 4).cells] or not cells[1].startswith(INSTALL_MARKER)


def disagreements(url: str, root: Path = ROOT) -> list[Path]:
    """Files whose badges or install cell do not carry url (an .ipynb is compared cell by cell)."""
    wrong = []
    for path, (now, want) in targets(url, root).items():
        if _differs(path, now, want):
            wrong.append(path)
    return wrong


def main(argv: list[str] | None = None, root: Path = ROOT) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", metavar="URL", help="write this URL into pyproject.toml first")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a file disagrees")
    args = parser.parse_args(argv)
    pyproject = root / "pyproject.toml"
    if args.set:
        url = check_url(args.set)
        pyproject.write_text(URL_LINE.sub(lambda m: f'{m.group(1)}"{url}"', pyproject.read_text(), count=1))
    url = read_url(pyproject.read_text())
    if args.check:
        wrong = disagreements(url, root)
        for path in wrong:
            print(f"{path.relative_to(root)}: does not use {url} (run python tools/repo_url.py)")
        return 1 if wrong else 0
    for path, (now, want) in targets(url, root).items():
        if _differs(path, now, want):
            path.write_text(want)
    print(f"badges, install cells and README use {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
