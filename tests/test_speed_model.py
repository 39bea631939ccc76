"""finegpt.memory.speed: step time from the model's work, calibrated on measured steps; its ranges hold them."""

import json
from dataclasses import replace

import pytest

from finegpt.cli import main
from finegpt.config import ModelConfig
from finegpt.gpus import GPUS
from finegpt.memory.speed import CALIBRATION_POINTS, predict


@pytest.mark.parametrize("point", CALIBRATION_POINTS, ids=[p[0] for p in CALIBRATION_POINTS])
def test_every_measured_gpu_point_is_inside_its_predicted_range(point):
    name, fields, gpu, batch, accumulation, compiled, measured_mfu = point
    p = predict(ModelConfig(**fields, vocab_size=50304, bias=False), gpu, batch, accumulation, compiled)
    low, high = p.mfu_range
    assert low <= measured_mfu <= high, name
    assert abs(p.mfu / measured_mfu - 1) < 0.1, name  # and close to the point estimate


def test_h100_and_h200_differ_only_in_memory_bandwidth():
    cfg = ModelConfig(n_layer=12, n_head=12, n_embd=768, bias=False)
    as_h100 = replace(GPUS["H200"], memory_gbps=GPUS["H100"].memory_gbps)
    assert predict(cfg, as_h100, 16, 4) == predict(cfg, "H100", 16, 4)
    assert predict(cfg, "H200", 16, 4).step_s < predict(cfg, "H100", 16, 4).step_s


def test_a_small_model_is_bound_by_kernel_launches_and_the_lm_head():
    tiny = ModelConfig(n_layer=4, n_head=4, n_embd=128, block_size=512, bias=False)
    parts = predict(tiny, "H200", 1).parts_s
    assert max(parts, key=parts.get) == "kernels"  # batch 1: launching kernels is the work
    parts = predict(tiny, "H200", 256).parts_s
    assert max(parts, key=parts.get) == "LM head + loss"  # the lab's batch: 50k logits per token
    big = ModelConfig(n_layer=24, n_head=16, n_embd=1024, bias=False)
    assert predict(big, "H200", 16).mfu > 5 * predict(tiny, "H200", 256).mfu


def test_finegpt_memory_times_gpt2_on_the_h200_from_the_speed_model(capsys):
    assert main(["memory", "configs/gpt2_124m.py", "--gpu", "H200", "--compile=False", "--json"]) == 0
    low, high = json.loads(capsys.readouterr().out)["mfu_range"]
    assert low <= 0.337 <= high  # the measured eager MFU (docs/gpu_results.md)
    assert main(["memory", "configs/gpt2_124m.py", "--gpu", "H200", "--json"]) == 0
    low, high = json.loads(capsys.readouterr().out)["mfu_range"]
    assert low <= 0.425 <= high  # compiled


def test_the_gpu_sweep_refits_the_matmul_share_it_was_measured_at():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    import speed_sweep

    from finegpt.memory.speed import share_override

    rows = []
    with share_override("ampere", 0.42):  # "measured": what the model says at a share of 0.42
        for L, H, C, B in speed_sweep.SIZES:
            cfg = ModelConfig(n_layer=L, n_head=H, n_embd=C, bias=False)
            for compiled in (False, True):
                rows.append((cfg, B, compiled, predict(cfg, "A100-80", B, 1, compiled).mfu))
    assert speed_sweep.refit(rows, "A100-80") == 0.42
    results = {"sweep_share": 0.42}
    assert speed_sweep.updates(results, "A100-80", "src") == {
        "speed": {"ampere": {"matmul_share": 0.42, "source": "src"}}
    }


def test_a_cpu_prediction_follows_the_machine_it_runs_on():
    # a machine twice as fast in every part of the yardstick predicts exactly half the step time
    cfg = ModelConfig(n_layer=4, n_head=4, n_embd=128, block_size=64, vocab_size=320, bias=False)
    here = {"flops_per_s": 80e9, "bytes_per_s": 10e9, "op_s": 50e-6}
    twice = {"flops_per_s": 160e9, "bytes_per_s": 20e9, "op_s": 25e-6}
    slow, fast = predict(cfg, None, 16, cpu_yardstick=here), predict(cfg, None, 16, cpu_yardstick=twice)
    assert fast.step_s == pytest.approx(slow.step_s / 2, rel=1e-12)
    assert fast.tokens_per_s == pytest.approx(2 * slow.tokens_per_s, rel=1e-12)
    assert slow.mfu is None  # a CPU has no datasheet peak


def test_cpu_yardstick_measures_this_machine():
    from finegpt.memory.probe import cpu_yardstick

    y = cpu_yardstick(seconds=0.15)
    assert set(y) == {"flops_per_s", "bytes_per_s", "op_s"}
    assert 1e8 < y["flops_per_s"] < 1e14 and 1e8 < y["bytes_per_s"] < 1e13 and 1e-7 < y["op_s"] < 1e-2


def test_the_cpu_refit_recovers_the_shares_a_sweep_was_made_at():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    import speed_check

    shares = {"flops": 0.5, "bytes": 0.3, "ops": 0.2}
    rows = []
    for i, (label, fields, vocab, b, g) in enumerate(speed_check.CPU_SWEEP):
        y = {"flops_per_s": 100e9 + 10e9 * i, "bytes_per_s": 20e9 - 1e9 * i, "op_s": 40e-6 + 2e-6 * i}  # load moves
        row = dict(label=label, cfg=ModelConfig(**fields, vocab_size=vocab, bias=False), batch_size=b)
        row.update(accumulation=g, yardstick=y)
        row["step_s"] = speed_check.fitted_step_s(row, shares)
        rows.append(row)
    fitted = speed_check.fit_cpu(rows)
    for row in rows:  # the grid is coarse: the refit predicts every row within a few percent
        assert speed_check.fitted_step_s(row, fitted["shares"]) == pytest.approx(row["step_s"], rel=0.05)
    low, high = fitted["spread"]
    assert low <= speed_check.MIN_SPREAD[0] and high >= speed_check.MIN_SPREAD[1]
