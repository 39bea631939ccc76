"""oneDNN's scratch for one 16-bit matmul on this CPU, measured under the profiler (imports torch).

A CPU estimate counts these bytes where state.py's closed-form rules cannot follow oneDNN (above 32 rows its
blocking search, AMX on a recent CPU, picks a layout per shape). Like probe.cpu_yardstick() for speed, this
measures a library kernel on the machine being predicted.

The wiring: state.CPU_MM_SCRATCH is a plain table, (kind, M, K, N, threads) -> bytes, of bf16 matmuls (the one
16-bit dtype a CPU run trains in). The terms that count a matmul's scratch look their shape up there
(state.measured_mm_scratch_bytes) and fall back on their rule. measure_cpu_scratch(cfg, run) fills the table
for every matmul those terms read in a (cfg, run), each measured once per process. estimate() calls it for a
CPU run only when torch is already imported (sys.modules): a process that trains or measures on this CPU
predicts this CPU, one without torch (the browser calculator) uses the rules. Nothing is measured while
another profiler is running (the measurement would end it); those shapes keep their rule.
Entry points: matmul_scratch_bytes(kind, M, K, N, threads), measure_cpu_scratch(cfg, run), matmul_shapes(cfg, run).
"""

from __future__ import annotations

import torch
from torch.profiler import ProfilerActivity, profile

from finegpt.config import ModelConfig
from finegpt.memory.activations import loss_chunk_tokens
from finegpt.memory.profiled import allocation_events
from finegpt.memory.state import CPU_MM_SCRATCH, act_size, eval_tokens, train_tokens
from finegpt.run import RunConfig

KINDS = ("forward", "grad_input", "grad_weight")
MAX_OPERAND_BYTES = 64 * 2**20  # larger matmuls keep their rule: measuring one would cost its operands' memory


def _operands(kind: str, M: int, K: int, N: int, dtype: torch.dtype):
    # an (M x K) @ (K x N) product laid out as nn.Linear's three matmuls lay it out (torch.ones: no RNG drawn)
    if kind == "forward":  # x @ W^T: x (tokens M x in K), the weight stored (out N x in K)
        return torch.ones(M, K, dtype=dtype), torch.ones(N, K, dtype=dtype).t()
    if kind == "grad_input":  # grad @ W: grad (tokens M x out K), the weight stored (out K x in N)
        return torch.ones(M, K, dtype=dtype), torch.ones(K, N, dtype=dtype)
    # grad^T @ x: grad stored (tokens K x out M), x (tokens K x in N)
    return torch.ones(K, M, dtype=dtype).t(), torch.ones(K, N, dtype=dtype)


def profiled_scratch_bytes(fn) -> int:
    """The peak bytes allocated inside one call of fn() less the bytes of the tensor it returns, read from the
    profiler's allocator events, after one warm-up call (oneDNN's caches)."""
    fn()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = fn()
    live, now, peak = {}, 0, 0
    for _, _, ptr, nbytes in allocation_events(prof):
        if nbytes > 0:
            live[ptr] = nbytes
            now += nbytes
            peak = max(peak, now)
        elif ptr in live:
            now -= live.pop(ptr)
    return max(0, peak - out.numel() * out.element_size())


def matmul_scratch_bytes(kind: str, M: int, K: int, N: int, threads: int, dtype: str = "bfloat16") -> int | None:
    """oneDNN's scratch of one (M x K) @ (K x N) matmul of `kind` ('forward' x @ W^T, 'grad_input' grad @ W,
    'grad_weight' grad^T @ x) on this CPU with `threads` intra-op threads, measured once per process and
    kept in state.CPU_MM_SCRATCH (bf16). None where it is not measured: operands over MAX_OPERAND_BYTES, or a
    profiler already running."""
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}: not a matmul kind. Use one of {', '.join(KINDS)}.")
    key = (kind, M, K, N, threads)
    if dtype == "bfloat16" and key in CPU_MM_SCRATCH:
        return CPU_MM_SCRATCH[key]
    elem = getattr(torch, dtype).itemsize
    if elem * (M * K + K * N + M * N) > MAX_OPERAND_BYTES or torch._C._autograd._profiler_enabled():
        return None
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            a, b = _operands(kind, M, K, N, getattr(torch, dtype))
            scratch = profiled_scratch_bytes(lambda: torch.mm(a, b))
    finally:
        torch.set_num_threads(before)
    if dtype == "bfloat16":
        CPU_MM_SCRATCH[key] = scratch
    return scratch


def flash_backward_scratch_bytes(T: int, hs: int, threads: int) -> int | None:
    """The largest scratch buffer the CPU flash attention backward allocates for its bf16 matmuls (one buffer
    for all `threads`, made and freed per call; at most one alive) on a causal (1, 1, T, hs) bf16 q, k, v,
    measured once per process under the profiler into state.CPU_MM_SCRATCH as ('flash_backward', T, hs, 0,
    threads). None where a profiler is already running."""
    key = ("flash_backward", T, hs, 0, threads)
    if key in CPU_MM_SCRATCH:
        return CPU_MM_SCRATCH[key]
    if torch._C._autograd._profiler_enabled():
        return None
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        q, k, v = (torch.ones(1, 1, T, hs, dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
        attention = torch.nn.functional.scaled_dot_product_attention
        attention(q, k, v, is_causal=True).sum().backward()  # warm-up: oneDNN's caches
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            attention(q, k, v, is_causal=True).sum().backward()
        sizes, stack = [0], list(prof.profiler.kineto_results.experimental_event_tree())
        while stack:  # the buffers the backward op allocates itself (its workspace comes through aten::empty)
            node = stack.pop()
            parent = node.parent.name if node.parent is not None else ""
            if type(node.extra_fields).__name__ == "_ExtraFields_Allocation" and "flash_attention" in parent:
                sizes.append(node.extra_fields.alloc_size if "backward" in parent else 0)
            stack.extend(node.children)
    finally:
        torch.set_num_threads(before)
    CPU_MM_SCRATCH[key] = max(sizes)
    return CPU_MM_SCRATCH[key]


def matmul_shapes(cfg: ModelConfig, run: RunConfig) -> set[tuple[str, int, int, int]]:
    """(kind, M, K, N) of every matmul whose scratch the terms count for (cfg, run): the MLP's and c_attn's weight
    and input gradients over the micro-batch, c_proj's and c_fc's no-grad forward over an eval batch, and the LM head's
    forward (eval) and backward (training) over a loss chunk (the whole batch unchunked)."""
    C, V, n, n_e = cfg.n_embd, cfg.vocab_size, train_tokens(cfg, run), eval_tokens(cfg, run)
    n_c, n_ce = loss_chunk_tokens(n, run), loss_chunk_tokens(n_e, run)
    shapes = {
        ("grad_weight", C, n, 4 * C),  # c_proj's weight gradient: C x 4C
        ("grad_weight", 4 * C, n, C),  # c_fc's: 4C x C
        ("grad_input", n, C, 4 * C),  # c_proj's input gradient: grad (n x C) @ W (C x 4C)
        ("grad_input", n, 4 * C, C),  # c_fc's
        ("grad_weight", 3 * C, n, C),  # c_attn's weight gradient: 3C x C (the first block's, backward's last)
        ("grad_input", n, 3 * C, C),  # c_attn's input gradient
        ("forward", n_e, 4 * C, C),  # eval: c_proj's x @ W^T
        ("forward", n_e, C, 4 * C),  # eval: c_fc's
        ("grad_weight", V, n_c, C),  # the LM head's weight gradient: V x C
    }
    shapes.add(("forward", n_ce, C, V))  # eval: the LM head's x @ W^T over a chunk (all n_e unchunked)
    shapes.add(("grad_input", n_c, V, C))  # the LM head's input gradient over a chunk (all n unchunked)
    return shapes


def measure_cpu_scratch(cfg: ModelConfig, run: RunConfig) -> dict[tuple[str, int, int, int, int], int]:
    """Measure (once per process) the scratch of every matmul in matmul_shapes(cfg, run) at run.cpu_threads,
    into state.CPU_MM_SCRATCH; returns those of this run that are measured. Only a CPU 16-bit run has any."""
    if run.device != "cpu" or act_size(run) != 2:
        return {}
    out = {}
    for kind, M, K, N in sorted(matmul_shapes(cfg, run)):
        scratch = matmul_scratch_bytes(kind, M, K, N, run.cpu_threads)
        if scratch is not None:
            out[(kind, M, K, N, run.cpu_threads)] = scratch
    if run.attention == "flash" and cfg.block_size <= 2048:  # the flash backward's matmul scratch
        hs = cfg.n_embd // cfg.n_head
        scratch = flash_backward_scratch_bytes(cfg.block_size, hs, run.cpu_threads)
        if scratch is not None:
            out[("flash_backward", cfg.block_size, hs, 0, run.cpu_threads)] = scratch
    return out
