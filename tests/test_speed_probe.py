"""`finegpt speed`: finegpt.step's real step timed after warm-up, with the run the trainer resolves; nothing written."""

import json

from train_fixtures import TINY_MODEL, TINY_TRAIN, make_data, one_torch_thread  # noqa: F401

from finegpt.cli import main
from finegpt.config import ModelConfig, TrainConfig
from finegpt.memory import probe_speed
from finegpt.memory.probe import format_speed


def test_probe_times_the_runs_own_step_on_random_tokens(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = TrainConfig(**{**TINY_TRAIN, "max_iters": 100, "out_dir": str(tmp_path / "out")})
    s = probe_speed(ModelConfig(**TINY_MODEL, vocab_size=320), cfg, seconds=0.2)
    assert (s.device, s.dtype, s.compile, s.data) == ("cpu", "float32", False, "random tokens")
    assert (s.batch_size, s.gradient_accumulation_steps, s.block_size, s.tokens_per_step) == (8, 2, 32, 512)
    assert s.steps >= 3 and s.step_s_range[0] <= s.step_s <= s.step_s_range[1]
    assert s.tokens_per_s == 512 / s.step_s and s.mfu is None  # no peak is known for a CPU
    assert s.run_s_range == (100 * s.step_s_range[0], 100 * s.step_s_range[1])
    assert list(tmp_path.iterdir()) == []  # no run folder, no file
    assert "tokens/s" in format_speed(s) and "max_iters=100" in format_speed(s)


def test_finegpt_speed_reads_a_config_and_overrides_and_prepared_data(tmp_path, monkeypatch, capsys):
    data = make_data(tmp_path / "data", n_train=4000, n_val=1000)
    (tmp_path / "tiny.py").write_text(
        "n_layer = 1\nn_head = 2\nn_embd = 16\nblock_size = 16\ncompile = False\ndevice = 'cpu'\n", encoding="utf-8"
    )
    before = sorted(p.name for p in tmp_path.rglob("*"))
    monkeypatch.chdir(tmp_path)
    args = ["speed", "tiny.py", "--batch_size", "4", "--gradient_accumulation_steps=3", f"--data_dir={data}"]
    assert main([*args, "--seconds=0.1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["batch_size"], out["gradient_accumulation_steps"], out["tokens_per_step"]) == (4, 3, 4 * 3 * 16)
    assert out["data"] == str(data) and out["dtype"] == "float32"
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
