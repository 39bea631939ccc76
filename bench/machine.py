"""What the benches share: the machine they ran on, and writing a section of docs/benchmarks.md."""

import platform
from pathlib import Path


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def append_to_benchmarks(section: str, path: Path | None = None) -> None:
    """Write one bench's section to docs/benchmarks.md (every bench writes there): a section whose heading
    (its first line, with the date) is already there is replaced, so a rerun the same day leaves one copy;
    a new heading is appended, keeping the earlier days for comparison."""
    path = path or Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    heading, section = section.lstrip("\n").split("\n", 1)[0], section.strip("\n") + "\n"
    parts = text.split("\n## ")  # parts[0]: the title and intro; each later part is one section
    kept = [parts[0].rstrip("\n") + "\n"] + ["## " + p.rstrip("\n") + "\n" for p in parts[1:]]
    replaced = [section if p.split("\n", 1)[0] == heading else p for p in kept]
    if replaced == kept:
        replaced.append(section)
    path.write_text("\n".join(replaced), encoding="utf-8")
    print(f"wrote {heading!r} to {path.name}")
