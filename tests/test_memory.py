"""finegpt.memory: estimate() agrees with a measured step, known counts, solvers, bad input, CLI."""

import json
from pathlib import Path

import pytest

from finegpt.cli import main
from finegpt.config import ModelConfig
from finegpt.errors import FinegptError
from finegpt.memory import (
    GIB,
    GPUS,
    RunConfig,
    best_dtype,
    check_guide,
    estimate,
    fits,
    flops_per_token,
    get_gpu,
    guide_verdicts,
    max_micro_batch,
    measure,
    mfu_range,
    peak_flops,
    plan,
    recommend,
    recommend_all,
    session_plan,
    tokens_per_run,
    train_time_range_s,
)
from finegpt.memory.calibration import compiled_status
from finegpt.model import count_params

TINY = dict(n_layer=2, n_head=2, n_embd=32, block_size=32, vocab_size=512)  # V >> C, as in real GPTs


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


# (model overrides, run settings): every knob, one or two at a time
GRID = [
    ({}, dict(dtype="fp32")),
    ({}, dict(dtype="bf16")),
    ({}, dict(dtype="fp16")),
    ({}, dict(dtype="pure_bf16")),
    ({}, dict(dtype="fp32", attention="math")),
    ({}, dict(dtype="bf16", attention="math")),
    ({"dropout": 0.1}, dict(dtype="fp32", attention="math")),
    ({"dropout": 0.1}, dict(dtype="bf16", attention="math")),
    ({}, dict(dtype="fp32", gradient_accumulation_steps=2)),
    ({}, dict(dtype="bf16", gradient_accumulation_steps=2, optimizer="adamw_foreach")),
    ({}, dict(dtype="fp32", activation_checkpointing=True)),
    ({}, dict(dtype="bf16", activation_checkpointing=True, gradient_accumulation_steps=2)),
    ({"bias": False}, dict(dtype="bf16", optimizer="adamw_foreach")),
    ({}, dict(dtype="fp32", optimizer="sgd_momentum", eval_batch_size=8)),
    ({"n_layer": 3}, dict(dtype="fp32", optimizer="sgd")),
]


# the eval phase, where it can peak: math attention's no-grad T x T transients (long T, small V), a big
# training batch beside a small eval batch (its logits are freed, its prefetched successor is not), the iter-0 eval
EVAL_GRID = [
    ({"n_head": 4, "block_size": 128, "vocab_size": 256}, dict(dtype="fp32", attention="math", batch_size=2)),
    ({"n_head": 4, "block_size": 128, "vocab_size": 256}, dict(dtype="bf16", attention="math", batch_size=2)),
    ({}, dict(dtype="bf16", batch_size=16, eval_batch_size=2)),
    ({}, dict(dtype="fp32", optimizer="sgd", eval_batch_size=16)),
]


@pytest.mark.parametrize("model_kw,run_kw", GRID + EVAL_GRID, ids=[f"{m}-{r}" for m, r in GRID + EVAL_GRID])
def test_estimate_is_within_one_percent_of_a_measured_cpu_step(model_kw, run_kw):
    cfg = ModelConfig(**{**TINY, **model_kw})
    run = RunConfig(**{"batch_size": 4, "device": "cpu", **run_kw})
    measured, predicted = measure(cfg, run), estimate(cfg, run)
    for phase in ("train", "optimizer", "eval", "first_eval"):
        assert predicted.peaks[phase] == pytest.approx(measured[phase], rel=0.01), phase
    assert predicted.peak_bytes == pytest.approx(measured["peak"], rel=0.01)


def test_eval_holds_the_prefetched_batch_not_the_training_logits_and_iter_0_holds_neither():
    """finegpt.step.forward_backward returns only the loss, so its logits are freed before the optimizer step
    and eval (nanoGPT's loop keeps them bound); the next batch, prefetched, is held through both."""
    cfg, run = ModelConfig(**TINY), RunConfig(batch_size=16, eval_batch_size=2, dtype="bf16", device="cpu")
    r = estimate(cfg, run)
    prefetched = r.phase_terms["eval"]["next batch (prefetched)"]
    assert prefetched == 16 * 16 * TINY["block_size"]  # x, y int64 of the next training micro-batch
    assert not any("logits still bound" in k for k in (*r.phase_terms["eval"], *r.phase_terms["optimizer"]))
    assert "optimizer states" not in r.phase_terms["first_eval"]
    assert r.peaks["eval"] - r.peaks["first_eval"] == prefetched + r.terms["optimizer states"]
    measured = measure(cfg, run)
    assert measured["eval"] - measured["first_eval"] == pytest.approx(prefetched + r.terms["optimizer states"], abs=256)


def test_fake_tensor_measurement_equals_the_real_one_without_allocating():
    cfg, run = ModelConfig(**TINY), RunConfig(batch_size=4, dtype="bf16", device="cpu")
    real, fake = measure(cfg, run), measure(cfg, run, device="fake")
    assert {k: fake[k] for k in real} == real


def test_report_names_every_term_and_the_peak_is_the_max_of_three_phases(eager_as_cited):
    report = estimate(
        ModelConfig(n_layer=12, n_head=12, n_embd=768, bias=False), RunConfig(batch_size=12, gpu="A100-40")
    )
    assert {
        "weights",
        "optimizer states",
        "autocast 16-bit weight copies",
        "activations (all layers)",
        "logits + cross-entropy",
        "optimizer-step temporaries",
        "DDP buckets",
    } <= set(report.terms)
    assert set(report.activations_per_layer) == {"residual", "norms", "attention", "mlp", "dropout"}
    assert report.peak_bytes == max(report.peaks.values())
    assert report.reserved_bytes > report.peak_bytes and report.nvidia_smi_bytes > report.reserved_bytes
    # design fact: at B=12, T=1024 the logits + cross-entropy (14 n V) outweigh the 12 layers' activations
    assert report.terms["logits + cross-entropy"] == 14 * 12 * 1024 * 50304
    assert report.terms["logits + cross-entropy"] > report.terms["activations (all layers)"]
    assert report.fits is True


def test_known_parameter_counts_and_token_budgets():
    gpt2 = ModelConfig(n_layer=12, n_head=12, n_embd=768, bias=False)
    assert count_params(gpt2, non_embedding=False) == 124_373_760
    guide_24gb = ModelConfig(n_layer=10, n_head=10, n_embd=640, bias=False)
    assert round(count_params(guide_24gb, non_embedding=False) / 1e6, 1) == 82.0  # the guide says ~160M
    assert tokens_per_run(50_000, 32, 16, 1024) == 26_214_400_000  # the guide says ~83B
    assert flops_per_token(gpt2) == 6 * 123_587_328 + 12 * 12 * 768 * 1024


def test_guide_check_lists_the_wrong_claims():
    checks = {c.claim: c for c in check_guide()}
    assert not checks["24 GB config (10L/10H/640): parameters"].holds
    assert checks["24 GB config (10L/10H/640): tokens in 50k iters x 32 x 16 x 1024"].computed == "26.2B"
    fits = checks["24 GB config (10L/10H/640): fits a RTX 4090 at batch_size=32"]
    assert fits.holds and fits.status == "holds"  # compiled, as the guide's file runs; eager does not fit
    eager = guide_verdicts("4090")["eager"]  # its figure follows calibration.json, its verdict does not move
    assert f"eager {eager['peak_gib']:.1f} GiB" in fits.computed and "out of memory" in fits.computed
    assert checks["24 GB config (10L/10H/640): tokens per optimizer step"].holds


def test_guide_24gb_config_fits_a_4090_compiled_and_not_eager(capsys):
    v = guide_verdicts("4090")
    assert (v["eager"]["status"], v["compiled"]["status"]) == ("out of memory", "fits")
    config = Path(__file__).parents[1] / "configs" / "guide_24gb.py"
    assert main(["memory", str(config), "--gpu", "4090", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)  # the file as `finegpt memory` reads it: the same two verdicts
    for mode in ("eager", "compiled"):
        assert out[mode]["peak_gib"] == pytest.approx(v[mode]["peak_gib"], abs=1e-3)
        assert out[mode]["verdict"]["status"] == v[mode]["status"]
    assert v["eager"]["deciding"] == "logits + cross-entropy"  # 70 % of the eager peak
    assert v["compiled"]["compiled_status"] == compiled_status() != compiled_status("cpu")  # the GPU's terms
    assert v["compiled"]["peak_gib"] < 0.7 * v["eager"]["peak_gib"]  # the fused loss keeps no fp32 logits


def test_solvers_agree_with_estimate():
    cfg = ModelConfig(n_layer=10, n_head=10, n_embd=640)
    run = RunConfig(batch_size=1, gpu="4090")
    b = max_micro_batch(cfg, run)
    assert b > 0 and fits(cfg, RunConfig(batch_size=b, gpu="4090"))
    assert not fits(cfg, RunConfig(batch_size=b + 1, gpu="4090"))
    p = plan(cfg, run, target_tokens_per_step=524_288)
    assert p.batch_size <= b and p.tokens_per_step >= 524_288
    assert p.batch_size * p.gradient_accumulation_steps * 1024 == p.tokens_per_step


@pytest.mark.parametrize("compiled", [False, True])
def test_every_recommend_row_respects_its_own_headroom_with_its_accumulation(compiled):
    for r in recommend_all(compiled=compiled):
        cfg = ModelConfig(n_layer=r.n_layer, n_head=r.n_head, n_embd=r.n_embd, bias=False)
        run = RunConfig(r.batch_size, r.gradient_accumulation_steps, r.dtype, compile=compiled, gpu=r.gpu)
        report = estimate(cfg, run)
        assert report.nvidia_smi_bytes <= (1 - r.headroom) * GPUS[r.gpu].memory_gib * GIB, r.gpu
        assert report.terms["gradients (previous micro-step)"] > 0 or r.gradient_accumulation_steps == 1
        assert r.tokens_per_step == 524_288 and r.budget_hours > 0
    assert recommend("T4").dtype == "fp16"


def test_t4_session_plan_fits_with_headroom_and_stays_in_time_at_the_low_mfu():
    s = session_plan("T4", train_minutes=45)
    assert s.dtype == "fp16" and s.minutes <= 45.5 and s.peak_gib < 0.9 * GPUS["T4"].memory_gib
    assert 5 < s.tokens_per_body_param < 80 and s.model["n_layer"] >= 6  # a 4-layer toy writes no English
    assert s.mfu == mfu_range("T4")[0] and s.minutes_range[0] < s.minutes_range[1] <= 45.5
    assert s.max_iters * s.batch_size * s.gradient_accumulation_steps * 512 == s.tokens


def test_recommend_and_session_plan_agree_on_the_t4():
    r, s = recommend("T4"), session_plan("T4")
    assert (r.n_layer, r.n_head, r.n_embd) == (s.model["n_layer"], s.model["n_head"], s.model["n_embd"])


def test_times_are_ranges_from_the_mfu_ranges():
    cfg = ModelConfig(n_layer=12, n_head=12, n_embd=768, bias=False)
    for key in GPUS:
        for compiled in (False, True):
            lo, hi = mfu_range(key, compiled)
            fast, slow = train_time_range_s(cfg, 10**9, key, best_dtype(key), compiled=compiled)
            assert 0 < lo <= hi < 1 and slow / fast == pytest.approx(hi / lo)
    assert mfu_range("A100-80", compiled=True)[0] > mfu_range("A100-80")[0]  # compile is faster


def test_peak_flops_maps_device_names():
    assert peak_flops("NVIDIA A100-SXM4-40GB") == 312e12
    assert peak_flops("Tesla T4", "fp16") == 65e12
    assert peak_flops("NVIDIA H100 80GB HBM3", "fp32") == 67e12
    assert peak_flops("Some Future GPU") is None


@pytest.mark.parametrize(
    "make,words",
    [
        (lambda: ModelConfig(n_embd=640, n_head=12), ["n_embd=640", "n_head"]),
        (lambda: RunConfig(batch_size=0), ["batch_size=0", "Use batch_size >= 1"]),
        (lambda: get_gpu("4900"), ["gpu='4900'", "Did you mean 4090"]),
        (lambda: RunConfig(dtype="bf16", gpu="T4"), ["dtype='bf16'", "fp16"]),
        (lambda: RunConfig(world_size=0), ["world_size=0", "world_size=1"]),
    ],
)
def test_bad_input_names_the_field_and_the_fix(make, words):
    with pytest.raises(FinegptError) as e:
        make()
    assert all(w in str(e.value) for w in words)


def test_cli_memory_judges_the_guide_config_eager_and_compiled_side_by_side(tmp_path, capsys):
    cfg = tmp_path / "guide.py"
    cfg.write_text(
        "batch_size=32; gradient_accumulation_steps=16; block_size=1024\n"
        "n_layer=10; n_head=10; n_embd=640; dropout=0.0; max_iters=50000\n"
    )
    assert main(["memory", str(cfg), "--gpu", "4090"]) == 0
    out = capsys.readouterr().out
    assert "note: compile=True (nanoGPT's train.py default" in out  # the file does not set compile
    assert main(["memory", str(cfg), "--gpu", "4090", "--json"]) == 0
    text, out = out, json.loads(capsys.readouterr().out)
    assert f"eager    peak {out['eager']['peak_bytes'] / GIB:.1f} GiB (train) -> out of memory" in text
    assert (
        f"compiled peak {out['compiled']['peak_bytes'] / GIB:.1f} GiB (train) -> fits" in text and "<- this run" in text
    )
    assert out["compile"] is True and out["report"]["compiled"] is True
    assert (out["eager"]["verdict"]["status"], out["compiled"]["verdict"]["status"]) == ("out of memory", "fits")
    assert out["eager"]["peak_bytes"] > out["compiled"]["peak_bytes"]
    assert main(["memory", str(cfg), "--gpu", "4090", "--batch_size=8", "--compile=False", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["report"]["fits"] is True and out["compile"] is False and not out["notes"]
    assert out["tokens_per_run"] == 50_000 * 8 * 16 * 1024
    assert main(["memory", "--gpu", "4900"]) == 2


def test_cli_memory_guide_shows_both_modes_first(capsys):
    assert main(["memory", "--guide"]) == 0
    first = capsys.readouterr().out.splitlines()[:3]
    assert "eager" in first[1] and "out of memory" in first[1]
    assert "compiled" in first[2] and "fits" in first[2] and compiled_status() in first[2]
    assert main(["memory", "--guide", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["guide_24gb"]) == {"eager", "compiled"} and len(out["checks"]) > 10


def test_cli_recommend_gives_one_row_per_gpu(capsys):
    assert main(["recommend", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["gpu"] for r in rows] == list(GPUS)


@pytest.mark.parametrize("bucket_view", [False, True])
def test_ddp_per_rank_estimate_matches_each_gloo_rank(tmp_path, bucket_view):
    from finegpt.memory.measurement import measure_ranks

    cfg = ModelConfig(**TINY)
    run = RunConfig(batch_size=4, dtype="fp32", device="cpu", world_size=2, gradient_as_bucket_view=bucket_view)
    predicted = estimate(cfg, run)
    for measured in measure_ranks(cfg, run, str(tmp_path / "store")):
        for phase in ("train", "optimizer", "eval"):
            assert predicted.peaks[phase] == pytest.approx(measured[phase], rel=0.01), phase
    assert predicted.terms["DDP buckets"] == 4 * count_params(cfg, non_embedding=False)


def test_plan_prefers_an_exact_split_of_the_effective_batch(eager_as_cited):
    from finegpt.memory import RunConfig, max_micro_batch, plan

    cfg = ModelConfig(n_layer=10, n_head=10, n_embd=640, block_size=1024, bias=False)
    run = RunConfig(batch_size=32, gradient_accumulation_steps=16, dtype="bf16", gpu="4090")
    assert max_micro_batch(cfg, run, "4090") == 18
    p = plan(cfg, run, 32 * 16 * 1024, "4090")
    assert (p.batch_size, p.gradient_accumulation_steps, p.tokens_per_step) == (16, 32, 524_288)


def test_measure_stays_callable_after_its_module_is_imported():
    import finegpt.memory as M
    import finegpt.memory.measurement  # noqa: F401  (a submodule import must not shadow the function)

    assert callable(M.measure) and M.measure.__module__ == "finegpt.memory"


def test_detected_gpu_key_falls_back_to_the_default_without_cuda():
    from finegpt.memory import detected_gpu_key, gpu_from_device_name

    assert detected_gpu_key(default="T4") == "T4"  # the test machines have no CUDA GPU
    assert gpu_from_device_name("Tesla T4") is GPUS["T4"]
    assert (
        gpu_from_device_name("NVIDIA A100-SXM4-80GB").memory_gib
        > gpu_from_device_name("NVIDIA A100-SXM4-40GB").memory_gib
    )


def test_fit_summary_counts_accumulation_as_finegpt_train_does(tmp_path):
    from finegpt.memory import fit_summary, run_from_settings

    values = {
        "n_layer": 12,
        "n_head": 12,
        "n_embd": 768,
        "batch_size": 16,
        "gradient_accumulation_steps": 32,
        "max_iters": 1000,
        "world_size": 4,
    }
    model_cfg, run, train_cfg, _ = run_from_settings(values, gpu="4090")
    assert run.gradient_accumulation_steps == 8  # per rank: 32 in total over 4 ranks
    out = fit_summary(model_cfg, run, train_cfg.max_iters)
    assert out["tokens_per_step"] == 16 * 32 * 1024 == out["plan"]["tokens_per_step"]
    assert out["plan"]["batch_size"] * out["plan"]["gradient_accumulation_steps"] * 1024 == out["tokens_per_step"]
    assert out["tokens_per_run"] == 1000 * out["tokens_per_step"]


def test_measure_runs_the_trainers_own_step(monkeypatch):
    from train_fixtures import spy_on_step

    calls = spy_on_step(monkeypatch)
    measure(ModelConfig(**TINY), RunConfig(batch_size=2, dtype="fp32", device="cpu"))
    # the loop's order (tests/test_train.py): the iter-0 eval, two steps, then an eval
    assert calls == ["eval_loss"] + ["forward_backward", "optimizer_step"] * 2 + ["eval_loss"]
