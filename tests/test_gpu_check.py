"""bench/gpu_check.py: without CUDA it exits 0 and writes nothing; --dry-run runs every section on CPU."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import gpu_check  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "docs" / "gpu_results.md"


def snapshot(path: Path):
    return path.stat().st_mtime_ns if path.exists() else None


def test_without_cuda_it_says_so_exits_zero_and_writes_nothing(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    before = snapshot(DEFAULT_OUT)
    assert gpu_check.main([]) == 0
    assert gpu_check.main(["--out", str(tmp_path / "results.md")]) == 0
    assert "no CUDA GPU on this machine" in capsys.readouterr().out
    assert snapshot(DEFAULT_OUT) == before
    assert list(tmp_path.iterdir()) == []


def test_gpt2_size_on_cpu_is_refused():
    assert gpu_check.main(["--device", "cpu"]) == 2


def test_dry_run_runs_every_section_on_cpu(tmp_path):
    out = tmp_path / "results.md"
    threads = torch.get_num_threads()
    assert gpu_check.main(["--dry-run", "--out", str(out)]) == 0
    assert torch.get_num_threads() == threads
    text = out.read_text()
    for title in (
        "## MFU: finegpt's train() on random tokens",
        "## Memory: predicted vs measured peak",
        "## Sampling: KV cache vs full recompute",
        "## MFU with torch.compile",
    ):
        assert title in text
    assert "Command: `python bench/gpu_check.py --dry-run`" in text
    assert "| eager | 4 x 4 x 32 |" in text and "| torch.compile | 4 x 4 x 32 |" in text
    assert "| fp32 flash |" in text and "| bf16 flash |" in text
    assert "| float32 | 16 |" in text and "| bfloat16 | 32 |" in text
    assert "Skipped" not in text and text.rstrip().splitlines()[-1].startswith("Total time")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.md"]  # no temp file left behind
    assert torch.compile.__module__ == "torch"  # the eager-backend swap is undone
