"""max_minutes: the loop times its own step after a warm-up, picks max_iters so the run ends within the budget
with the last step at min_lr, and a killed time-boxed run resumes the same plan."""

import time

import pytest
from train_fixtures import TINY_MODEL, TINY_TRAIN, make_data, one_torch_thread  # noqa: F401

from finegpt.config import ModelConfig, TrainConfig
from finegpt.errors import FinegptError
from finegpt.train import load_checkpoint, train
from finegpt.train.timebox import evals_between, plan_iters

BOX = dict(max_minutes=0.1, max_iters=5, eval_interval=100, eval_iters=4, log_interval=10, warmup_iters=5)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("data"))


def cfgs(data_dir, out_dir, **train_kw):
    return ModelConfig(**TINY_MODEL), TrainConfig(
        **{**TINY_TRAIN, "data_dir": str(data_dir), "out_dir": str(out_dir), **train_kw}
    )


def test_plan_iters_fits_steps_and_evals_in_the_time_left():
    # 10 s left, 0.1 s a step, an eval (with its checkpoint) 1 s every 20 steps and one at the end
    n = plan_iters(0, 10.0, 0.1, 1.0, 20)
    cost = lambda m: m * 0.1 + evals_between(0, m, 20) * 1.0  # noqa: E731
    assert cost(n) <= 10.0 < cost(n + 1)
    assert evals_between(0, 40, 20) == 2 and evals_between(0, 41, 20) == 3 and evals_between(25, 40, 20) == 1
    assert plan_iters(7, 0.0, 1.0, 1.0, 10) == 8  # no time left: one more step, then stop


def test_max_minutes_must_be_a_non_negative_number():
    with pytest.raises(FinegptError, match=r"^max_minutes=-1: must be a number of minutes >= 0"):
        TrainConfig(max_minutes=-1)


def test_a_seconds_long_time_box_ends_on_time_at_min_lr(data_dir, tmp_path):
    times = []
    model_cfg, cfg = cfgs(data_dir, tmp_path / "out", **BOX)
    t0 = time.time()
    result = train(model_cfg, cfg, callback=lambda row: times.append(time.time()))
    took_s = time.time() - t0
    budget_s = 60 * BOX["max_minutes"]
    assert times[-1] - times[0] <= 1.15 * budget_s  # from the iter-0 eval to the last eval and checkpoint
    assert took_s >= 0.8 * budget_s  # and it used the budget: far more than max_iters=5 steps
    steps = [row for row in result["history"] if "loss" in row]
    ckpt = load_checkpoint(tmp_path / "out")
    plan = ckpt["time_box"]
    assert result["iter_num"] == plan["max_iters"] == ckpt["iter_num"] > 5
    assert plan["lr_decay_iters"] == plan["max_iters"] - 1  # the last step runs at min_lr
    assert ckpt["config"]["train"]["max_iters"] == plan["max_iters"]
    assert steps[-1]["lr"] == pytest.approx(cfg.min_lr, rel=0.02)


def test_a_killed_time_boxed_run_resumes_the_same_plan(data_dir, tmp_path):
    out = tmp_path / "out"

    def kill_after_a_planned_checkpoint(row):
        if "loss" in row and (out / "ckpt.pt").exists() and "time_box" in load_checkpoint(out):
            raise KeyboardInterrupt  # as if the process had died here

    with pytest.raises(KeyboardInterrupt):
        train(*cfgs(data_dir, out, **{**BOX, "eval_interval": 20}), callback=kill_after_a_planned_checkpoint)
    saved = load_checkpoint(out)
    plan, killed_at = saved["time_box"], saved["iter_num"]
    assert killed_at < plan["max_iters"]
    rows = []
    result = train(*cfgs(data_dir, out, **{**BOX, "eval_interval": 20, "init_from": "resume"}), callback=rows.append)
    assert result["iter_num"] == plan["max_iters"]
    assert load_checkpoint(out)["time_box"] == plan
    assert [r for r in rows if "loss" in r][-1]["lr"] == pytest.approx(
        BOX.get("min_lr", TINY_TRAIN["min_lr"]), rel=0.02
    )


def test_two_ddp_processes_stop_together_on_rank_0s_plan(tmp_path):
    from train_fixtures import TORCHRUN, overrides, run

    make_data(tmp_path / "data")
    settings = {**TINY_MODEL, **TINY_TRAIN, **BOX, "eval_interval": 50, "data_dir": "data", "out_dir": "ddp"}
    out = run([*TORCHRUN, "train", *overrides(settings)], tmp_path)  # a rank stopping alone would hang the other
    plan = load_checkpoint(tmp_path / "ddp")["time_box"]
    assert out.count("time box (planned after warm-up)") == 1  # logged by rank 0 only
    assert load_checkpoint(tmp_path / "ddp")["iter_num"] == plan["max_iters"]
