"""oneDNN's 16-bit matmul scratch measured on this CPU (finegpt.memory.cpu_scratch): the probe measures what
bench/cpu_mm_scratch.py measures, the terms read the table before their rule, and only its exact key."""

import sys
from pathlib import Path

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from finegpt.config import ModelConfig
from finegpt.memory import RunConfig, estimate, state
from finegpt.memory import terms as t
from finegpt.memory.cpu_scratch import matmul_scratch_bytes, matmul_shapes

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import cpu_mm_scratch  # noqa: E402


@pytest.fixture
def table():
    """The process's table of measured scratch, emptied for the test and restored after it."""
    saved = dict(state.CPU_MM_SCRATCH)
    state.CPU_MM_SCRATCH.clear()
    yield state.CPU_MM_SCRATCH
    state.CPU_MM_SCRATCH.clear()
    state.CPU_MM_SCRATCH.update(saved)


@pytest.fixture
def threads():
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


def test_the_table_is_read_before_the_rule_and_only_for_its_exact_key(table):
    assert state.measured_mm_scratch_bytes("forward", 48, 1536, 384, 2, rule_bytes=7) == 7
    table[("forward", 48, 1536, 384, 2)] = 1339136
    assert state.measured_mm_scratch_bytes("forward", 48, 1536, 384, 2, rule_bytes=7) == 1339136
    assert state.measured_mm_scratch_bytes("forward", 48, 1536, 384, 1, rule_bytes=7) == 7  # other threads
    assert state.measured_mm_scratch_bytes("grad_input", 48, 1536, 384, 2, rule_bytes=7) == 7  # other layout


@pytest.mark.parametrize("M, K, N, n_threads", [(16, 1536, 384, 2), (48, 1536, 384, 2), (96, 64, 2048, 1)])
def test_the_probe_measures_what_bench_cpu_mm_scratch_measures(M, K, N, n_threads, table, threads):
    # bench's linear layer (x: M x K, W: N x K, grad: M x N) at torch's thread count; the probe at its own
    threads(n_threads)
    bench = cpu_mm_scratch.linear_scratch(M, K, N, torch.bfloat16)
    threads(1)
    probe = {
        "forward": matmul_scratch_bytes("forward", M, K, N, n_threads),  # x @ W^T
        "grad_input": matmul_scratch_bytes("grad_input", M, N, K, n_threads),  # grad @ W
        "grad_weight": matmul_scratch_bytes("grad_weight", N, M, K, n_threads),  # grad^T @ x
    }
    assert probe == bench
    assert torch.get_num_threads() == 1  # the probe puts the thread count back
    assert table[("forward", M, K, N, n_threads)] == bench["forward"]


def test_up_to_32_rows_the_probe_and_the_panel_rule_agree(table):
    assert matmul_scratch_bytes("forward", 16, 1536, 384, 2) == t.cpu_bf16_panel_scratch_bytes(16, 1536, 384, 2)


def test_nothing_is_measured_while_a_profiler_runs(table):
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True):
        assert matmul_scratch_bytes("forward", 64, 128, 32, 1) is None
    assert table == {}
    with pytest.raises(ValueError, match="kind='backward'"):
        matmul_scratch_bytes("backward", 64, 128, 32, 1)


def test_a_cpu_estimate_measures_its_matmuls_and_the_terms_read_them(table):
    cfg = ModelConfig(n_layer=3, n_head=2, n_embd=96, block_size=256, vocab_size=256, dropout=0.1, bias=False)
    run = RunConfig(batch_size=1, dtype="bf16", loss_chunks=8, device="cpu", cpu_threads=2)
    estimate(cfg, run)
    assert {(kind, M, K, N, 2) for kind, M, K, N in matmul_shapes(cfg, run)} <= set(table)
    table[("forward", 256, 384, 96, 2)] = 123456  # eval's c_proj, x (256 x 4C) @ W^T (4C x C)
    table[("grad_weight", 96, 256, 384, 2)] = 654321  # c_proj's weight gradient, grad^T (C x n) @ x (n x 4C)
    assert t.cpu_bf16_pack_bytes(cfg, run, 256) == 123456
    assert t.cpu_bf16_wgrad_scratch_bytes(cfg, run, 256, 96, 384) == 654321
    estimate(cfg, run)
    assert table[("forward", 256, 384, 96, 2)] == 123456  # measured once per process: estimate() reads the table
    fp32 = RunConfig(batch_size=1, dtype="fp32", device="cpu")
    table.clear()
    estimate(cfg, fp32)
    assert table == {}  # fp32 matmuls keep no such scratch: nothing to measure


def test_the_flash_backwards_one_scratch_buffer_is_measured_and_read_by_its_workspace(table):
    # 2 threads, T = 256 (q blocks of 64 rows, a kv block of 256), head size 32: one 59,136 B buffer for both
    # threads, where the per-thread rule counts 2 x 46,208 B
    from finegpt.memory.cpu_scratch import flash_backward_scratch_bytes

    assert flash_backward_scratch_bytes(256, 32, 2) == 59136
    assert table[("flash_backward", 256, 32, 0, 2)] == 59136
    cfg = ModelConfig(n_layer=2, n_head=1, n_embd=32, block_size=256, vocab_size=512)
    run = RunConfig(batch_size=1, dtype="pure_bf16", attention="flash", device="cpu", cpu_threads=2)
    copies = 2 * (4 * (2 * 64 * 256 + 64) + 2 * 2 * 64 * 256)  # fp32 scores, their gradient, row sums; bf16 copies
    assert t.cpu_flash_workspace_bytes(cfg, run) == copies + 59136
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True):
        assert flash_backward_scratch_bytes(128, 16, 2) is None  # nothing measured under a running profiler
