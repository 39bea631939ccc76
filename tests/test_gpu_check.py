"""bench/gpu_check.py: without CUDA it exits 0 and writes nothing; --dry-run runs every section on CPU and
never touches the calibration; what a GPU run measured becomes calibration updates, and nothing else does."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from finegpt.config import ModelConfig
from finegpt.memory import RunConfig, estimate
from finegpt.memory import calibration as cal

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import gpu_check  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "docs" / "gpu_results.md"


def snapshot(path: Path):
    return path.stat().st_mtime_ns if path.exists() else None


def test_without_cuda_it_says_so_exits_zero_and_writes_nothing(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    before = snapshot(DEFAULT_OUT), snapshot(cal.PATH)
    assert gpu_check.main([]) == 0
    assert gpu_check.main(["--out", str(tmp_path / "results.md")]) == 0
    assert "no CUDA GPU on this machine" in capsys.readouterr().out
    assert (snapshot(DEFAULT_OUT), snapshot(cal.PATH)) == before
    assert list(tmp_path.iterdir()) == []


def test_gpt2_size_on_cpu_is_refused():
    assert gpu_check.main(["--device", "cpu"]) == 2


def test_dry_run_runs_every_section_on_cpu_and_leaves_the_calibration_alone(tmp_path):
    out, calibration = tmp_path / "results.md", tmp_path / "calibration.json"
    threads = torch.get_num_threads()
    assert gpu_check.main(["--dry-run", "--out", str(out), "--calibration", str(calibration)]) == 0
    assert torch.get_num_threads() == threads
    text = out.read_text()
    for _, title, _, _ in gpu_check.SECTIONS:
        assert f"## {title}" in text
    assert "Command: `python bench/gpu_check.py --dry-run`" in text
    assert "| tiny (dry run) | eager |" in text and "| tiny (dry run) | compiled |" in text
    for label, _, _, modes, _ in gpu_check.OWED_ROWS:  # the rows a GPU still owes run too, tiny
        for mode in modes:
            assert f"| {label} (dry run: tiny) | {'compiled' if mode else 'eager'} |" in text
    assert "| eager | 4 x 4 x 32 |" in text and "| torch.compile | 4 x 4 x 32 |" in text
    assert "| float32 | 16 |" in text and "| bfloat16 | 32 |" in text
    assert "| 1L/16 | 4 x 32 | eager |" in text and "| 4L/96 | 4 x 32 | compiled |" in text  # the speed sweep
    assert text.count("x 32 | eager |") >= 5 and "Refitted matmul share" in text
    assert "Skipped" not in text and "Failed" not in text and text.rstrip().splitlines()[-1].startswith("Total time")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.md"]  # no temp file, no calibration written
    assert torch.compile.__module__ == "torch"  # the eager-backend swap is undone


def test_a_failing_section_is_reported_and_the_rest_still_run(tmp_path, monkeypatch):
    def broken(ctx):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    sections = list(gpu_check.SECTIONS)
    sections[1] = (sections[1][0], sections[1][1], sections[1][2], broken)
    monkeypatch.setattr(gpu_check, "SECTIONS", sections)
    out = tmp_path / "results.md"
    assert gpu_check.main(["--dry-run", "--out", str(out)]) == 0
    text = out.read_text()
    assert "Failed after" in text and "illegal memory access" in text
    assert f"## {sections[-1][1]}" in text and text.rstrip().splitlines()[-1].startswith("Total time")


def test_a_gpu_run_calibrates_only_what_it_measured(tmp_path):
    cfg = ModelConfig(n_layer=10, n_head=10, n_embd=640, bias=False)
    run = RunConfig(batch_size=32, dtype="bf16", compile=True)
    predicted = estimate(cfg, run).peaks
    one_copy = 32 * 1024 * 50304 * 2
    measured = {**predicted, "train": predicted["train"] + one_copy, "peak": predicted["train"] + one_copy}
    extra = {"context_bytes": int(0.9 * 2**30), "reserved_factor": 1.08, "smi": 0}
    results = {"overhead": {}, "memory": [("guide", cfg, run, measured, extra)], "mfu": {"compiled": 0.31}}
    updates = gpu_check.calibration_updates(results, "NVIDIA H200", "H200", "2026-12-01")
    copies = {k: cal.compiled_coefficient(k) for k in ("logits_train_copies", "logits_eval_copies")}  # shipped
    assert updates["compiled"]["logits_train_copies"] == round(copies["logits_train_copies"] + 1, 2)  # one more
    assert updates["compiled"]["logits_eval_copies"] == copies["logits_eval_copies"]
    assert updates["compiled"]["status"] == "GPU-measured (NVIDIA H200, 2026-12-01)"
    assert "eager_cuda" not in updates  # no eager row was measured
    overheads = updates["overheads"]
    assert overheads["cuda_context_gib_compiled"] == 0.9 and "cuda_context_gib_eager" not in overheads
    assert updates["mfu"]["H200"]["compiled"] == 0.31 and "eager" not in updates["mfu"]["H200"]
    assert gpu_check.calibration_updates({"overhead": {}, "memory": [], "mfu": {}}, "x", None, "d") == {}
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(cal.load()))
    from finegpt.memory.calibrate import write

    write(updates, path)
    with cal.use(path):
        assert estimate(cfg, run).peaks["train"] - predicted["train"] == one_copy
        assert estimate(cfg, run).compiled_status.startswith("GPU-measured")


def test_the_eager_grid_measures_each_rows_what_if(monkeypatch):
    """Each grid row's knobs (attention, checkpointing, optimizer, accumulation) reach the measured run: a row
    that dropped them would measure the base config under another name."""
    import time
    from types import SimpleNamespace

    import memory_validation as mv

    calls = {}

    def record(ctx, label, model_kw, batch_size, modes=(False, True), **run_kw):
        calls[label] = (batch_size, run_kw)
        return []

    monkeypatch.setattr(gpu_check, "measure_both", record)
    gpu_check.eager_grid_section(
        SimpleNamespace(tiny=False, dtype_key="bf16", started=time.perf_counter(), budget_s=1e9)
    )
    expected = {label: kw for label, _, kw in mv.GPU_GRID if kw["dtype"] == "bf16" and not kw.get("compile")}
    expected = {k: v for k, v in expected.items() if not k.startswith("guide")}
    assert set(calls) == set(expected)
    for label, kw in expected.items():
        assert calls[label] == (kw["batch_size"], {k: v for k, v in kw.items() if k != "batch_size"}), label
    assert calls["124M bf16 B=8 math"][1]["attention"] == "math"


def test_eager_cuda_rows_calibrate_the_bytes_per_logit_for_cuda_runs_only(tmp_path):
    """A GPU whose eager steps keep one 2-byte logits copy fewer than the CPU build (train and eval): the fit
    finds 12 and 10 bytes per logit in bf16, and from then on eager CUDA estimates carry them; CPU and
    fp16 estimates keep the formula."""
    from finegpt.memory.calibrate import write

    cfg = ModelConfig(n_layer=10, n_head=10, n_embd=640, bias=False)
    run = RunConfig(batch_size=32, dtype="bf16")
    base = {**cal.load(), "eager_cuda": {}}
    with cal.use(base):
        predicted = estimate(cfg, run).peaks
        cpu_before = estimate(cfg, RunConfig(batch_size=32, dtype="bf16", device="cpu")).peaks
        fp16_before = estimate(cfg, RunConfig(batch_size=32, dtype="fp16")).peaks
        one_copy = 32 * 1024 * 50304 * 2
        measured = {**predicted, "train": predicted["train"] - one_copy, "eval": predicted["eval"] - one_copy}
        results = {"overhead": {}, "memory": [("guide eager", cfg, run, measured, {})], "mfu": {}}
        updates = gpu_check.calibration_updates(results, "NVIDIA H200", "H200", "2026-12-01")
    fitted = updates["eager_cuda"]["bf16"]
    assert (fitted["logits_train_bytes"], fitted["logits_eval_bytes"]) == (12.0, 10.0)
    assert fitted["status"] == "GPU-measured (NVIDIA H200, 2026-12-01)" and "compiled" not in updates
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(base))
    write(updates, path)
    with cal.use(path):
        after = estimate(cfg, run).peaks
        assert (after["train"], after["eval"]) == (measured["train"], measured["eval"])
        assert estimate(cfg, RunConfig(batch_size=32, dtype="bf16", device="cpu")).peaks == cpu_before
        assert estimate(cfg, RunConfig(batch_size=32, dtype="fp16")).peaks == fp16_before  # not measured
