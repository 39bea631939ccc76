"""The chunked loss's moments in backward (model.GPT.chunked_loss): one chunk's logits recomputed, its
cross-entropy and LM-head backward beside the chunks' summed LM-head gradient, and the full loss's CPU 16-bit
matmul copy it replaces. Each is one small function with its formula and reason (bytes per rank); report.py
places them. Notation as in terms.py.
"""

from __future__ import annotations

from dataclasses import replace

from finegpt.config import ModelConfig
from finegpt.memory.activations import CPU_RNG_STATE_BYTES, logits_train_bytes, loss_chunk_tokens
from finegpt.memory.compiled_backward import compiled_head_grad_scratch_bytes
from finegpt.memory.state import (
    act_size,
    cpu_bf16_head_grad_copy_bytes,
    cpu_bf16_narrow_grad_input_scratch_bytes,
    measured_mm_scratch_bytes,
    param_size,
    resid_size,
    train_tokens,
)
from finegpt.run import RunConfig


def chunk_ce_size(run: RunConfig) -> int:
    return 2 if run.label == "pure_bf16" else 4  # cross-entropy's working dtype: fp32 (autocast casts up)


def loss_chunk_backward_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # one chunk's backward, its logits recomputed, at the largest of three moments, beside the LM head's gradient
    # summed over the chunks so far (V*C*a: autograd sums it in the dtype the matmul saw) and the chunks' input
    # gradients (chunk_input_grads_and_rng_bytes). At log_softmax's backward: its output, the loss's gradient
    # and log_softmax's own, 3 * n_c * V * 4 (2 pure bf16). At the LM head's backward: the logits' gradient
    # (n_c*V*a) and this chunk's weight gradient (V*C*a; the matmul's scratch is small). From the 2nd chunk on,
    # the sum of this chunk's weight gradient into the ones before, a new V x C tensor (2*V*C*a with summed)
    if not run.loss_chunks:
        return 0
    n, V, C, a = train_tokens(cfg, run), cfg.vocab_size, cfg.n_embd, act_size(run)
    n_c = loss_chunk_tokens(n, run)
    summed = V * C * a if run.loss_chunks > 1 else 0
    # Autocast: each chunk's recompute casts lm_head's weight to 16 bits again (V*C*a, counted with the autocast
    # copies), freed by the chunk's matmul backward before the sum; the summed gradient is cast to the fp32
    # weight's once, after the last chunk: V*C*p beside the summed V*C*a
    copy = V * C * a if a < param_size(run) else 0
    cast = V * C * param_size(run) - copy if copy else 0
    # the chunked loss runs eager even in a compiled step (torch.compiler.disable): its matmuls are oneDNN's.
    # The LM head's backward makes its weight's gradient first, then the input's: each keeps oneDNN's scratch
    eager = replace(run, compile=False) if run.compile else run
    scratch = max(cpu_bf16_head_grad_copy_bytes(cfg, eager, n_c), head_grad_input_scratch_bytes(cfg, eager, n_c))
    head = n_c * V * a + V * C * a + scratch
    # on CPU the chunk's own saved RNG state is freed with its LM head's backward node: alive at its log_softmax
    # and matmul moments, one state more than at the sum into the chunks before (chunk_input_grads_and_rng_bytes)
    own_state = CPU_RNG_STATE_BYTES if run.device == "cpu" and run.loss_chunks > 1 else 0
    during = max(3 * n_c * V * chunk_ce_size(run), head) + own_state
    moment = max(during, 2 * V * C * a - copy if summed else 0, cast)
    return moment + summed + max(chunk_input_grads_and_rng_bytes(cfg, run))


def head_grad_input_scratch_bytes(cfg: ModelConfig, run: RunConfig, rows: int) -> int:
    # eager CPU, 16-bit: the LM head's input gradient, grad (rows x V) @ W (V x C), packs W's panels
    if run.device != "cpu" or act_size(run) != 2 or run.compile:
        return 0
    V, C, threads = cfg.vocab_size, cfg.n_embd, run.cpu_threads
    rule = cpu_bf16_narrow_grad_input_scratch_bytes(rows, V, C, threads)
    return measured_mm_scratch_bytes("grad_input", rows, V, C, threads, rule)  # measured on this CPU where it is


def head_grad_copy_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # the full loss on CPU 16-bit over at most 32 tokens: the LM head's weight-gradient matmul, with the logits
    # (bound) and their gradient (2*n*V*a), its V x C*a output and oneDNN's copy of it
    # (cpu_bf16_head_grad_copy_bytes; compiled, the backward graph's mm: compiled_head_grad_scratch_bytes),
    # beyond the start of backward's logits term (logits_train_bytes). Any tokens: the input's gradient comes
    # next (MmBackward0), grad (n x V) @ W (V x C), its output (n*C*a) beside oneDNN's scratch
    # (head_grad_input_scratch_bytes, measured on this CPU where it is)
    # (compiled under autocast, the backward graph's aten::mm for it keeps the same scratch)
    n, V, C, a = train_tokens(cfg, run), cfg.vocab_size, cfg.n_embd, act_size(run)
    compiled = compiled_head_grad_scratch_bytes(cfg, run)
    scratch_in = head_grad_input_scratch_bytes(cfg, replace(run, compile=False) if compiled else run, n)
    weight = cpu_bf16_head_grad_copy_bytes(cfg, run, n) or compiled
    copy = max(weight, n * C * a + scratch_in if scratch_in else 0)
    if run.loss_chunks or not copy:
        return 0
    return max(0, 2 * n * V * a + V * C * a + copy - logits_train_bytes(cfg, run))


def chunk_input_grads_and_rng_bytes(cfg: ModelConfig, run: RunConfig) -> tuple[int, int, int]:
    # beside a chunk's backward: the gradients of the chunks' inputs made so far (n_c*C*r each, gathered into
    # ln_f's output gradient after the last), and, on CPU, the RNG state each checkpointed chunk saved in forward
    # (CPU_RNG_STATE_BYTES), freed as its backward recomputes it. (2nd chunk backward, the first chunk's, the
    # last chunk's, backward's first): 2 gradients and loss_chunks - 2 states, or n*C*r and none, or no
    # gradient and loss_chunks - 1 states (the larger where C is small); on CUDA the saved state is host memory
    n, C, r = train_tokens(cfg, run), cfg.n_embd, resid_size(run)
    n_c = loss_chunk_tokens(n, run)
    if run.loss_chunks < 2:
        return n * C * r, 0, 0
    state = CPU_RNG_STATE_BYTES if run.device == "cpu" else 0
    return 2 * n_c * C * r + (run.loss_chunks - 2) * state, n * C * r, (run.loss_chunks - 1) * state
