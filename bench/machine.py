"""What the benches share: the machine they ran on, and appending a section to docs/benchmarks.md."""

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


def append_to_benchmarks(section: str) -> None:
    """Append one bench's section to docs/benchmarks.md (every bench writes there)."""
    path = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
    with open(path, "a", encoding="utf-8") as f:
        f.write(("\n" if path.exists() and path.stat().st_size else "# Benchmarks\n\n") + section)
    print(f"appended to {path.relative_to(path.parents[1])}")
