"""One planner and one fit rule: recommend and session_plan give the T4 one answer, the Chinchilla figures
count the parameters the planner scores, and "fits at batch B" always comes with a largest micro-batch >= B."""

import json
from dataclasses import replace

import pytest

from finegpt.cli import main
from finegpt.config import config_file_settings
from finegpt.gpus import GPUS
from finegpt.memory import estimate, max_micro_batch, recommend, run_from_settings, session_plan
from finegpt.memory.solve import CHINCHILLA_TOKENS_PER_PARAM, body_params, chinchilla_tokens


def test_recommend_and_session_plan_give_the_t4_one_answer(capsys):
    assert main(["recommend", "--gpu", "T4", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    s = session_plan("T4")
    assert (row["n_layer"], row["n_head"], row["n_embd"]) == (s.model["n_layer"], s.model["n_head"], s.model["n_embd"])
    assert row["block_size"] == s.model["block_size"] == 512
    assert (row["batch_size"], row["gradient_accumulation_steps"]) == (s.batch_size, s.gradient_accumulation_steps)
    assert (row["max_iters"], row["tokens"]) == (s.max_iters, s.tokens)


def test_chinchilla_counts_the_non_embedding_parameters_the_planner_scores():
    r = recommend("4090")
    s = session_plan("T4")
    assert r.chinchilla_tokens == CHINCHILLA_TOKENS_PER_PARAM * r.params - 20 * 50304 * r.n_embd  # tied wte left out
    assert s.tokens_per_body_param == round(s.tokens / body_params(replace_model(s.model)), 1)
    assert chinchilla_tokens(replace_model(s.model)) == 20 * body_params(replace_model(s.model))


def replace_model(fields: dict):
    from finegpt.config import ModelConfig

    return ModelConfig(**fields)


@pytest.mark.parametrize("config", ["configs/guide_24gb.py", "configs/gpt2_124m.py"])
@pytest.mark.parametrize("compile_", [True, False])
def test_fits_at_batch_b_means_a_largest_micro_batch_of_at_least_b_on_every_gpu(config, compile_):
    values, _ = config_file_settings(config, {"compile": compile_})
    for key in GPUS:
        model_cfg, run, _, _ = run_from_settings(values, gpu=key)
        largest = max_micro_batch(model_cfg, run)
        if estimate(model_cfg, run).verdict.status == "fits":
            assert largest >= run.batch_size, (config, key)
        if largest:
            assert estimate(model_cfg, replace(run, batch_size=largest)).verdict.status == "fits", key
        assert estimate(model_cfg, replace(run, batch_size=largest + 1)).verdict.status != "fits", key


def test_the_guide_config_on_a_4090_compiled_fits_at_32_and_says_so_in_its_largest_micro_batch(capsys):
    assert main(["memory", "configs/guide_24gb.py", "--gpu", "4090", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["compiled"]["verdict"]["status"] == "fits" and out["max_micro_batch"] >= 32
