"""finegpt.data: tokenizers, shards, the Shakespeare source, BatchLoader, and prepare's refusals."""

import json

import numpy as np
import pytest
import torch

from finegpt.cli import main
from finegpt.data import BatchLoader, get_tokenizer, iter_documents, load_meta, prepare, read_shard, write_shard
from finegpt.errors import FinegptError


def write_text(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_gpt2_ids_through_the_prepare_path_are_exact(tmp_path):
    write_text(tmp_path / "hello.txt", "Hello world")
    prepare(str(tmp_path / "hello.txt"), tmp_path / "out", "gpt2", val_tokens=0, workers=1, progress=False)
    meta = load_meta(tmp_path / "out")
    assert (meta["tokenizer"], meta["vocab_size"], meta["eot"]) == ("gpt2", 50257, 50256)
    header, tokens = read_shard(tmp_path / "out" / "train_000000.bin")
    assert tokens.tolist() == [50256, 15496, 995]
    assert get_tokenizer("gpt2").decode([15496, 995]) == "Hello world"


def test_bytes_tokenizer_roundtrips_utf8_and_marks_eot():
    tok = get_tokenizer("bytes")
    assert (tok.vocab_size, tok.eot) == (257, 256)
    assert tok.encode("hé") == [104, 195, 169]
    assert tok.decode(tok.encode("hé") + [256] + tok.encode("x")) == "hé<|endoftext|>x"
    assert tok.decode([195, 300]) == "\ufffd\ufffd"  # a half character and an id from the padded vocab


def test_unknown_tokenizer_names_the_choices():
    with pytest.raises(FinegptError, match=r"tokenizer='gpt4': unknown tokenizer\. Use gpt2"):
        get_tokenizer("gpt4")


def test_shard_roundtrips_header_and_tokens(tmp_path):
    tok = get_tokenizer("gpt2")
    ids = np.array([50256, 15496, 995, 50256, 0, 7], dtype=np.int64)
    assert write_shard(tmp_path / "s.bin", ids, tok) == 6
    header, tokens = read_shard(tmp_path / "s.bin")
    assert header == {
        "magic": 20240520,
        "version": 1,
        "num_tokens": 6,
        "vocab_size": 50257,
        "eot": 50256,
        "tokenizer": "gpt2",
        "dtype": "uint16",
    }
    assert tokens.tolist() == ids.tolist()
    assert (tmp_path / "s.bin").stat().st_size == 1024 + 2 * 6
    assert not list(tmp_path.glob("*.tmp"))


def test_truncated_or_foreign_shard_is_refused(tmp_path):
    write_shard(tmp_path / "s.bin", np.arange(100), get_tokenizer("bytes"))
    data = (tmp_path / "s.bin").read_bytes()
    (tmp_path / "cut.bin").write_bytes(data[:-2])
    with pytest.raises(FinegptError, match=r"1222 bytes but its header promises 1224 \(100 tokens\)"):
        read_shard(tmp_path / "cut.bin")
    (tmp_path / "foreign.bin").write_bytes(b"\0" * 2048)
    with pytest.raises(FinegptError, match="magic number 0 is not 20240520"):
        read_shard(tmp_path / "foreign.bin")


def test_shakespeare_is_38_plain_text_plays():
    plays = list(iter_documents("shakespeare"))
    assert len(plays) == 38
    macbeth = next(p for p in plays if p.startswith("Macbeth\n"))
    assert "First Witch:\nWhen shall we three meet again\nIn thunder, lightning, or in rain?\n" in macbeth
    assert "Thunder and lightning. Enter three Witches" in macbeth
    assert not any(c in "".join(plays) for c in "*_#\\")


def test_prepare_shakespeare_puts_eot_before_every_play_and_holds_out_val(tmp_path):
    stats = prepare(out=tmp_path / "shk", progress=False)
    plays = list(iter_documents("shakespeare"))
    total = sum(len(p.encode()) + 1 for p in plays)
    assert stats["tokens"] == total and stats["documents"] == 38
    val = BatchLoader(tmp_path / "shk", "val", 1, 8)
    train = BatchLoader(tmp_path / "shk", "train", 1, 8)
    assert val.num_tokens == round(0.1 * (total - 38))  # val_fraction of the size estimated from bytes
    assert val.num_tokens + train.num_tokens == total
    stream = np.concatenate([np.asarray(s) for s in val.shards + train.shards])
    starts = np.flatnonzero(stream == 256)
    assert len(starts) == 38 and starts[0] == 0
    assert bytes(stream[1 : starts[1]].astype(np.uint8)).decode() == plays[0]
    assert (train.vocab_size, train.tokenizer, train.eot) == (257, "bytes", 256)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("loader") / "data"
    src = tmp_path_factory.mktemp("src")
    for i in range(5):
        write_text(src / f"doc{i}.txt", "".join(chr(97 + (i + j) % 26) for j in range(3000 + 100 * i)))
    prepare(str(src / "*.txt"), out, "bytes", shard_tokens=1000, val_tokens=2000, progress=False)
    return out


def test_batch_is_a_pure_function_of_seed_split_and_step(data_dir):
    a = BatchLoader(data_dir, "train", 4, 16, seed=7)
    b = BatchLoader(data_dir, "train", 4, 16, seed=7)
    for step in (5, 0, 5, 123):
        assert all(torch.equal(u, v) for u, v in zip(a.get_batch(step), b.get_batch(step)))
    assert not torch.equal(a.get_batch(0)[0], a.get_batch(1)[0])
    assert not torch.equal(a.get_batch(0)[0], BatchLoader(data_dir, "train", 4, 16, seed=8).get_batch(0)[0])
    x, y = a.get_batch(3)
    assert x.shape == y.shape == (4, 16) and x.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])


def test_ranks_slice_the_single_process_batch(data_dir):
    whole = BatchLoader(data_dir, "train", 6, 16, seed=3).get_batch(11)
    parts = [BatchLoader(data_dir, "train", 2, 16, seed=3, rank=r, world_size=3).get_batch(11) for r in range(3)]
    assert torch.equal(torch.cat([p[0] for p in parts]), whole[0])
    assert torch.equal(torch.cat([p[1] for p in parts]), whole[1])


def test_windows_cross_shard_boundaries_in_stream_order(data_dir):
    loader = BatchLoader(data_dir, "train", 1, 16)
    assert len(loader.shards) > 10  # shard_tokens=1000
    stream = np.concatenate([np.asarray(s) for s in loader.shards])
    for start in (0, 990, 1995, loader.num_tokens - 17):
        assert loader._window(start, 17).tolist() == stream[start : start + 17].tolist()


def test_loader_errors_name_the_fix(data_dir, tmp_path):
    with pytest.raises(
        FinegptError, match=r"data_dir='.*nowhere': no such directory\. Run `finegpt prepare --out .*nowhere`"
    ):
        BatchLoader(tmp_path / "nowhere", "train", 1, 8)
    with pytest.raises(FinegptError, match=r"block_size=4000: the val split of .* holds only 2000 tokens"):
        BatchLoader(data_dir, "val", 1, 4000)


def test_prepare_refuses_non_empty_out_without_overwrite(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    write_text(out / "notes.txt", "mine")
    assert main(["prepare", "--out", str(out), "--no_progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: out=") and "is not empty" in err and "Pass --overwrite" in err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert main(["prepare", "--out", str(out), "--overwrite", "--no_progress"]) == 0
    assert (out / "notes.txt").read_text() == "mine"  # not one of prepare's files
    assert load_meta(out)["tokens"]["val"] > 0


@pytest.mark.parametrize(
    "content, match",
    [
        (b"ok text\n\xff\xfe bad", r"invalid UTF-8 at byte 8 \(byte 0xff\)"),
        (b"", "has no documents with text"),
    ],
)
def test_bad_txt_input_is_refused_before_anything_is_written(tmp_path, content, match):
    (tmp_path / "in.txt").write_bytes(content)
    out = tmp_path / "out"
    out.mkdir()
    write_shard(out / "train_000000.bin", np.arange(10), get_tokenizer("bytes"))
    before = (out / "train_000000.bin").read_bytes()
    with pytest.raises(FinegptError, match=match):
        prepare(str(tmp_path / "in.txt"), out, overwrite=True, progress=False)
    assert (out / "train_000000.bin").read_bytes() == before


def test_bad_jsonl_input_gives_clear_errors(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(b'{"body": "x"}\n')
    with pytest.raises(
        FinegptError, match=r"text_column='text': missing from line 1 of .*a.jsonl \(it has \['body'\]\)"
    ):
        prepare(str(tmp_path / "a.jsonl"), tmp_path / "o1", progress=False)
    (tmp_path / "b.jsonl").write_bytes(b'{"text": "fine"}\n{"text": "caf\xe9"}\n')
    with pytest.raises(FinegptError, match=r"invalid UTF-8 at line 2"):
        prepare(str(tmp_path / "b.jsonl"), tmp_path / "o2", progress=False)
    assert not (tmp_path / "o2" / "meta.json").exists()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"tokens": 0}, r"tokens=0: must be a whole number > 0"),
        ({"tokens": -5}, r"tokens=-5: must be a whole number > 0"),
        ({"tokens": 100, "val_tokens": 100}, r"val_tokens=100: leaves no train tokens"),
        ({"source": "no/such/*.parquet"}, r"source='no/such/\*.parquet': matches no files"),
        ({"source": "fineweb"}, r"tokens=None: fineweb holds trillions of tokens"),
    ],
)
def test_bad_arguments_are_refused(tmp_path, kwargs, match):
    with pytest.raises(FinegptError, match=match):
        prepare(**{"out": tmp_path / "out", "progress": False, **kwargs})
    assert not (tmp_path / "out").exists()


def test_unwritable_out_is_refused(tmp_path):
    blocker = write_text(tmp_path / "file", "x")
    with pytest.raises(FinegptError, match=r"out='.*file/sub': cannot be written"):
        prepare(out=blocker / "sub", progress=False)
    assert blocker.read_text() == "x"


def test_cli_prints_one_line_and_exits_2(tmp_path, capsys):
    assert main(["prepare", "--out", str(tmp_path / "o"), "--tokens", "-1", "--no_progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: tokens=") and "Traceback" not in err


def test_stats_json_sits_beside_the_shards(tmp_path):
    stats = prepare(out=tmp_path / "shk", tokens=200_000, val_tokens=20_000, shard_tokens=50_000, progress=False)
    on_disk = json.loads((tmp_path / "shk" / "stats.json").read_text())
    assert on_disk == stats
    assert stats["tokens"] == 200_000 and stats["tokens_by_split"] == {"train": 180_000, "val": 20_000}
    assert [s["file"] for s in stats["shards"]] == ["val_000000.bin"] + [f"train_{i:06d}.bin" for i in range(4)]
    assert [s["tokens"] for s in stats["shards"]] == [20_000, 50_000, 50_000, 50_000, 30_000]


def test_loader_refuses_a_shard_of_another_dataset_naming_the_file(data_dir, tmp_path):
    """A shard whose header is whole but whose tokenizer is not its dataset's: GPT-2 ids in a bytes dataset
    would index past the embedding (an IndexError on CPU, a device-side assert on a GPU)."""
    import shutil

    from finegpt.eval import evaluate
    from finegpt.model import GPT, ModelConfig

    mixed = tmp_path / "mixed"
    shutil.copytree(data_dir, mixed)
    gpt2 = get_tokenizer("gpt2")
    tokens = read_shard(mixed / "train_000003.bin")[1].size
    write_shard(mixed / "train_000003.bin", [gpt2.eot] * tokens, gpt2)  # as many tokens, another tokenizer
    want = (
        f"shard='{mixed / 'train_000003.bin'}': holds 'gpt2' tokens (vocab 50257, EOT 50256, uint16) but "
        "meta.json beside it says 'bytes' (vocab 257, EOT 256, uint16): it comes from another dataset. Put back "
        "this dataset's own shard, or rerun `finegpt prepare` for it with --overwrite."
    )
    with pytest.raises(FinegptError) as e:
        BatchLoader(mixed, "train", 2, 16)
    assert str(e.value) == want
    model = GPT(ModelConfig(n_layer=1, n_head=1, n_embd=8, block_size=16, vocab_size=320))
    with pytest.raises(FinegptError) as e:
        evaluate(model, mixed, "train", tokens=None)
    assert str(e.value) == want
    write_shard(mixed / "train_000003.bin", [1] * (tokens - 1), get_tokenizer("bytes"))  # same tokenizer, cut
    with pytest.raises(FinegptError, match=r"holds \d+ tokens but meta.json lists \d+: it comes from another run"):
        BatchLoader(mixed, "train", 2, 16)


def test_val_fraction_zero_gets_advice_that_fixes_it(tmp_path, capsys):
    from train_fixtures import english_text, run_cli

    (tmp_path / "story.txt").write_text(english_text(8000))
    prepare_cmd = ["prepare", "--source=story.txt", "--out=data", "--tokenizer=bytes", "--no_progress"]
    assert run_cli([*prepare_cmd, "--val_fraction=0"], tmp_path, capsys)[0] == 0
    tiny = ["--n_layer=1", "--n_head=1", "--n_embd=16", "--block_size=16", "--batch_size=2", "--device=cpu"]
    train_cmd = ["train", *tiny, "--gradient_accumulation_steps=1", "--max_iters=1", "--eval_iters=1"]
    train_cmd += ["--data_dir=data", "--out_dir=run"]
    rc, err = run_cli(train_cmd, tmp_path, capsys)
    assert rc == 2
    assert err == (
        "error: data_dir='data': has no val split (it was prepared with val_fraction 0), and training needs one "
        "to evaluate. Rerun `finegpt prepare` with --val_fraction 0.1 (or --val_tokens N) and --overwrite.\n"
    )
    assert not (tmp_path / "run").exists()
    assert run_cli([*prepare_cmd, "--val_fraction=0.1", "--overwrite"], tmp_path, capsys)[0] == 0  # as advised
    assert run_cli(train_cmd, tmp_path, capsys)[0] == 0
