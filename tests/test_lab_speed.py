"""Plans from measured speed: on a GPU the lab probes each candidate model and plans from what it measured;
without one it plans from finegpt.memory.speed's model. 04 trains time-boxed. Tested with a fake probe."""

from finegpt.lab.plan import settings
from finegpt.memory import session_plan
from finegpt.memory.planner import LADDER


def fake_probe(mfu_by_width: dict):
    calls = []

    def measure(model_cfg, batch):
        calls.append((model_cfg.n_layer, model_cfg.n_embd, batch.batch_size))
        return mfu_by_width[model_cfg.n_embd]

    return measure, calls


def test_a_faster_card_than_modelled_gets_a_bigger_model_and_more_tokens():
    modelled = session_plan("T4")
    slow, slow_calls = fake_probe({C: 0.04 for _, _, C in LADDER})
    fast, _ = fake_probe({C: 0.60 for _, _, C in LADDER})
    at_slow, at_fast = session_plan("T4", measure=slow), session_plan("T4", measure=fast)
    assert at_slow.model["n_embd"] < modelled.model["n_embd"] < at_fast.model["n_embd"]
    assert at_slow.mfu == 0.04 and at_fast.mfu == 0.60 and at_slow.mfu_range == (0.04, 0.04)
    assert len(slow_calls) == len({c[:2] for c in slow_calls}) >= 3  # each candidate that fits, probed once
    assert "measured on this T4" in at_slow.notes[0] and "speed model" in modelled.notes[0]


def test_the_plan_uses_each_candidates_own_measured_speed():
    # a low MFU everywhere but the 6L/384 model, measured much faster: the planner takes what was measured
    speeds = {C: 0.02 for _, _, C in LADDER}
    measure, _ = fake_probe({**speeds, 384: 0.25})
    s = session_plan("T4", measure=measure)
    assert s.mfu == 0.25 and s.model["n_embd"] == 384


def test_full_mode_plans_04_from_the_probe_when_given_and_trains_time_boxed():
    measure, calls = fake_probe({C: 0.2 for _, _, C in LADDER})
    measured = settings("full", "T4", env={"FINEGPT_TRAIN_MINUTES": "30"}, measure=measure)
    modelled = settings("full", "T4", env={"FINEGPT_TRAIN_MINUTES": "30"}, measure=None)
    assert calls and measured.run[1]["max_minutes"] == modelled.run[1]["max_minutes"] == 30
    assert any("measured on this T4" in n for n in measured.notes)
    assert any("speed model" in n for n in modelled.notes)
    assert settings("cpu").run[1].get("max_minutes", 0) == 0  # cpu and smoke modes keep their fixed runs
