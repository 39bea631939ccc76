"""The epoch sampler reads every window once per epoch on any number of ranks and resumes by step; random
windows leave about 1/e of the stream unseen; a token budget says what it reads and warns when it repeats."""

import math
import shlex
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from train_fixtures import TINY_MODEL, TINY_TRAIN, english_text, make_data, one_torch_thread  # noqa: F401

from finegpt.cli import main
from finegpt.config import ModelConfig, TrainConfig, tokens_per_step
from finegpt.data import BatchLoader, coverage_table, load_meta, measure_coverage, prepare, read_budget
from finegpt.data.budget import eval_summary, over_budget_warning
from finegpt.data.loader import EpochOrder
from finegpt.data.shards import write_meta, write_shard
from finegpt.errors import FinegptError
from finegpt.train import load_checkpoint, train

T = 16
N_TRAIN, N_VAL = 120, 30  # windows of T + 1 tokens in each split
TOK = SimpleNamespace(name="gpt2", vocab_size=50257, eot=50256)  # room for a distinct id at every position


def write_stream(out, train_sizes, val_tokens):
    """Token i of each split is the id i, so a window's tokens name its start; train in shards of train_sizes."""
    out.mkdir(parents=True)
    shards = [{"file": "val_000000.bin", "split": "val", "tokens": val_tokens}]
    write_shard(out / "val_000000.bin", np.arange(val_tokens), TOK)
    first = 0
    for i, n in enumerate(train_sizes):
        write_shard(out / f"train_{i:06d}.bin", np.arange(first, first + n), TOK)
        shards.append({"file": f"train_{i:06d}.bin", "split": "train", "tokens": n})
        first += n
    write_meta(out, TOK, shards)
    return out


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    # 1921 train tokens = 120 windows of 16 + 1, in shards of 700 so that windows cross shard edges
    return write_stream(tmp_path_factory.mktemp("stream") / "data", [700, 700, N_TRAIN * T + 1 - 1400], N_VAL * T + 1)


def epoch_starts(data_dir, world_size, batch_size, steps, **kw):
    """{rank: window starts read at steps 0..steps-1, in step order}, from each rank's own loader."""
    return {
        r: np.concatenate(
            [
                BatchLoader(data_dir, "train", batch_size, T, rank=r, world_size=world_size, **kw).starts(k, r)
                for k in range(steps)
            ]
        )
        for r in range(world_size)
    }


@pytest.mark.parametrize("world_size,batch_size", [(1, 8), (2, 4), (2, 3)])
def test_one_epoch_reads_every_window_exactly_once_and_ranks_never_overlap(data_dir, world_size, batch_size):
    steps = N_TRAIN // (world_size * batch_size)  # 120 windows: whole steps for each layout
    per_rank = epoch_starts(data_dir, world_size, batch_size, steps, seed=5)
    union = np.concatenate(list(per_rank.values()))
    assert sorted(union.tolist()) == [w * T for w in range(N_TRAIN)]  # every window once: no overlap, no gap
    assert all(len(s) == N_TRAIN // world_size for s in per_rank.values())
    assert per_rank[0].tolist() != sorted(per_rank[0].tolist())  # shuffled, not read in stream order


def test_two_ranks_read_what_one_rank_with_double_batch_reads(data_dir):
    one = BatchLoader(data_dir, "train", 8, T, seed=5)
    two = [BatchLoader(data_dir, "train", 4, T, seed=5, rank=r, world_size=2) for r in (0, 1)]
    for step in (0, 7, 14, 15, 31):  # 15 steps per epoch: 14 is the last of epoch 0
        whole = one.get_batch(step)
        parts = [loader.get_batch(step) for loader in two]
        assert torch.equal(torch.cat([p[0] for p in parts]), whole[0])
        assert torch.equal(torch.cat([p[1] for p in parts]), whole[1])


def test_batch_rows_are_windows_of_the_stream_whose_targets_overlap_the_next_window(data_dir):
    loader = BatchLoader(data_dir, "train", 8, T, seed=5)
    x, y = loader.get_batch(3)
    starts = loader.starts(3)
    for b, start in enumerate(starts):  # token i is id i, also across the shard edges at 700 and 1400
        assert x[b].tolist() == list(range(start, start + T))
        assert y[b].tolist() == list(range(start + 1, start + T + 1))
    assert loader.n_windows == N_TRAIN and N_TRAIN * T + 1 == loader.num_tokens  # last target = last token


def test_past_one_epoch_a_new_order_reads_every_window_again(data_dir):
    loader = BatchLoader(data_dir, "train", 8, T, seed=5)
    steps_per_epoch = N_TRAIN // 8
    epochs = [np.concatenate([loader.starts(k) for k in range(e * 15, (e + 1) * 15)]) for e in range(3)]
    assert all(sorted(e.tolist()) == [w * T for w in range(N_TRAIN)] for e in epochs)
    assert len({tuple(e) for e in epochs}) == 3  # each epoch its own order
    assert [loader.epoch(k) for k in (0, steps_per_epoch - 1, steps_per_epoch, 2 * steps_per_epoch)] == [0, 0, 1, 2]


def test_an_epoch_that_ends_mid_batch_continues_into_the_next(data_dir):
    loader = BatchLoader(data_dir, "train", 7, T, seed=5)  # 120 = 17 x 7 + 1
    stream = np.concatenate([loader.starts(k) for k in range(35)])  # 245 reads: two epochs and 5 windows
    assert sorted(stream[:N_TRAIN].tolist()) == sorted(stream[N_TRAIN : 2 * N_TRAIN].tolist())
    assert len(set(stream[:N_TRAIN].tolist())) == N_TRAIN


def test_step_k_after_a_restart_equals_step_k_in_one_run(data_dir):
    one_run = BatchLoader(data_dir, "train", 8, T, seed=5)
    walked = [one_run.get_batch(k) for k in range(40)]  # through three epochs, its caches warm
    for k in (39, 0, 15, 14, 22):
        restarted = BatchLoader(data_dir, "train", 8, T, seed=5)
        assert all(torch.equal(a, b) for a, b in zip(restarted.get_batch(k), walked[k]))


def test_blocked_order_reads_every_window_once_per_epoch_a_block_at_a_time():
    order = EpochOrder(1000, seed=3, salt=9, block_windows=64)  # 16 blocks, the last one of 40 windows
    for epoch in (0, 1):
        ids = order(epoch * 1000, 1000)
        assert sorted(ids.tolist()) == list(range(1000))
        blocks = ids // 64
        assert (np.diff(blocks) != 0).sum() == 15  # each block read whole before the next begins
        one_by_one = np.concatenate([order(p, 1) for p in range(epoch * 1000, (epoch + 1) * 1000)])
        assert one_by_one.tolist() == ids.tolist()
    assert order(0, 1000).tolist() != order(1000, 1000).tolist()
    restarted = EpochOrder(1000, seed=3, salt=9, block_windows=64)
    assert [restarted(p, 1)[0] for p in (1500, 3, 999)] == [order(p, 1)[0] for p in (1500, 3, 999)]
    assert order(990, 20).tolist() == np.concatenate([order(990, 10), order(1000, 10)]).tolist()  # across epochs
    whole = EpochOrder(1000, seed=3, salt=9)  # one block: a full permutation
    assert sorted(whole(0, 1000).tolist()) == list(range(1000))


def test_random_windows_stay_nanogpts_and_are_a_pure_function_of_step(data_dir):
    a = BatchLoader(data_dir, "train", 8, T, seed=5, sampling="random")
    b = BatchLoader(data_dir, "train", 8, T, seed=5, sampling="random")
    starts = a.starts(2)
    assert starts.tolist() == b.starts(2).tolist() and any(s % T for s in starts)  # anywhere, not on the grid
    assert all(torch.equal(u, v) for u, v in zip(a.get_batch(2), b.get_batch(2)))
    with pytest.raises(FinegptError, match=r"sampling='sequential': is not a sampler\. Use one of epoch, random"):
        BatchLoader(data_dir, "train", 8, T, sampling="sequential")


def test_random_windows_leave_about_1_over_e_unseen_when_reads_equal_the_stream(tmp_path):
    out = write_stream(tmp_path / "big", [40_001], 2 * T + 1)  # 2500 windows
    random_rows, epoch_rows = [], []
    for seed in (1, 2):
        random_loader = BatchLoader(out, "train", 250, T, seed=seed, sampling="random")
        random_rows.append(measure_coverage(random_loader, 40_000))
        epoch_rows.append(measure_coverage(BatchLoader(out, "train", 250, T, seed=seed), 40_000))
    for row in random_rows:
        assert row["tokens_read"] == row["stream_tokens"] == 40_000
        assert row["unseen_share"] == pytest.approx(math.exp(-1), abs=0.02)  # 0.368
        assert row["repeated_share"] == pytest.approx(1 - 2 / math.exp(1), abs=0.02)  # 0.264
    assert all(row["unseen_share"] == 0 and row["repeated_share"] == 0 for row in epoch_rows)
    expected = read_budget(40_000, {"train": 40_001, "val": 33}, T, "random")
    assert expected.unseen_share == math.exp(-1) and expected.distinct_tokens == round(40_000 * (1 - math.exp(-1)))
    table = coverage_table(out, T)
    assert [(r["sampling"], r["tokens_read"]) for r in table] == [("epoch", 40_000), ("random", 40_000)]


def test_read_budget_counts_reads_distinct_tokens_and_epochs():
    prepared = {"train": N_TRAIN * T + 1, "val": 481}
    once = read_budget(15 * tokens_per_step(4, T, 2), prepared, T)  # 15 steps x 8 windows = the 120 windows
    assert (once.tokens_read, once.distinct_tokens, once.epochs, once.covered) == (1920, 1920, 1.0, True)
    assert (once.unseen_share, once.repeated_share) == (0.0, 0.0)
    twice_and_half = read_budget(4800, prepared, T)
    assert (twice_and_half.distinct_tokens, twice_and_half.epochs, twice_and_half.covered) == (1920, 2.5, False)
    assert twice_and_half.seen_share == 1920 / 1921 and twice_and_half.repeated_share == 1.0
    assert twice_and_half.prepare_tokens == 481 + 4800 + 1
    half = read_budget(960, prepared, T)
    assert (half.distinct_tokens, half.unseen_share) == (960, 0.5)
    assert "reads 960 tokens = 0.50 epochs of the 1,921-token train split" in half.summary()
    shakespeare = {"job": {"source": "shakespeare"}, "tokenizer": "bytes", "tokens": prepared}
    assert over_budget_warning(half, shakespeare, "data") is None
    assert "The embedded Shakespeare has no more" in over_budget_warning(twice_and_half, shakespeare, "data")
    by_hand = {"tokenizer": "gpt2", "tokens": prepared}
    assert "prepare 5282 tokens (`finegpt prepare --tokens ...`)" in over_budget_warning(twice_and_half, by_hand, "d")


def test_eval_windows_are_distinct_and_say_how_much_of_val_they_score(data_dir):
    val = BatchLoader(data_dir, "val", 4, T, seed=7)
    starts = np.concatenate([val.starts(k) for k in range(5)])
    assert len(set(starts.tolist())) == 20  # eval_iters=5 x 4 rows, all distinct
    assert eval_summary(val, 5) == "val loss over 20 distinct windows of 16 = 320 tokens, 66.5 % of the val split"
    assert eval_summary(val, 50).startswith("val loss over 30 distinct windows")  # no more than the split holds


def test_train_warns_before_a_run_that_reads_more_than_was_prepared_and_its_command_covers_it(tmp_path, capsys):
    source = tmp_path / "english.txt"
    source.write_text(english_text(20_000), encoding="utf-8")
    data = tmp_path / "data"
    prepare(str(source), data, "bytes", tokens=1300, val_tokens=300, progress=False)
    cfg = TrainConfig(**{**TINY_TRAIN, "data_dir": str(data), "out_dir": str(tmp_path / "out"), "max_iters": 3})
    train(ModelConfig(**TINY_MODEL), cfg)  # 3 steps x 8 x 2 x 32 = 1536 tokens from a 1000-token train split
    lines = capsys.readouterr().out.splitlines()
    warning = next(line for line in lines if line.startswith("warning:"))
    assert lines.index(warning) < next(i for i, line in enumerate(lines) if line.startswith("iter 0:"))
    assert "reads 1,536 tokens, but the train split of" in warning and "992 in windows of 32: 1.55 epochs" in warning
    command = warning.split("`")[1]
    flags = f"--source {source} --tokenizer bytes --out {data} --tokens 1837 --val_tokens 300 --overwrite"
    assert command == f"finegpt prepare {flags}"
    assert main([*shlex.split(command)[1:], "--no_progress"]) == 0
    budget = read_budget(1536, load_meta(data)["tokens"], 32)
    assert budget.covered and budget.epochs == 1.0 and over_budget_warning(budget, load_meta(data), data) is None


@pytest.mark.parametrize("sampling", ["epoch", "random"])
def test_resume_across_an_epoch_boundary_repeats_the_uninterrupted_run(tmp_path, sampling):
    data = make_data(tmp_path / "data", n_train=3_000, n_val=1_000)  # 93 windows of 32: 16 a step, epochs of 5.8
    kw = {**TINY_TRAIN, "data_dir": str(data), "eval_interval": 5, "sampling": sampling}
    model_cfg = ModelConfig(**TINY_MODEL)
    full = train(model_cfg, TrainConfig(**kw, out_dir=str(tmp_path / "full"), max_iters=10))
    train(model_cfg, TrainConfig(**kw, out_dir=str(tmp_path / "split"), max_iters=5))
    train(model_cfg, TrainConfig(**kw, out_dir=str(tmp_path / "split"), max_iters=10, init_from="resume"))
    a, b = load_checkpoint(tmp_path / "full")["model"], load_checkpoint(tmp_path / "split")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    last = [r for r in full["history"] if "epoch" in r][-1]
    assert last["tokens_read"] == 10 * 16 * 32 and last["epoch"] == pytest.approx(5120 / (93 * 32))
    if sampling == "epoch":
        assert last["distinct_tokens"] == 93 * 32


def test_resuming_a_checkpoint_from_before_the_epoch_sampler_keeps_random_windows(tmp_path):
    from finegpt.train.checkpoint import save_checkpoint
    from finegpt.train.launch import resolve_settings

    data = make_data(tmp_path / "data", n_train=3_000, n_val=1_000)
    out = tmp_path / "out"
    train(
        ModelConfig(**TINY_MODEL),
        TrainConfig(**{**TINY_TRAIN, "data_dir": str(data), "out_dir": str(out)}, max_iters=1),
    )
    assert resolve_settings(None, [f"--out_dir={out}"], resume=True)[0]["sampling"] == "epoch"
    ckpt = load_checkpoint(out)
    del ckpt["config"]["train"]["sampling"]
    save_checkpoint(ckpt, out, keep=1)
    assert resolve_settings(None, [f"--out_dir={out}"], resume=True)[0]["sampling"] == "random"
