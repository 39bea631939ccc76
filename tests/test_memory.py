"""finegpt.memory: estimate() agrees with a measured step, known counts, solvers, bad input, CLI."""

import json

import pytest
import torch

from finegpt.cli import main
from finegpt.config import ModelConfig
from finegpt.errors import FinegptError
from finegpt.memory import (
    GPUS,
    RunConfig,
    check_guide,
    estimate,
    fits,
    flops_per_token,
    get_gpu,
    max_micro_batch,
    measure,
    peak_flops,
    plan,
    recommend,
    session_plan,
    tokens_per_run,
)
from finegpt.model import count_params

TINY = dict(n_layer=2, n_head=2, n_embd=32, block_size=32, vocab_size=512)  # V >> C, as in real GPTs


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny ops run fastest on one thread, and the test must not fight other tests for cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


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


@pytest.mark.parametrize("model_kw,run_kw", GRID, ids=[f"{m}-{r}" for m, r in GRID])
def test_estimate_is_within_one_percent_of_a_measured_cpu_step(model_kw, run_kw):
    cfg = ModelConfig(**{**TINY, **model_kw})
    run = RunConfig(batch_size=4, device="cpu", **run_kw)
    measured, predicted = measure(cfg, run), estimate(cfg, run)
    for phase in ("train", "optimizer", "eval"):
        assert predicted.peaks[phase] == pytest.approx(measured[phase], rel=0.01), phase
    assert predicted.peak_bytes == pytest.approx(measured["peak"], rel=0.01)


def test_fake_tensor_measurement_equals_the_real_one_without_allocating():
    cfg, run = ModelConfig(**TINY), RunConfig(batch_size=4, dtype="bf16", device="cpu")
    real, fake = measure(cfg, run), measure(cfg, run, device="fake")
    assert {k: fake[k] for k in real} == real


def test_report_names_every_term_and_the_peak_is_the_max_of_three_phases():
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
    assert not checks["24 GB config (10L/10H/640): fits a RTX 4090 at batch_size=32"].holds  # eager
    assert checks["24 GB config (10L/10H/640): tokens per optimizer step"].holds


def test_solvers_agree_with_estimate():
    cfg = ModelConfig(n_layer=10, n_head=10, n_embd=640)
    run = RunConfig(batch_size=1, gpu="4090")
    b = max_micro_batch(cfg, run)
    assert b > 0 and fits(cfg, RunConfig(batch_size=b, gpu="4090"))
    assert not fits(cfg, RunConfig(batch_size=b + 1, gpu="4090"))
    p = plan(cfg, run, target_tokens_per_step=524_288)
    assert p.batch_size <= b and p.tokens_per_step >= 524_288
    assert p.batch_size * p.gradient_accumulation_steps * 1024 == p.tokens_per_step


def test_every_gpu_gets_a_recommendation_that_fits():
    for key in GPUS:
        r = recommend(key)
        cfg = ModelConfig(n_layer=r.n_layer, n_head=r.n_head, n_embd=r.n_embd, bias=False)
        assert fits(cfg, RunConfig(batch_size=r.batch_size, dtype=r.dtype, gpu=key)), key
    assert recommend("T4").dtype == "fp16"


def test_t4_session_plan_fits_with_headroom_and_stays_in_time():
    s = session_plan("T4", train_minutes=45)
    assert s.dtype == "fp16" and s.minutes <= 45.5 and s.peak_gib < 0.9 * GPUS["T4"].memory_gib
    assert 5 < s.tokens_per_body_param < 80 and s.model["n_layer"] >= 6  # a 4-layer toy writes no English


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


def test_cli_memory_answers_whether_the_guide_config_fits(tmp_path, capsys):
    cfg = tmp_path / "guide.py"
    cfg.write_text(
        "batch_size=32; gradient_accumulation_steps=16; block_size=1024\n"
        "n_layer=10; n_head=10; n_embd=640; dropout=0.0; max_iters=50000\n"
    )
    assert main(["memory", str(cfg), "--gpu", "4090"]) == 0
    assert "OUT OF MEMORY" in capsys.readouterr().out
    assert main(["memory", str(cfg), "--gpu", "4090", "--batch_size=8", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["report"]["fits"] is True and out["tokens_per_run"] == 50_000 * 8 * 16 * 1024
    assert main(["memory", "--gpu", "4900"]) == 2


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


def test_plan_prefers_an_exact_split_of_the_effective_batch():
    from finegpt.memory import RunConfig, max_micro_batch, plan

    cfg = ModelConfig(n_layer=10, n_head=10, n_embd=640, block_size=1024, bias=False)
    run = RunConfig(batch_size=32, gradient_accumulation_steps=16, dtype="bf16", gpu="4090")
    assert max_micro_batch(cfg, run, "4090") == 19
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
    assert calls == ["forward_backward", "optimizer_step"] * 2 + ["eval_loss"]  # two steps, then eval
