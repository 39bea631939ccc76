"""finegpt.data.prepare at scale: FineWeb through HF datasets streaming, exact budgets, workers, kill and resume."""

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tiktoken

from finegpt.data import load_meta, prepare, read_shard, resolve_source
from finegpt.errors import FinegptError

WORDS = (
    "the of and to in a is that for it as was with be by on not he this are or his from at which but have an they "
    "you were her she there been one all we their has would when if so no what up out more can said who into time "
    "river café naïve München 東京 data model token shard window résumé"
).split()


def make_docs(n_docs, seed, mean_words=60):
    rng = random.Random(seed)
    return [
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 2 * mean_words))).capitalize() + "."
        for _ in range(n_docs)
    ]


def write_fineweb(path, docs):
    """A parquet file with FineWeb's columns; token_count is GPT-2 tokens without EOT, as FineWeb's."""
    enc = tiktoken.get_encoding("gpt2")
    n = len(docs)
    table = pa.table(
        {
            "text": docs,
            "id": [f"<urn:uuid:{i:08d}>" for i in range(n)],
            "dump": ["CC-MAIN-2024-10"] * n,
            "url": [f"https://example.com/{i}" for i in range(n)],
            "date": ["2024-02-21T00:00:00Z"] * n,
            "file_path": ["s3://commoncrawl/x.warc.gz"] * n,
            "language": ["en"] * n,
            "language_score": [0.9] * n,
            "token_count": [len(enc.encode_ordinary(d)) for d in docs],
        }
    )
    pq.write_table(table, path, row_group_size=50)
    return table


def all_tokens(out):
    meta = load_meta(out)
    return np.concatenate([np.asarray(read_shard(Path(out) / s["file"])[1]) for s in meta["shards"]])


@pytest.fixture(scope="module")
def fineweb(tmp_path_factory):
    root = tmp_path_factory.mktemp("fineweb")
    docs = make_docs(240, seed=1)
    docs[0] = "A page that quotes <|endoftext|> is plain text to FineWeb. " + docs[0]
    tables = [write_fineweb(root / f"part-{i}.parquet", docs[120 * i : 120 * (i + 1)]) for i in range(2)]
    return root, pa.concat_tables(tables)


def test_fineweb_streaming_token_count_matches_its_token_count_column(fineweb, tmp_path):
    root, table = fineweb
    stats = prepare(
        "fineweb",
        tmp_path / "fw",
        "gpt2",
        data_files=str(root / "*.parquet"),
        val_tokens=1000,
        shard_tokens=4000,
        workers=2,
        progress=False,
    )
    expected = sum(table["token_count"].to_pylist()) + table.num_rows  # plus one EOT per document
    assert stats["tokens"] == expected and stats["documents"] == table.num_rows
    tokens = all_tokens(tmp_path / "fw")
    assert len(tokens) == expected and np.count_nonzero(tokens == 50256) == table.num_rows
    first = table["text"][0].as_py()
    assert tokens[1 : 1 + table["token_count"][0].as_py()].tolist() == tiktoken.get_encoding("gpt2").encode_ordinary(
        first
    )
    assert load_meta(tmp_path / "fw")["tokens"]["val"] == 1000


def test_budget_stops_exactly_mid_document(fineweb, tmp_path):
    root, _ = fineweb
    stats = prepare(
        "fineweb",
        tmp_path / "fw",
        "gpt2",
        tokens=12_345,
        data_files=str(root / "*.parquet"),
        val_fraction=0.1,
        shard_tokens=5000,
        workers=1,
        progress=False,
    )
    assert stats["tokens"] == 12_345 and stats["tokens_by_split"] == {"val": 1234, "train": 11_111}
    assert len(all_tokens(tmp_path / "fw")) == 12_345


def test_local_parquet_glob_equals_fineweb_path_and_any_worker_count(fineweb, tmp_path):
    root, _ = fineweb
    a = prepare(
        str(root / "*.parquet"), tmp_path / "a", "gpt2", val_tokens=500, shard_tokens=3000, workers=0, progress=False
    )
    b = prepare(
        "fineweb",
        tmp_path / "b",
        "gpt2",
        data_files=str(root / "*.parquet"),
        val_tokens=500,
        shard_tokens=3000,
        workers=3,
        progress=False,
    )
    assert a["shards"] == b["shards"]
    assert np.array_equal(all_tokens(tmp_path / "a"), all_tokens(tmp_path / "b"))


@pytest.mark.parametrize("through_datasets", [False, True])
def test_parquet_without_text_column_is_refused(tmp_path, through_datasets):
    pq.write_table(pa.table({"body": ["x", "y"]}), tmp_path / "p.parquet")
    source = ("fineweb", str(tmp_path / "p.parquet")) if through_datasets else (str(tmp_path / "p.parquet"), None)
    with pytest.raises(FinegptError, match=r"text_column='text': not a column of .*\(columns: body\)"):
        prepare(source[0], tmp_path / "out", "bytes", tokens=100, data_files=source[1], progress=False)
    assert not (tmp_path / "out").exists()


def test_fineweb_names_map_to_the_hub_datasets():
    assert resolve_source("fineweb")["repo"] == "HuggingFaceFW/fineweb"
    assert resolve_source("fineweb")["name"] == "sample-10BT"
    edu = resolve_source("fineweb-edu", name="sample-100BT")
    assert (edu["repo"], edu["name"], edu["data_files"]) == ("HuggingFaceFW/fineweb-edu", "sample-100BT", None)


def test_shuffle_buffer_permutes_documents_within_windows(tmp_path):
    docs = [f"document number {i}\n" for i in range(50)]
    (tmp_path / "in.jsonl").write_text("".join(f'{{"text": "{d[:-1]}"}}\n' for d in docs))
    prepare(
        str(tmp_path / "in.jsonl"),
        tmp_path / "s",
        "bytes",
        tokens=10_000,
        val_tokens=0,
        shuffle_buffer=8,
        progress=False,
    )
    stream = bytes(all_tokens(tmp_path / "s")).replace(b"\x00", b"")
    seen = [int(t.split()[-1]) for t in bytes(all_tokens(tmp_path / "s").astype(np.uint8)).split(b"\x00") if t]
    assert sorted(seen) == list(range(50)) and seen != list(range(50))
    assert all(sorted(seen[w : w + 8]) == list(range(w, min(w + 8, 50))) for w in range(0, 50, 8))
    assert stream


def run_prepare_cli(src, out, *extra):
    cmd = [
        sys.executable,
        "-m",
        "finegpt",
        "prepare",
        "--source",
        str(src),
        "--out",
        str(out),
        "--tokenizer",
        "gpt2",
        "--shard_tokens",
        "3000",
        "--val_tokens",
        "2000",
        "--workers",
        "2",
        "--shuffle_buffer",
        "100",
        "--no_progress",
        *extra,
    ]
    return subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "PYTHONHASHSEED": "0"}
    )


def test_sigkill_at_a_random_point_then_rerun_gives_identical_shards(tmp_path):
    src = tmp_path / "docs.jsonl"
    src.write_text("".join(f'{{"text": "{d}"}}\n' for d in make_docs(1500, seed=9)))
    reference = prepare(
        str(src),
        tmp_path / "ref",
        "gpt2",
        shard_tokens=3000,
        val_tokens=2000,
        workers=0,
        shuffle_buffer=100,
        progress=False,
    )
    n_shards = len(reference["shards"])
    assert n_shards >= 10
    rng = random.Random(int.from_bytes(os.urandom(4)))
    out = tmp_path / "killed"
    kills = 0
    for _ in range(2):  # kill twice, at random shards, then let it finish
        target = out / f"train_{rng.randrange(1, n_shards - 3):06d}.bin"
        proc = run_prepare_cli(src, out)
        while not target.exists() and proc.poll() is None:
            try:
                proc.wait(timeout=0.005)
            except subprocess.TimeoutExpired:
                pass
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
        assert not (out / "meta.json").exists() or proc.returncode == 0
        if proc.returncode == 0:
            break
    assert kills >= 1
    proc = run_prepare_cli(src, out)
    assert proc.wait() == 0, proc.stderr.read().decode()
    assert load_meta(out)["shards"] == reference["shards"]
    for shard in reference["shards"]:
        assert (out / shard["file"]).read_bytes() == (tmp_path / "ref" / shard["file"]).read_bytes()
    assert not list(out.glob("*.tmp"))


def test_rerun_of_a_finished_job_is_refused(tmp_path):
    (tmp_path / "a.txt").write_text("some text " * 50)
    prepare(str(tmp_path / "a.txt"), tmp_path / "o", val_tokens=10, progress=False)
    with pytest.raises(FinegptError, match=r"already holds this prepared data\. Pass --overwrite"):
        prepare(str(tmp_path / "a.txt"), tmp_path / "o", val_tokens=10, progress=False)


def test_missing_gpt2_bpe_files_fail_before_anything_is_written(tmp_path):
    import subprocess
    import sys

    src = tmp_path / "in.txt"
    src.write_text("hello world\n")
    env = {
        **os.environ,
        "TIKTOKEN_CACHE_DIR": str(tmp_path / "empty-cache"),
        "no_proxy": "*",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "https_proxy": "http://127.0.0.1:9",
    }  # no download either
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "finegpt",
            "prepare",
            "--source",
            str(src),
            "--out",
            str(tmp_path / "out"),
            "--no_progress",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [out.stderr.strip()]  # one line, no traceback
    assert "error: tokenizer='gpt2': tiktoken could not load the GPT-2 BPE files" in out.stderr
    assert not (tmp_path / "out").exists()
