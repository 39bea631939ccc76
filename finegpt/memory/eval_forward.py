"""The no-grad eval forward's memory: two eval batches (the previous one's logits still bound), the largest
moment of a block (its MLP, its attention) or of the loss, eager and CPU inductor's. Each is one small function
with its formula and reason; notation as in terms.py. Entry point: eval_forward_bytes(cfg, run).
"""

from __future__ import annotations

from dataclasses import replace

from finegpt.config import ModelConfig
from finegpt.memory.activations import batch_bytes, loss_chunk_tokens
from finegpt.memory.calibration import compiled_coefficient, eager_logit_bytes
from finegpt.memory.inductor_pool import (
    blocks_whose_scores_wait,
    pooled_scores_mlp_token_bytes,
    pooled_unstored_scores_token_bytes,
    unfused_softmax_input_token_bytes,
    unstored_exp_token_bytes,
)
from finegpt.memory.state import (
    act_size,
    autocast_copy_bytes,
    cpu_bf16_pack_bytes,
    cpu_bf16_panel_scratch_bytes,
    cpu_flash_forward_copies_bytes,
    cpu_flash_workspace_bytes,
    eval_tokens,
    measured_mm_scratch_bytes,
    resid_size,
    softmax_size,
)
from finegpt.run import RunConfig

# ---- eval: no grad, two batches (the previous one's logits still bound) ------------------------


def previous_logits_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # per eval token: the previous eval batch's logits, still bound (a*V); the chunked loss returns none
    return 0 if run.loss_chunks else act_size(run) * cfg.vocab_size


def eval_chunk_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # the chunked loss without grad: one chunk's logits + the loss's fp32 copy and log_softmax, n_c,e * V *
    # (fp32 4+4, autocast 2+4+4, pure bf16 2+2). Compiled alike: torch.compile leaves the chunked loss eager
    n_c, V = loss_chunk_tokens(eval_tokens(cfg, run), run), cfg.vocab_size
    return n_c * V * {"fp32": 8, "bf16": 10, "fp16": 10, "pure_bf16": 4}[run.label]


def eval_logits_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # per eval token: the previous batch's logits + the new logits + (eager) the loss's fp32 copy and
    # log_softmax: fp32 4+4+4 = 12V, autocast 2+2+4+4 = 12V, pure bf16 2+2+2 = 6V; compiled 2aV
    if run.compile:
        return int(cfg.vocab_size * act_size(run) * compiled_coefficient("logits_eval_copies", run.device))
    measured = eager_logit_bytes("logits_eval_bytes", run.label, run.device)
    if measured is not None:
        return int(cfg.vocab_size * measured)
    return cfg.vocab_size * {"fp32": 12, "bf16": 12, "fp16": 12, "pure_bf16": 6}[run.label]


def eval_weight_copy_bytes(cfg: ModelConfig, run: RunConfig, moment: str) -> int:
    # eager autocast caches every copy until the autocast context exits; compiled, only the 16-bit copy of
    # the weight in use: c_fc's (8C^2) in the MLP, c_attn's (6C^2) in attention, lm_head's (2VC) at the loss
    if not autocast_copy_bytes(cfg, run):
        return 0
    if not run.compile and moment == "attention":  # the last block's attention: its c_proj's and MLP's copies
        C, b = cfg.n_embd, int(cfg.bias)  # (9C^2 + 5C biases) and lm_head's (VC) are not made yet
        return autocast_copy_bytes(cfg, run) - 2 * (9 * C * C + 5 * C * b + cfg.vocab_size * C)
    if not run.compile and moment in ("gelu", "c_proj"):  # the last block's MLP: lm_head's copy (VC) is not
        C, b = cfg.n_embd, int(cfg.bias)  # made yet, nor at GELU its c_proj's (4C^2 + C bias)
        later = cfg.vocab_size * C + (4 * C * C + C * b if moment == "gelu" else 0)
        return autocast_copy_bytes(cfg, run) - 2 * later
    if not run.compile:
        return autocast_copy_bytes(cfg, run)
    C = cfg.n_embd
    moment = "mlp" if moment in ("gelu", "c_proj") else moment
    return {"mlp": 8 * C * C, "attention": 6 * C * C, "head": 2 * cfg.vocab_size * C}[moment]


def eval_mlp_moment_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # inside an MLP, beside the previous batch's logits (aV per token). Eager: the block's input (the caller
    # still holds it) and the residual after attention (2rC) + ln_2's output (fp32 under autocast) + c_fc
    # and GELU outputs (8aC). Compiled: the residual + c_fc's output, GELU in place (4aC) + two a*C tensors
    C, a, r = cfg.n_embd, act_size(run), resid_size(run)
    if run.compile:
        per_token = r * C + 6 * a * C
    else:
        per_token = 2 * r * C + (2 if run.label == "pure_bf16" else 4) * C + 8 * a * C
    n_e = eval_tokens(cfg, run)
    if run.compile and run.device == "cpu":  # at c_proj's matmul or c_fc's (the same buffers: see below)
        unpooled = compiled_eval_mlp_token_bytes(cfg, run) + pooled_unstored_scores_token_bytes(cfg, run)
        mlp = max(unpooled, pooled_scores_mlp_token_bytes(cfg, run))
        tokens = n_e * (mlp + previous_logits_bytes(cfg, run))
        pack = max(compiled_mlp_pack_bytes(cfg, run), c_fc_pack_bytes(cfg, run))
        copies = eval_weight_copy_bytes(cfg, run, "c_proj") + compiled_pooled_attention_copy_bytes(cfg, run)
        return tokens + pack + copies
    moment = n_e * (per_token + previous_logits_bytes(cfg, run))
    # c_proj's matmul: c_fc's output is freed, c_proj's output (aC) and the CPU 16-bit matmul's copy are added
    pack = cpu_bf16_pack_bytes(cfg, run, n_e)
    if run.compile and run.device == "cpu" and a == 2 and n_e <= 128:  # inductor's bf16 mm, autocast too
        pack = 8 * C * C + 9856
    c_proj = moment - 3 * n_e * a * C + pack + eval_weight_copy_bytes(cfg, run, "c_proj")
    # c_fc's matmul: GELU's output (4aC) not made yet, oneDNN's pack of c_fc's weight beside the rest
    c_fc = moment - 4 * n_e * a * C + c_fc_pack_bytes(cfg, run) + eval_weight_copy_bytes(cfg, run, "gelu")
    return max(moment + eval_weight_copy_bytes(cfg, run, "gelu"), c_proj, c_fc)


def compiled_eval_mlp_token_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # CPU inductor's no-grad MLP at c_proj's matmul, per token: its input, c_fc's output with GELU in place
    # (4aC), and its output (aC), beside the residual (rC, from the 2nd block; the first recomputes it from
    # the embeddings) and the block outputs inductor adds to it lazily: this block's attention output (aC),
    # and from the 3rd block the last block's attention and MLP outputs (2aC more)
    C, a = cfg.n_embd, act_size(run)
    resid = resid_size(run) * C if cfg.n_layer > 1 else 0
    return resid + (3 if cfg.n_layer > 2 else 1) * a * C + 5 * a * C


def compiled_mlp_pack_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # CPU inductor's 16-bit c_proj matmul (K = 4C, N = C, autocast too) is the eager one's aten::addmm on the
    # transposed weight, with oneDNN's same scratch (cpu_bf16_pack_bytes): measured on the op at 2 threads, C 64
    # to 384, equal to the eager step's per shape (529,408 B at 256 rows, C = 256: 1L/256/8h T=64 B=4 bf16)
    if not (run.compile and run.device == "cpu"):
        return 0
    return cpu_bf16_pack_bytes(cfg, replace(run, compile=False), eval_tokens(cfg, run))


def c_fc_pack_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # the no-grad 16-bit c_fc matmul on CPU (K = C, N = 4C), eager or inductor's: oneDNN packs its weight like any
    # bf16 mm (cpu_bf16_mm_pack_bytes: from 33 rows at K <= 32; 18,048 B at 64 rows, C = 16, 2 threads: 6L/16/2h
    # T=32 B=2 bf16, compiled, and pure bf16 eager), a panel a thread up to 32 rows. Compiled, beside it the same
    # per-token buffers as at c_proj's matmul: ln_2's output and c_fc's (aC + 4aC) in place of c_fc's and
    # c_proj's outputs (4aC + aC); eager, every MLP buffer but GELU's output (eval_mlp_moment_bytes)
    if not (run.device == "cpu" and act_size(run) == 2):
        return 0
    n_e, C, threads = eval_tokens(cfg, run), cfg.n_embd, run.cpu_threads
    if n_e <= 32:
        rule = cpu_bf16_panel_scratch_bytes(n_e, C, 4 * C, threads)
    else:
        rule = cpu_bf16_mm_pack_bytes(n_e, C, 4 * C, threads)
    return measured_mm_scratch_bytes("forward", n_e, C, 4 * C, threads, rule)


def compiled_pooled_attention_copy_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # compiled under autocast on CPU, flash attention with biases, 2+ blocks: the first block's attention weight
    # copies (c_attn's, 6C^2 + 3C bias, and c_proj's, 2C^2 + C bias: 16-bit) are not freed after their addmm
    # but kept by inductor's memory planning for the next block's copies, so they sit beside its MLP's
    # (6L/16/2h T=32 B=2 and 2L/64/1h T=64 B=4 bf16 flash: at the first block's c_fc matmul). Math attention's
    # code frees them at once (2L/32/1h T=16 B=2 bf16), as do mm's without biases; one block has no next
    if not (run.compile and run.device == "cpu" and autocast_copy_bytes(cfg, run)) or run.attention != "flash":
        return 0
    if not cfg.bias or cfg.n_layer < 2:
        return 0
    C = cfg.n_embd
    return 2 * (4 * C * C + 4 * C)


def compiled_eval_softmax_token_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # inductor's no-grad math attention, per token. fp32: the fused softmax kernel overwrites the scores in
    # place (the exp, then the softmax), one fp32 T x T tensor (4*H*T). 16-bit: the scores (a*H*T), the
    # unnormalized exp the kernel stores in fp32 before it divides (4*H*T: its decomposition upcasts) and the
    # softmax (a*H*T). + the fp32 row max and sum (8H)
    if run.attention != "math":
        return 0
    H, T, a = cfg.n_head, cfg.block_size, act_size(run)
    return (4 if a == 4 else 2 * a + 4) * H * T + 8 * H


def pooled_mlp_hidden_token_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # compiled flash attention, from the 2nd block on: inductor frees a buffer by keeping it for the next
    # allocation of the same dtype and size, so the previous block's c_fc output (4aC) waits through this
    # block's attention for its MLP (math attention's generated code frees it at once)
    if cfg.n_layer <= 2 or run.attention == "math":  # two blocks: the generated code frees it (measured)
        return 0
    return 4 * cfg.n_embd * act_size(run)


def compiled_eval_attention_token_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # inductor's no-grad block at its attention, per token (CPU inductor's generated code). One block: the
    # residual is recomputed from the embeddings; flash keeps qkv, ln_1's output (kept to be reused for
    # c_proj's output) and the output (5aC). From the 2nd block, the residual (rC) and: flash, 5aC (qkv,
    # ln_1's output, the output, a residual piece inductor adds lazily) + the pooled c_fc output. Beside them
    # the kernel's packed k, v and its logsumexp. Math: see compiled_eval_math_token_bytes
    C, a = cfg.n_embd, act_size(run)
    if run.attention == "math":
        return compiled_eval_math_token_bytes(cfg, run)
    kernel = cpu_flash_packed_kv_token_bytes(cfg, run) + cpu_flash_logsumexp_token_bytes(cfg, run)
    if cfg.n_layer == 1:
        return 5 * a * C + kernel
    # autocast: one 16-bit n x C buffer more, the last block's MLP output, kept by inductor's memory planning
    # for reuse (2L/64/1h T=64 B=4 and 2L/32/2h T=64 B=1 bf16: at the 2nd block's flash call)
    piece = a * C if a < resid_size(run) else 0
    return resid_size(run) * C + 5 * a * C + piece + pooled_mlp_hidden_token_bytes(cfg, run) + kernel


def compiled_eval_math_token_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # inductor's no-grad math attention, per token, its largest of three moments. Beside them: the residual
    # (rC, from the 2nd block; the first recomputes it from the embeddings) and, from the 3rd block, the last
    # block's attention and MLP outputs that inductor adds to it lazily (2aC). One head: q, k, v are views
    # of c_attn's output (3aC) that bmm reads as they are, kept to the end (so too one sequence, B = 1), and
    # softmax @ v's output (aC: ln_1's output held for it, or a new buffer once that is freed; 4L/64/1h T=256
    # B=2 fp32: at the 3rd block's softmax @ v, 4aC beside the softmax and the residual pieces). More:
    # (1) the split copies q, k, v out of qkv (6aC, ln_1's output reused for q), (2) the scores beside q, k,
    # v (3aC + a*H*T + the fp32 row max, 4H), (3) the softmax beside v's copy and k's, which the generated
    # code keeps as the buffer for softmax @ v (2aC: 2L/64/2h T=64 B=8 pure bf16, 3L/96/8h T=64 B=3 bf16): q
    # and qkv are freed by then, unless v's copy is fused into the softmax's kernel, which keeps qkv to it and
    # q's copy as the buffer for softmax @ v (3aC more: seen in 16-bit, autocast and pure bf16, at B 2 to 8 up
    # to 256 eval tokens, 2L/64/8h T=64 B=3 and 4 pure bf16; not at B 6 or 8 with 384 or more, nor fp32).
    # What moves v's copy is inductor's reorder_for_peak_memory, not its fusion: with it off, v's copy is fused
    # in every config tried; on, it keeps the traced order unless another topological order lowers its own
    # estimate of the graph's peak, and then v's copy is made beside q's and k's (3L/96/8h T=64 B=3 bf16 at
    # V = 64, chunked or not: at the softmax only v's copy is kept, 3aC less, and c_proj's weight copy instead
    # of c_attn's; at V = 2048 the fused order). Not modelled: the fused count is the larger
    C, a, H, T = cfg.n_embd, act_size(run), cfg.n_head, cfg.block_size
    base = (resid_size(run) * C if cfg.n_layer > 1 else 0) + (2 * a * C if cfg.n_layer > 2 else 0)
    n_e = eval_tokens(cfg, run)
    views = H == 1 or n_e <= T
    fused_v = a == 2 and not views and n_e <= 256 and fused_v_order_kept(cfg, run, base)
    kept = 5 * a * C if fused_v else 4 * a * C if views else 2 * a * C
    if views and cfg.n_layer == 1:  # one block: the generated code frees ln_1's output after c_attn's matmul
        kept = 3 * a * C  # and makes softmax @ v's output after the softmax (1L/128/1h T=512 B=8 pure bf16)
    if not views and not fused_v and cfg.n_layer == 1:  # so too split: k's copy is freed after the scores, not
        kept = a * C  # kept for softmax @ v, whose output is made after the softmax: v's copy alone beside it
        # (1L/128/2h T=256 B=4 pure bf16 chunks 8: 1,048,576 B scores and softmax, 2 MiB exp, one 262,144 B)
    split = 0 if views else 6 * a * C
    if not views and blocks_whose_scores_wait(cfg, run):  # fp32: the last block's scores buffer waits in
        split += 4 * H * T  # inductor's pool for this block's scores (4L/32/4h T=64 B=8; not 3L/96/4h T=128)
    scores = 3 * a * C + a * H * T + 4 * H
    softmax = compiled_eval_softmax_token_bytes(cfg, run) - unstored_exp_token_bytes(cfg, run)
    unfused = unfused_softmax_input_token_bytes(cfg, run)  # (4) the softmax beside its input and q, k, v
    return base + max(split, scores, kept + softmax, 3 * a * C + softmax + unfused if unfused else 0)


def fused_v_order_kept(cfg: ModelConfig, run: RunConfig, base: int) -> bool:
    # does reorder_for_peak_memory keep the traced order, v's copy fused into the softmax's kernel? It reorders
    # only where that lowers its estimate of the graph's peak, so pure bf16 keeps it where the full loss in the
    # graph, the logits and their fp32 log_softmax ((a + 4) V per token), outweighs the fused softmax moment
    # (2L/64/8h T=64 V=2048 B=3, 4: fused; 1L/128/8h T=64 V=64 B=4 and, chunked, 2L/64/4h T=32 B=4: not).
    # Autocast: the larger count, fused (see above)
    if run.label != "pure_bf16":
        return True
    if run.loss_chunks:
        return False
    a = act_size(run)
    fused = base + 5 * a * cfg.n_embd + compiled_eval_softmax_token_bytes(cfg, run)
    return (a + 4) * cfg.vocab_size >= fused


def cpu_flash_packed_kv_token_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # CPU flash attention on 16-bit q, k, v packs k and v into oneDNN's blocked layout first, a 16-bit copy of
    # each (2aC per token), once a kv block fills oneDNN's 64-wide pack (T >= 64; none at T = 16 to 48).
    # Measured on the op itself under the profiler, B 1 to 8, H 1 to 8, hs 16 to 128, 1 and 2 threads; an
    # eager forward calls the same kernel
    if run.device != "cpu" or run.attention != "flash" or act_size(run) != 2 or cfg.block_size < 64:
        return 0
    return 2 * cfg.n_embd * act_size(run)


def cpu_flash_logsumexp_token_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # CPU flash attention returns the fp32 logsumexp of every row beside its output (4H per token), alive
    # until the generated code drops it after the call (no grad: nothing saves it)
    return 4 * cfg.n_head if run.device == "cpu" and run.attention == "flash" else 0


def cpu_flash_packed_kv_block_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # ... and with them a 16-bit kv block per thread (kvS = min(T, 512) rows of a head, 2*kvS*hs each)
    if not cpu_flash_packed_kv_token_bytes(cfg, run):
        return 0
    return run.cpu_threads * 2 * min(cfg.block_size, 512) * (cfg.n_embd // cfg.n_head)


def eval_attention_moment_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # math attention, beside the previous batch's logits (aV per token): the residual, (eager) ln_1's output,
    # q, k, v (3aC) and the no-grad T x T transients, two at a time: scores and their masked copy (+ the T x T
    # bool ~mask, eager), or the softmax and its input (CUDA autocast: fp32 softmax + its 16-bit cast).
    # Flash attention keeps no T x T matrix; on CPU its kernel's buffers sit beside q, k, v and its output
    C, a, HT, n_e = cfg.n_embd, act_size(run), cfg.n_head * cfg.block_size, eval_tokens(cfg, run)
    if run.compile and run.device == "cpu":  # CPU inductor's kernels (Triton's softmax keeps no fp32 exp)
        per_token = compiled_eval_attention_token_bytes(cfg, run) + previous_logits_bytes(cfg, run)
        workspace = cpu_flash_workspace_bytes(cfg, run, backward=False) + cpu_flash_packed_kv_block_bytes(cfg, run)
        return n_e * per_token + workspace + compiled_attention_copy_at_kernel_bytes(cfg, run)
    ln_out = 0 if run.compile else (2 if run.label == "pure_bf16" else 4) * C
    if run.attention != "math":
        workspace = cpu_flash_workspace_bytes(cfg, run, backward=False) + cpu_flash_forward_copies_bytes(cfg, run, n_e)
        if not workspace:
            return 0
        lse = cpu_flash_logsumexp_token_bytes(cfg, run)  # the kernel's fp32 logsumexp beside its output
        base = n_e * (resid_size(run) * C + ln_out + 4 * a * C + lse + previous_logits_bytes(cfg, run))
        return base + workspace + eval_weight_copy_bytes(cfg, run, "attention")
    base = n_e * (resid_size(run) * C + ln_out + 3 * a * C + a * HT + previous_logits_bytes(cfg, run))
    mask = 0 if run.compile else cfg.block_size**2
    return base + max(n_e * a * HT + mask, n_e * softmax_size(run) * HT) + eval_weight_copy_bytes(cfg, run, "attention")


def compiled_attention_copy_at_kernel_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # CPU inductor under autocast, at the attention kernel: c_attn's 16-bit weight copy (6C^2). Flash with one
    # block: the generated code frees it after c_attn's addmm, with no next block to keep it for, so no copy is
    # alive at the kernel (1L/128/2h T=256 B=2 bf16 flash: only fp32 weights beside q, k, v and the kernel's)
    if run.attention == "flash" and cfg.n_layer == 1:
        return 0
    return eval_weight_copy_bytes(cfg, run, "attention")


def eval_head_moment_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # at the loss: the residual stream (compiled: ln_f's output, a*C) + the logits terms above, per token
    r = act_size(run) if run.compile and not run.loss_chunks else resid_size(run)
    n_e = eval_tokens(cfg, run)
    if run.loss_chunks:  # a chunk's loss, or before it the LM head's matmul: the chunk's logits and its scratch
        n_c = loss_chunk_tokens(n_e, run)
        matmul = n_c * cfg.vocab_size * act_size(run) + cpu_bf16_head_scratch_bytes(cfg, run, n_c)
        chunk = max(eval_chunk_bytes(cfg, run), matmul)
        return n_e * r * cfg.n_embd + chunk + eval_weight_copy_bytes(cfg, run, "head")
    head = n_e * (r * cfg.n_embd + eval_logits_bytes(cfg, run)) + eval_weight_copy_bytes(cfg, run, "head")
    # eager CPU 16-bit: before the loss, the LM head's matmul makes the logits (aV) beside the previous batch's
    # and oneDNN's scratch, which can outweigh the loss's copies where V is small against the scratch
    logits = n_e * (r * cfg.n_embd + previous_logits_bytes(cfg, run) + act_size(run) * cfg.vocab_size)
    matmul = logits + cpu_bf16_head_scratch_bytes(cfg, run, n_e) + eval_weight_copy_bytes(cfg, run, "head")
    return max(head + compiled_head_pack_bytes(cfg, run), matmul)


def cpu_bf16_mm_pack_bytes(tokens: int, K: int, N: int, threads: int) -> int:
    # a bf16 mm on CPU (oneDNN) copies its N x K weight into a blocked layout, K rounded up to 64 (half of it
    # on one thread), + 9856 bytes of scratch, when the call is large enough to pay for it: from 33 rows at
    # K <= 32, else from 321 rows (half the copy at K >= 768). Measured with the profiler on this CPU, M 16 to
    # 2048, K 16 to 768, N 2048 and 8192, 1 and 2 threads (at N = 8192 and K >= 128 the copy is smaller)
    if not (K <= 32 and tokens > 32 or tokens > 320):
        return 0
    return N * -(-K // 64) * 64 * min(threads, 2) // (2 if K >= 768 else 1) + 9856


def cpu_bf16_head_scratch_bytes(cfg: ModelConfig, run: RunConfig, rows: int) -> int:
    # eager CPU, 16-bit: the LM head's x @ W^T over `rows` tokens (K = C, N = V) keeps oneDNN's scratch while it
    # runs: a panel of W a thread up to 32 rows (cpu_bf16_panel_scratch_bytes), then W's blocked copy
    if run.device != "cpu" or act_size(run) != 2 or run.compile:
        return 0
    C, V, threads = cfg.n_embd, cfg.vocab_size, run.cpu_threads
    if rows <= 32:
        rule = cpu_bf16_panel_scratch_bytes(rows, C, V, threads)
    else:
        rule = cpu_bf16_mm_pack_bytes(rows, C, V, threads)
    return measured_mm_scratch_bytes("forward", rows, C, V, threads, rule)  # measured on this CPU where it is


def compiled_head_pack_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # compiled on CPU, 16-bit: the LM head's mm (aten::mm) packs the V x C bf16 weight while it runs; below
    # the rows where it packs all of it (33 to 320 rows, K = C > 32), a 32-column panel of W a thread (2*32*C)
    # + 9856 bytes of scratch (measured at 96 rows, C = 128, V = 2048, 2 threads); up to 32 rows, the eager
    # kernel's panels and accumulator (cpu_bf16_panel_scratch_bytes, exact at 32 rows, C = 32, V = 512)
    return compiled_head_mm_scratch_bytes(cfg, run, eval_tokens(cfg, run))


def compiled_head_mm_scratch_bytes(cfg: ModelConfig, run: RunConfig, rows: int) -> int:
    # ... over `rows` tokens: the eval batch's, or a training micro-batch's (the forward graph's same mm)
    if not (run.compile and run.device == "cpu" and act_size(run) == 2) or run.loss_chunks:
        return 0
    C = cfg.n_embd
    pack = cpu_bf16_mm_pack_bytes(rows, C, cfg.vocab_size, run.cpu_threads)
    if pack:
        return pack
    if rows <= 32:
        return cpu_bf16_panel_scratch_bytes(rows, C, cfg.vocab_size, run.cpu_threads)
    return min(run.cpu_threads, -(-cfg.vocab_size // 32)) * 2 * 32 * C + 9856


def eval_forward_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # the largest moment of a no-grad forward (with the weight copies alive then) + the eval batch
    moments = (eval_mlp_moment_bytes(cfg, run), eval_attention_moment_bytes(cfg, run), eval_head_moment_bytes(cfg, run))
    return max(moments) + batch_bytes(cfg, eval_tokens(cfg, run))
