"""The lab that carries notebooks 01 -> 05: modes, the lab folder, what each notebook finds or misses (and
the fix it offers), the clock, and the measurements the notebooks show."""

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from finegpt import lab
from finegpt.config import ModelConfig
from finegpt.data import prepare
from finegpt.data.sources import FINEWEB_COLUMNS
from finegpt.errors import FinegptError
from finegpt.lab.clock import FIXED_S, Clock, Device, expected_s, work
from finegpt.memory import session_plan
from finegpt.model import GPT
from finegpt.quickstart import QUICKSTART_MODEL, QUICKSTART_TRAIN
from finegpt.train import train

# ---- modes and the lab folder -------------------------------------------------------------------


def test_mode_is_asked_for_then_environment_then_full_with_cuda_else_cpu():
    assert lab.pick_mode("smoke", cuda=True, env={"FINEGPT_MODE": "cpu"}) == "smoke"
    assert lab.pick_mode(None, cuda=True, env={"FINEGPT_MODE": "cpu"}) == "cpu"
    assert lab.pick_mode(None, cuda=True, env={}) == "full"
    assert lab.pick_mode(None, cuda=False, env={}) == "cpu"


def test_full_mode_without_a_gpu_is_refused_not_run_on_the_cpu():
    with pytest.raises(FinegptError, match=r"^MODE='full': needs a CUDA GPU .*MODE = 'cpu'"):
        lab.pick_mode("full", cuda=False, env={})
    with pytest.raises(FinegptError, match=r"^MODE='fast': is not a mode"):
        lab.pick_mode("fast", cuda=False, env={})


def test_lab_folder_is_finegpt_home_then_drive_on_colab_then_content_with_a_warning(tmp_path):
    home = Path("/home/student")
    assert lab.choose_home({"FINEGPT_HOME": str(tmp_path)}, True, True, home)[0] == tmp_path
    assert lab.choose_home({}, True, True, home)[0] == Path("/content/drive/MyDrive/finegpt-lab")
    path, note = lab.choose_home({}, True, False, home)
    assert path == Path("/content/finegpt-lab") and "vanishes when this Colab runtime ends" in note
    assert "Google Drive" in note
    assert lab.choose_home({}, False, False, home)[0] == home / "finegpt-lab"


def test_each_mode_has_its_own_folder_and_04_trains_on_fineweb_only_in_full_mode(tmp_path, monkeypatch):
    monkeypatch.setenv("FINEGPT_HOME", str(tmp_path))
    cpu, full = lab.paths("cpu"), lab.paths("full")
    assert cpu.root == tmp_path / "cpu" and full.root == tmp_path / "full" and cpu.root.is_dir()
    assert cpu.train_data == cpu.shakespeare and full.train_data == full.fineweb
    assert cpu.run == tmp_path / "cpu" / "run-04"


# ---- what each mode does ------------------------------------------------------------------------


def test_cpu_mode_trains_the_quickstart_model_with_its_settings(tmp_path):
    s = lab.settings("cpu", env={})
    model_cfg, train_cfg = lab.run_configs(s, lab.LabPaths(tmp_path, "cpu"))
    assert model_cfg == ModelConfig(**QUICKSTART_MODEL, vocab_size=320)
    for key in ("batch_size", "max_iters", "learning_rate", "min_lr", "warmup_iters", "weight_decay", "beta2"):
        assert getattr(train_cfg, key) == QUICKSTART_TRAIN[key]
    assert train_cfg.lr_decay_iters == train_cfg.max_iters and train_cfg.data_dir == str(tmp_path / "shakespeare-bytes")
    assert train_cfg.keep_checkpoints >= train_cfg.max_iters // train_cfg.eval_interval  # 05 needs an early one


def test_full_mode_trains_the_session_plan_and_obeys_the_two_environment_overrides(tmp_path):
    s = lab.settings("full", "T4", env={})
    plan = session_plan("T4")
    model_cfg, train_cfg = lab.run_configs(s, lab.LabPaths(tmp_path, "full"))
    assert (train_cfg.max_iters, train_cfg.batch_size, train_cfg.dtype) == (plan.max_iters, plan.batch_size, "float16")
    assert model_cfg.n_layer == plan.model["n_layer"] and model_cfg.vocab_size == 50304
    assert lab.prepare_args(s, lab.LabPaths(tmp_path, "full"), "fineweb")["tokens"] == plan.tokens + 5_000_000
    short = lab.settings("full", "T4", env={"FINEGPT_TRAIN_MINUTES": "5", "FINEGPT_FINEWEB_FILES": "c/*.parquet"})
    assert short.run[1]["max_iters"] == session_plan("T4", train_minutes=5).max_iters
    args = lab.prepare_args(short, lab.LabPaths(tmp_path, "full"), "fineweb")
    assert args["data_files"] == "c/*.parquet" and args["tokens"] is None
    assert any("FINEGPT_FINEWEB_FILES" in n for n in short.notes)


def test_full_mode_keeps_two_checkpoints_and_says_how_much_it_writes(tmp_path):
    s = lab.settings("full", "T4", env={})
    model_cfg, train_cfg = lab.run_configs(s, lab.LabPaths(tmp_path, "full"))
    assert train_cfg.keep_checkpoints == 2
    assert lab.run_configs(lab.settings("cpu", env={}), lab.LabPaths(tmp_path, "cpu"))[1].keep_checkpoints == 50
    w = lab.plan.checkpoint_writes(s.run[0], s.run[1])
    each = w["checkpoint_bytes"]
    assert each == 12 * GPT(model_cfg).get_num_params(non_embedding=False)  # fp32 weights + AdamW's two moments
    assert w["saves"] == math.ceil(train_cfg.max_iters / train_cfg.eval_interval)
    assert w["written_bytes"] == w["saves"] * each and w["kept_bytes"] == 3 * each
    note = next(n for n in s.notes if "checkpoints" in n)
    assert note == (
        f"04 keeps its last 2 checkpoints of about {each / 1e6:,.0f} MB each in the lab folder (at most "
        f"{3 * each / 1e9:.2f} GB at once) and writes at most {w['saves']}, "
        f"{w['saves'] * each / 1e9:.1f} GB over the run"
    )


# ---- inputs: found, or missing with the fix ------------------------------------------------------


def _clock(notebook: str, mode: str, root: Path) -> Clock:
    return Clock(notebook, lab.settings(mode, env={}), lab.LabPaths(root, mode), Device("test", 1e9, 0.0, 2))


@pytest.fixture(scope="module")
def smoke_lab(tmp_path_factory):
    """01's byte shards and a 04 run in smoke mode, in one lab folder."""
    root = tmp_path_factory.mktemp("lab") / "smoke"
    s, p = lab.settings("smoke", env={}), lab.LabPaths(root, "smoke")
    prepare(**lab.prepare_args(s, p, "shakespeare"), progress=False)
    model_cfg, train_cfg = lab.run_configs(s, p)
    train(model_cfg, replace(train_cfg, max_iters=20, lr_decay_iters=20, eval_interval=10), overwrite=True)
    return p


def test_05_without_04s_checkpoint_stops_with_run_04_first(tmp_path):
    with pytest.raises(FinegptError) as e:
        lab.check(_clock("05", "smoke", tmp_path))
    msg = str(e.value)
    assert msg.startswith(f"input={str(tmp_path / 'run-04')!r}: 04's trained model: no ckpt.pt.")
    assert "Run notebook 04 first with MODE = 'smoke'" in msg and "samples only from the model 04 trained" in msg


def test_04_without_01s_shards_offers_01_or_the_prepare_call(tmp_path):
    with pytest.raises(FinegptError) as e:
        lab.check(_clock("04", "cpu", tmp_path))
    assert "01's byte shards of the plays: no shards" in str(e.value)
    assert "Run notebook 01 first with MODE = 'cpu'" in str(e.value)
    assert "prepare(**lab.prepare_args(settings, paths, 'shakespeare'))" in str(e.value)
    fix = str(e.value).split("`")[1]  # the fix runs as written in any notebook, which has lab, settings, paths
    assert fix.startswith("from finegpt.data import prepare; ") and compile(fix, "fix", "exec")
    (tmp_path / "shakespeare-bytes").mkdir()
    (tmp_path / "shakespeare-bytes" / "manifest.json").write_text("{}")
    with pytest.raises(FinegptError, match="an unfinished prepare"):
        lab.check(_clock("04", "cpu", tmp_path))


def test_found_inputs_are_printed_with_their_counts(smoke_lab, capsys):
    found = lab.check(_clock("04", "smoke", smoke_lab.root))["01's byte shards of the plays"]
    assert found.info["tokens"] == {"train": 900_000, "val": 100_000} and found.info["tokenizer"] == "bytes"
    assert "900,000 train + 100,000 val tokens" in capsys.readouterr().out
    ckpt = lab.check(_clock("05", "smoke", smoke_lab.root))["04's trained model"]
    assert ckpt.info["iter"] == 20 and ckpt.info["tokens_seen"] == 20 * 16 * 64
    assert ckpt.info["checkpoint"] == str(smoke_lab.run / "ckpt.pt") and ckpt.info["steps_kept"] == 2
    assert f"ckpt.pt at iter 20 of 20: {20 * 16 * 64:,} tokens seen" in capsys.readouterr().out


# ---- the clock -------------------------------------------------------------------------------------


def test_expected_time_is_the_sum_of_the_modelled_steps():
    s = lab.settings("full", "T4", env={}, measure=None)
    w = work(s)
    dev = Device("test", 1e12, 0.5, 4)
    assert expected_s(s, "03", dev) == FIXED_S
    assert expected_s(s, "02", dev) == pytest.approx(FIXED_S + w["02"]["flops"] / 1e12 + 0.5 * w["02"]["steps"])
    # 04 is time-boxed: its minutes, whatever the device's speed
    assert expected_s(s, "04", dev) == pytest.approx(
        FIXED_S + 60 * s.run[1]["max_minutes"] + w["04"]["download"] / lab.clock.DOWNLOAD_BYTES_PER_S
    )
    assert s.run[1]["max_minutes"] == 45 and w["04"]["seconds"] == 45 * 60


def test_the_clock_prints_its_plan_and_records_the_time_taken(tmp_path, capsys):
    clock = _clock("03", "smoke", tmp_path)
    assert "for planning, full mode on a Colab T4: about" in "\n".join(clock.plan_lines())
    clock.done()
    record = json.loads((tmp_path / "timings.json").read_text())
    assert record["03"]["expected_s"] == pytest.approx(FIXED_S) and record["03"]["took_s"] >= 0
    assert capsys.readouterr().out.startswith("notebook 03 took 0 s (expected about 20 s)")


# ---- evidence -------------------------------------------------------------------------------------


def test_head_scores_give_one_for_a_previous_token_head_and_chance_for_an_even_one():
    T = 6
    prev = np.zeros((T, T))
    prev[0, 0] = 1
    prev[np.arange(1, T), np.arange(T - 1)] = 1
    even = np.tril(np.ones((T, T))) / np.arange(1, T + 1)[:, None]
    marked = [False, True, False, False, True, False]
    s = lab.head_scores(np.stack([prev, even])[None], marked)  # (1 layer, 2 heads, T, T)
    assert s["previous token"][0, 0] == 1.0 and s["previous token"][0, 1] == pytest.approx(s["chance: previous token"])
    assert s["marked tokens"][0, 1] == pytest.approx(s["chance: marked tokens"])
    assert s["chance: previous token"] == pytest.approx(np.mean([1 / (i + 1) for i in range(1, T)]))


def test_attention_weights_are_causal_distributions_that_reproduce_the_first_block_by_hand():
    torch.manual_seed(0)
    model = GPT(ModelConfig(n_layer=2, n_head=2, n_embd=16, block_size=8, vocab_size=64)).eval()
    idx = torch.randint(0, 64, (1, 8))
    w = lab.attention_weights(model, idx)
    assert w.shape == (2, 2, 8, 8) and np.allclose(w.sum(-1), 1) and np.all(np.triu(w, 1) == 0)
    block = model.transformer.h[0]
    x = block.ln_1(model.transformer.wte(idx) + model.transformer.wpe(torch.arange(8)))
    q, k, _ = block.attn.c_attn(x).split(16, dim=2)
    q, k = (t.view(1, 8, 2, 8).transpose(1, 2) for t in (q, k))
    by_hand = (q @ k.transpose(-2, -1) / math.sqrt(8)).masked_fill(torch.ones(8, 8).triu(1).bool(), -math.inf)
    assert np.allclose(w[0], by_hand.softmax(-1)[0].detach().numpy(), atol=1e-6)


def test_real_word_share_counts_words_found_in_the_word_list():
    words = lab.corpus_words("ROMEO: What light through yonder window breaks? O'er the hill")
    assert {"romeo", "yonder", "o'er"} <= words
    assert lab.real_word_share("What lught thro yonder", words) == 0.5
    assert lab.real_word_share("!!! 123", words) == 0.0
    assert lab.real_word_share("a I O xq", words) == 0.0  # one-letter words are left out; 'xq' is not a word


def test_shard_text_decodes_the_train_split(smoke_lab):
    text = lab.shard_text(smoke_lab.shakespeare, max_tokens=2000)
    assert len(text.encode()) <= 2000 and "\ufffd" not in text[:-4]
    assert lab.real_word_share(text, lab.corpus_words(text)) == 1.0


def test_the_plays_as_fineweb_rows_have_its_columns_and_gpt2_token_counts(tmp_path):
    import pyarrow.parquet as pq

    from finegpt.data import get_tokenizer

    table = pq.read_table(lab.shakespeare_as_fineweb(tmp_path / "plays.parquet"))
    assert tuple(table.column_names) == FINEWEB_COLUMNS and table.num_rows > 38 * 5
    rows = table.slice(0, 3).to_pylist()
    assert [r["token_count"] for r in rows] == [len(get_tokenizer("gpt2").encode(r["text"])) for r in rows]
    assert not list(tmp_path.glob("*.tmp"))
