"""Evaluation: GPT-2 weights convert exactly, val loss is a stated deterministic pass, HellaSwag scores
equal a direct computation, and bad input gives one-line errors."""

import builtins
import json
import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from finegpt.config import ModelConfig
from finegpt.data import get_tokenizer
from finegpt.data.shards import write_meta, write_shard
from finegpt.errors import FinegptError
from finegpt.eval import evaluate, hellaswag, load_gpt2
from finegpt.model import GPT


def tiny_gpt(vocab_size=320, block_size=32, seed=0):
    torch.manual_seed(seed)
    return GPT(ModelConfig(n_layer=2, n_head=2, n_embd=32, block_size=block_size, vocab_size=vocab_size)).eval()


# ---- GPT-2 weights ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.GPT2Config(
        n_layer=2,
        n_head=4,
        n_embd=64,
        n_positions=48,
        vocab_size=100,
        bos_token_id=0,
        eos_token_id=0,
        initializer_range=0.2,
    )  # big weights: tanh GELU differs visibly
    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(cfg).eval()
    path = tmp_path_factory.mktemp("hf_gpt2")
    hf.save_pretrained(path)
    idx = torch.randint(0, 100, (2, 48))
    with torch.no_grad():
        expected = hf(idx).logits
    return path, idx, expected


def test_gpt2_weights_load_with_equal_logits(hf_dir):
    path, idx, expected = hf_dir
    model = load_gpt2(str(path))
    assert model.config.vocab_size == 128 and model.config.block_size == 48 and model.config.bias
    logits, _ = model(idx)
    assert logits.shape == (2, 48, 128)
    torch.testing.assert_close(logits[..., :100], expected, atol=1e-5, rtol=0)


def test_gpt2_padded_vocab_rows_score_the_mean_logit(hf_dir):
    path, idx, _ = hf_dir
    model = load_gpt2(str(path))
    wte = model.transformer.wte.weight
    assert model.lm_head.weight is wte  # tied, as in GPT-2
    torch.testing.assert_close(wte[100:], wte[:100].mean(0, keepdim=True).expand(28, -1))
    logits, _ = model(idx)
    torch.testing.assert_close(logits[..., 100], logits[..., :100].mean(-1), atol=1e-4, rtol=0)


def test_unknown_baseline_name_is_one_line_error():
    with pytest.raises(FinegptError) as err:
        load_gpt2("gpt3")
    assert str(err.value).startswith("baseline='gpt3': is not a GPT-2 model. Use one of gpt2, gpt2-medium")
    assert "\n" not in str(err.value)


def test_missing_transformers_says_how_to_install(monkeypatch):
    real_import = builtins.__import__

    def no_transformers(name, *args, **kwargs):
        if name == "transformers" or name.startswith("transformers."):
            raise ImportError("No module named 'transformers'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_transformers)
    with pytest.raises(FinegptError, match=r"needs the transformers package\. Install it with `pip install transf"):
        load_gpt2("gpt2")


# ---- val loss -----------------------------------------------------------------------------------


def make_shards(data_dir, tokenizer_name="bytes", val_tokens=1000, seed=0):
    tok = get_tokenizer(tokenizer_name)
    rng = np.random.default_rng(seed)
    data_dir.mkdir(parents=True, exist_ok=True)
    val = rng.integers(0, tok.vocab_size, val_tokens)
    train = rng.integers(0, tok.vocab_size, 2000)
    shards = [
        {"file": name, "split": split, "tokens": write_shard(data_dir / name, tokens, tok)}
        for name, split, tokens in [("val_000000.bin", "val", val), ("train_000001.bin", "train", train)]
    ]
    write_meta(data_dir, tok, shards)
    return val


def test_val_loss_is_sequential_windows_and_states_token_count(tmp_path):
    val = make_shards(tmp_path / "data")
    model = tiny_gpt()
    result = evaluate(model, tmp_path / "data", tokens=200, batch_size=3, tokenizer="bytes")
    # 200 tokens in windows of 32: 6 windows = 192 scored tokens, back to back from the start
    assert result["tokens"] == 192 and result["block_size"] == 32 and result["split"] == "val"
    rows = torch.from_numpy(val[: 6 * 32 + 1].astype(np.int64))
    x, y = rows[:-1].view(6, 32), rows[1:].view(6, 32)
    with torch.no_grad():
        logits, _ = model(x)
    expected = F.cross_entropy(logits[..., :257].reshape(-1, 257), y.reshape(-1)).item()
    assert result["loss"] == pytest.approx(expected, abs=1e-5)
    assert result["perplexity"] == pytest.approx(math.exp(expected), rel=1e-5)
    assert evaluate(model, tmp_path / "data", tokens=200, batch_size=3) == result  # deterministic
    assert evaluate(model, tmp_path / "data", tokens=200, batch_size=4)["loss"] == pytest.approx(expected, abs=1e-5)


def test_val_loss_of_whole_split(tmp_path):
    make_shards(tmp_path / "data", val_tokens=100)
    result = evaluate(tiny_gpt(), tmp_path / "data", tokens=None)
    assert result["tokens"] == 96  # 99 targets -> 3 windows of 32


def test_shards_of_another_tokenizer_are_refused(tmp_path):
    make_shards(tmp_path / "data", tokenizer_name="bytes")
    with pytest.raises(FinegptError) as err:
        evaluate(tiny_gpt(vocab_size=50304), tmp_path / "data", tokenizer="gpt2")
    assert str(err.value).startswith("tokenizer='gpt2': the model reads gpt2 tokens but the shards in")
    assert "were tokenized with bytes" in str(err.value) and "\n" not in str(err.value)


def test_model_vocab_smaller_than_shards_is_refused(tmp_path):
    make_shards(tmp_path / "data", tokenizer_name="bytes")
    with pytest.raises(FinegptError, match=r"^vocab_size=128: smaller than the 257 tokens"):
        evaluate(tiny_gpt(vocab_size=128), tmp_path / "data")


# ---- HellaSwag ----------------------------------------------------------------------------------

EXAMPLES = [
    {
        "ctx": "A man is sitting on a roof. he",
        "label": 3,
        "endings": [
            "is using wrap to wrap a pair of skis.",
            "is ripping level tiles off.",
            "is holding a rubik's cube.",
            "starts pulling up roofing on a roof.",
        ],
    },
    {
        "ctx": "The cat",
        "label": 0,
        "endings": ["sleeps.", "is a dog that barks loudly at night.", "x", "runs away fast."],
    },
    {
        "ctx": "She opens the oven and",
        "label": 1,
        "endings": ["sings.", "takes out the bread.", "flies to the moon with a spoon.", "the the the"],
    },
    {
        "ctx": "To tie a tie, first",
        "label": 2,
        "endings": ["eat.", "jump over the fence twice.", "drape it around your neck.", "no"],
    },
]


def direct_scores(model, tok, example):
    """Each ending scored alone, unpadded: summed and mean log-prob of its tokens after the context."""
    ctx = tok.encode(example["ctx"])
    sums, means = [], []
    for ending in example["endings"]:
        end = tok.encode(" " + ending)
        ids = torch.tensor([ctx + end])
        with torch.no_grad():
            logits, _ = model(ids)
        logp = F.log_softmax(logits[0, :-1, : tok.vocab_size], dim=-1)
        picked = logp[torch.arange(len(ctx) - 1, len(ids[0]) - 1), torch.tensor(end)]
        sums.append(picked.sum().item())
        means.append(picked.mean().item())
    return sums, means


@pytest.mark.parametrize("tokenizer_name", ["bytes", "gpt2"])
def test_hellaswag_scores_and_picks_equal_direct_computation(tmp_path, tokenizer_name):
    path = tmp_path / "hs.jsonl"
    path.write_text("".join(json.dumps(ex) + "\n" for ex in EXAMPLES))
    tok = get_tokenizer(tokenizer_name)
    model = tiny_gpt(vocab_size=-(-tok.vocab_size // 64) * 64, block_size=128, seed=1)
    result = hellaswag(model, tok, path, batch_size=3, details=True)
    correct = correct_norm = 0
    for ex, got in zip(EXAMPLES, result["details"]):
        sums, means = direct_scores(model, tok, ex)
        assert got["sum_logprob"] == pytest.approx(sums, abs=1e-4)
        assert got["mean_logprob"] == pytest.approx(means, abs=1e-5)
        assert got["pred"] == int(np.argmax(sums)) and got["pred_norm"] == int(np.argmax(means))
        correct += got["pred"] == ex["label"]
        correct_norm += got["pred_norm"] == ex["label"]
    assert result["examples"] == 4
    assert (result["acc"], result["acc_norm"]) == (correct / 4, correct_norm / 4)


def test_missing_hellaswag_file_is_one_line_error(tmp_path):
    with pytest.raises(FinegptError) as err:
        hellaswag(tiny_gpt(), get_tokenizer("bytes"), tmp_path / "nope.jsonl")
    assert str(err.value).startswith(f"hellaswag={str(tmp_path / 'nope.jsonl')!r}: no such file. Pass the path")
    assert "\n" not in str(err.value)


# ---- the CLI: one command scores a checkpoint; samples it ---------------------------------------


def write_checkpoint(out_dir, model, data_dir):
    from finegpt.config import config_dict
    from finegpt.train.checkpoint import save_checkpoint

    ckpt = {
        "model": model.state_dict(),
        "iter_num": 0,
        "best_val_loss": 9.9,
        "config": config_dict(model.config),
        "data": {"data_dir": str(data_dir), "tokenizer": "bytes", "vocab_size": 257},
    }
    save_checkpoint(ckpt, out_dir)


def test_cli_eval_and_sample_a_checkpoint(tmp_path, capsys):
    from finegpt.cli import main

    make_shards(tmp_path / "data")
    model = tiny_gpt()
    write_checkpoint(tmp_path / "out", model, tmp_path / "data")
    assert main(["eval", "--ckpt", str(tmp_path / "out"), "--tokens", "200", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    expected = evaluate(model, tmp_path / "data", tokens=200, batch_size=8)
    assert row["tokens"] == 192 and row["loss"] == pytest.approx(expected["loss"], abs=1e-6)
    assert (
        main(
            ["sample", "--ckpt", str(tmp_path / "out"), "--prompt", "Hi", "--max_new_tokens", "5", "--temperature", "0"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"===== {tmp_path / 'out'} | sample 1/1 ====="
    assert out.splitlines()[1].startswith("Hi")


def test_cli_baseline_on_shards_of_another_tokenizer_exits_2_before_download(tmp_path, capsys):
    from finegpt.cli import main

    make_shards(tmp_path / "data")
    write_checkpoint(tmp_path / "out", tiny_gpt(), tmp_path / "data")
    assert main(["eval", "--ckpt", str(tmp_path / "out"), "--baseline", "gpt2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: tokenizer='gpt2': gpt2 reads gpt2 tokens but the shards in") and err.count("\n") == 1
