"""The run, resolved once (finegpt.run): one vocabulary for a run, one tokens-per-step, one GPU lookup, and
the trainer and the memory meter building their step from the same object."""

import sys
from dataclasses import replace
from pathlib import Path

import pytest

import finegpt.gpus
from finegpt import cli, memory
from finegpt.config import ModelConfig, TrainConfig, tokens_per_step
from finegpt.gpus import GPUS, Gpu
from finegpt.run import OPTIMIZERS, RunConfig, dtype_label, run_config, run_from_settings, torch_dtype_name

ROOT = Path(__file__).resolve().parents[1]


def test_run_config_holds_torch_dtype_names_and_a_gpu():
    run = RunConfig(batch_size=4, dtype="bf16", gpu="Tesla T4".replace("Tesla T4", "4090"))
    assert (run.dtype, run.param_dtype, run.label) == ("bfloat16", "float32", "bf16")
    assert isinstance(run.gpu, Gpu) and run.gpu is GPUS["4090"]
    pure = RunConfig(dtype="pure_bf16")
    assert (pure.dtype, pure.param_dtype, pure.label) == ("bfloat16", "bfloat16", "pure_bf16")
    assert replace(pure, batch_size=2).label == "pure_bf16"
    assert [torch_dtype_name(d) for d in ("fp32", "float16", "bf16")] == ["float32", "float16", "bfloat16"]
    assert dtype_label("float16") == "fp16"


@pytest.mark.parametrize(
    "world_size, fsdp, parallel", [(1, False, None), (1, True, None), (2, False, "ddp"), (2, True, "fsdp")]
)
def test_the_fsdp_rule_is_stated_once(world_size, fsdp, parallel):
    run = run_config(TrainConfig(gradient_accumulation_steps=4, fsdp=fsdp), world_size)
    assert run.parallel == parallel
    assert run.local_accumulation_steps == 4 // world_size


def test_tokens_per_step_is_one_function_that_every_planner_agrees_with():
    cfg = ModelConfig(n_layer=2, n_head=2, n_embd=64, block_size=128)
    train = TrainConfig(batch_size=3, gradient_accumulation_steps=4)
    expected = tokens_per_step(3, 128, 4)
    assert expected == 3 * 128 * 4
    for world_size in (1, 2, 4):
        run = run_config(train, world_size, "4090")
        assert run.tokens_per_step(128) == expected  # accumulation counted over all ranks, as TrainConfig
        assert memory.fit_summary(cfg, run, 10)["tokens_per_step"] == expected
    p = memory.plan(cfg, RunConfig(batch_size=1), 65536, "4090")
    assert p.tokens_per_step == tokens_per_step(p.batch_size, 128, p.gradient_accumulation_steps)
    b = memory.plan_budget("4090", 60.0, block_size=128)
    assert b.batch.tokens_per_step == tokens_per_step(b.batch.batch_size, 128, b.batch.gradient_accumulation_steps)
    r = memory.recommend("T4")
    assert r.tokens_per_step == tokens_per_step(r.batch_size, r.block_size, r.gradient_accumulation_steps)
    s = memory.session_plan("T4")
    assert s.tokens == s.max_iters * tokens_per_step(s.batch_size, s.model["block_size"], s.gradient_accumulation_steps)


def test_optimizers_are_named_once():
    import subprocess

    out = subprocess.run(
        ["grep", "-rn", "^OPTIMIZERS *=", str(ROOT / "finegpt")], capture_output=True, text=True, check=False
    ).stdout.splitlines()
    assert len(out) == 1 and out[0].split(":")[0].endswith("finegpt/run.py"), out
    assert OPTIMIZERS[0] == "adamw_fused"


def test_finegpt_memory_resolves_the_gpu_name_once(monkeypatch, capsys):
    calls = []
    original = finegpt.gpus.resolve_gpu

    def counted(name):
        calls.append(name)
        return original(name)

    for module in list(sys.modules.values()):  # every module that imported the function by name
        if getattr(module, "resolve_gpu", None) is original:
            monkeypatch.setattr(module, "resolve_gpu", counted)
    assert cli.main(["memory", str(ROOT / "configs" / "gpt2_124m.py"), "--gpu", "Tesla T4"]) == 0
    assert "T4" in capsys.readouterr().out
    assert calls == ["Tesla T4"]


def test_run_from_settings_reads_the_gpu_once_and_keeps_its_note():
    model_cfg, run, train_cfg, notes = run_from_settings({"n_layer": 2, "n_head": 2, "n_embd": 64}, gpu="A100")
    assert run.gpu is GPUS["A100-40"] and any("A100-40" in n for n in notes)


def test_trainer_and_meter_build_the_step_from_the_same_run(monkeypatch):
    """loop._train and measurement.build both call step.build(model_cfg, run, device) and step.wrap(parts, run)."""
    import torch

    from finegpt import step
    from finegpt.memory import measurement
    from finegpt.train import loop

    seen = []
    real_build, real_wrap = step.build, step.wrap
    monkeypatch.setattr(
        step, "build", lambda m, run, dev, **kw: seen.append(("build", run)) or real_build(m, run, dev, **kw)
    )
    monkeypatch.setattr(step, "wrap", lambda parts, run: seen.append(("wrap", run)) or real_wrap(parts, run))
    cfg = TrainConfig(batch_size=2, gradient_accumulation_steps=2, dtype="float32", device="cpu")
    run = loop.resolved_run(cfg, torch.device("cpu"), torch.float32, loop.distributed.Dist())
    assert run == run_config(replace(cfg, dtype="float32"), 1, device="cpu")
    measurement.build(
        ModelConfig(n_layer=1, n_head=2, n_embd=32, block_size=16, vocab_size=64), run, torch.device("cpu")
    )
    assert seen == [("build", run), ("wrap", run)]


@pytest.mark.parametrize(
    "argv, settings",
    [
        (["memory", "c.py", "--gpu", "T4", "--batch_size", "8"], ["--batch_size=8"]),
        (["memory", "--batch_size=8", "c.py", "--gpu=T4"], ["--batch_size=8"]),
        (["train", "--data_dir=my data", "--out_dir", "out dir/é"], ["--data_dir=my data", "--out_dir=out dir/é"]),
        (["train", "c.py", "--resume", "--max_iters", "10"], ["--max_iters=10"]),
    ],
)
def test_settings_are_written_either_way_and_may_hold_spaces(argv, settings):
    from finegpt.config import split_settings

    parser = cli.build_parser()
    sub = parser.subcommands[argv[0]]
    rest, found = split_settings(argv, {n for a in sub._actions for n in a.option_strings})
    assert found == settings
    assert "c.py" in rest or "c.py" not in argv


def test_a_path_with_a_space_reaches_the_config_not_the_config_file_slot(tmp_path, capsys):
    code = cli.main(["memory", "--n_layer", "2", "--n_head=2", "--n_embd", "64", "--out_dir=my runs/one", "--json"])
    assert code == 0 and '"params"' in capsys.readouterr().out


def test_a_setting_without_a_value_is_one_line(capsys):
    assert cli.main(["memory", "--n_layer"]) == 2
    assert capsys.readouterr().err.strip() == "error: n_layer=: has no value. Write --n_layer=VALUE or --n_layer VALUE."


def test_an_unknown_flag_of_prepare_gets_a_did_you_mean(capsys):
    assert cli.main(["prepare", "--sorce=shakespeare"]) == 2
    assert "Did you mean --source?" in capsys.readouterr().err
