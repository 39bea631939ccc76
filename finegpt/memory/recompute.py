"""Activation checkpointing's own moments: eager, the recompute's attention weights; compiled, the moments of
the one backward graph that recomputes the blocks (the recomputed attention's included), as CPU inductor's
generated code orders them (read with TORCH_LOGS=output_code). Each is one small function with its formula and
reason (bytes per rank); phases.py places them. Notation as in terms.py.
"""

from __future__ import annotations

from finegpt.config import ModelConfig
from finegpt.memory.activations import CPU_RNG_STATE_BYTES, attention_act_bytes, dropout_act_bytes, mlp_act_bytes
from finegpt.memory.eval_forward import compiled_eval_softmax_token_bytes
from finegpt.memory.moments import block_grad_bytes
from finegpt.memory.state import (
    act_size,
    autocast_copy_bytes,
    cpu_bf16_head_grad_copy_bytes,
    cpu_flash_workspace_bytes,
    mask_size,
    measured_mm_scratch_bytes,
    param_size,
    resid_size,
    softmax_size,
    train_tokens,
)
from finegpt.run import RunConfig


def _autocast(run: RunConfig) -> bool:
    return act_size(run) < param_size(run)  # 16-bit activations from fp32 weights


def recomputed_block_copy_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # checkpointing under autocast: the recomputed block's 16-bit weight copies (autocast_copy_bytes, one
    # block). Not lm_head's (VC): eager, autocast's cache is dropped as forward's context exits, and the copy
    # the LM head's matmul saved (the chunked loss's, each chunk's) is freed by its backward, before the blocks';
    # compiled, the backward graph frees the copy its forward saved after the head's two matmuls, before it
    # recomputes a block (2L/128/2h T=32 B=8 bf16 flash dropout, generated code)
    copies = autocast_copy_bytes(cfg, run, blocks=1)
    return copies - 2 * cfg.vocab_size * cfg.n_embd if copies else copies


def recomputed_attention_weights_bytes(cfg: ModelConfig, run: RunConfig, block_grads: int) -> int:
    # eager checkpointing, math attention: a block's recompute at its T x T weights, in model.py's one line
    # `att = self.attn_dropout(F.softmax(att, dim=-1))`: the masked scores stay bound to `att` (a*H*T per
    # token) beside softmax's output (s*H*T) and, with dropout, its mask and output. Of the block so far: ln_1's
    # output (rC, its 16-bit cast aC and 2 stats), c_attn's output (3aC), contiguous q and k (2aC), and
    # masked_fill's inverted causal mask (T*T bool); the gradient arriving from above (rC) and, autocast, its
    # 16-bit cast (aC). The top block with every checkpoint (L*n*C*r), or the bottom one with its checkpoint
    # and the blocks above's gradients (`block_grads` each, one micro-step)
    if run.compile or not run.activation_checkpointing or run.attention != "math":
        return 0
    n, C, H, T, L = train_tokens(cfg, run), cfg.n_embd, cfg.n_head, cfg.block_size, cfg.n_layer
    a, r, s = act_size(run), resid_size(run), softmax_size(run)
    weights = a * H * T + s * H * T + ((mask_size(run, s) + s) * H * T if cfg.dropout > 0 else 0)
    cast = a * C if a < r else 0
    block = n * (2 * r * C + 2 * r + 2 * cast + 5 * a * C + weights) + T * T
    checkpoint = n * C * r
    grads = block_grads if run.gradient_accumulation_steps == 1 else 0
    return max(L * checkpoint, checkpoint + (L - 1) * grads) + block


def compiled_head_grad_mm_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # compiled with checkpointing under autocast, the backward graph's first matmul: the LM head's weight
    # gradient (V*C*a) from the logits' gradient (n*V*a), with oneDNN's copy of its output on CPU
    # (cpu_bf16_head_grad_copy_bytes). Where n = C the embedding's dense gradient (V*C*4, fp32) has the
    # logits' element count, so inductor fuses its zero-fill into the loss gradient's kernel: alive from here
    if not (run.compile and run.activation_checkpointing and _autocast(run)) or run.loss_chunks:
        return 0
    n, V, C, a = train_tokens(cfg, run), cfg.vocab_size, cfg.n_embd, act_size(run)
    dense = V * C * 4 if n == C else 0
    return n * V * a + V * C * a + cpu_bf16_head_grad_copy_bytes(cfg, run, n, compiled=True) + dense


def compiled_tied_sum_addmm_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # compiled with checkpointing, the full loss, no autocast: the backward graph's last matmul, an addmm of the
    # LM head's weight gradient (logits' gradient^T @ ln_f's output) into the embedding's dense gradient, every
    # block's gradient made: its input, the 16-bit dense gradient (V*C*a), and ln_f's output saved for it (n*C*a),
    # beside oneDNN's scratch of that V x C product on CPU 16-bit (measured where it is, else the rule); the
    # fp32 dense sums and the first checkpoint are freed (read: 4L/32/1h T=32 B=3 pure bf16, the step's peak)
    if not (run.compile and run.activation_checkpointing) or run.loss_chunks or _autocast(run):
        return 0
    n, V, C, a = train_tokens(cfg, run), cfg.vocab_size, cfg.n_embd, act_size(run)
    rule = cpu_bf16_head_grad_copy_bytes(cfg, run, n, compiled=True)
    cpu_16bit = run.device == "cpu" and a == 2
    scratch = measured_mm_scratch_bytes("grad_weight", V, n, C, run.cpu_threads, rule) if cpu_16bit else 0
    return V * C * a + n * C * a + scratch


def compiled_recomputed_flash_backward_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # compiled with checkpointing, CPU flash attention without dropout: the backward graph's top block, every
    # checkpoint held, at the largest of three moments (per token, generated code read at 1 and 2 blocks):
    # - its MLP backward, at GELU's gradient (4aC): ln_1's output, q, k, v, the attention output, c_proj's,
    #   ln_2's, c_fc's, GELU's and the block's outputs (16aC) and logsumexp (4H), the residual stream's
    #   gradient (rC) and the norms' statistics (24 bytes)
    # - its flash-attention backward: the block's ln_1 output, q, k, v, the attention output and c_proj's
    #   output (6aC) and logsumexp (4H), the gradients of ln_2's output and of the attention output (2aC), the
    #   kernel's zero-filled q, k, v gradients (3aC), the residual stream's (rC) and the norms' statistics (16
    #   bytes), beside its workspace and the block's MLP and c_proj weight gradients (8C^2 p). Under autocast
    #   also the attention output gradient's 16-bit copy (aC) and c_attn's and c_proj's copies (4C^2 a). From
    #   2 blocks on, inductor keeps the freed MLP buffers for the next block's (c_fc's output and GELU's
    #   gradient, 8aC; under autocast the residual gradient from above, rC, and c_fc's 16-bit weight gradient,
    #   4C^2 a) and the RNG state each block below saved for its recompute waits (CPU_RNG_STATE_BYTES)
    # - pure bf16, from 3 blocks on, the next-to-last block's flash-attention backward: inductor's reuse pool
    #   can then hold all three of the block's MLP buffers (c_fc's and GELU's outputs and GELU's gradient, 12aC,
    #   4aC more) for the last block's, beside the L-2 blocks' gradients above it (the graph's outputs,
    #   block_grad_bytes), their checkpoints (rC each) freed. Whether it does is the pool's choice (read: the
    #   3rd of 4 blocks at T = 2048, the 4th and 5th of 6 at T = 1024; not at 4 blocks, T = 512; fp32 keeps
    #   two at every block of 4)
    # Both: with B > 1 the first checkpoint is saved as its two embeddings, the positions' (T*C*r) apart
    if not (run.compile and run.activation_checkpointing and run.attention == "flash") or cfg.dropout > 0:
        return 0
    workspace = cpu_flash_workspace_bytes(cfg, run)
    if not workspace:
        return 0
    C, H, a, r, p = cfg.n_embd, cfg.n_head, act_size(run), resid_size(run), param_size(run)
    cast = _autocast(run)
    per_token = 11 * a * C + r * C + 4 * H + 16 + (a * C if cast else 0)
    fixed = workspace + 8 * C * C * p + (4 * C * C * a if cast else 0)
    if cfg.n_layer > 1:
        per_token += 8 * a * C + (r * C if cast else 0)
        fixed += (4 * C * C * a if cast else 0) + (cfg.n_layer - 1) * CPU_RNG_STATE_BYTES
    n = train_tokens(cfg, run)
    attention = n * per_token + fixed
    mlp = n * (20 * a * C + r * C + 4 * H + 24) + (12 * C * C * a if cast else 0)
    pure_bf16 = p == 2 and not cast
    above = cfg.n_layer - 2  # the blocks above the next-to-last
    middle = attention + n * (4 * a * C - above * r * C) + above * block_grad_bytes(cfg, run)
    middle = middle if above and pure_bf16 else 0
    positions = cfg.block_size * C * r if run.batch_size > 1 else 0
    return max(attention, mlp, middle) + positions


def compiled_first_checkpoint_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # compiled with checkpointing, the end of the backward graph: its last kernel recomputes the first block's
    # ln_1 from that block's checkpoint, so the embeddings' output (n*C*r) is alive to the end, saved with
    # B > 1 as its two embeddings, the positions' apart (T*C*r). Pure bf16: the position embedding's dense
    # gradient is accumulated in fp32 (T*C*4) beside its 16-bit copy, as the token embedding's is
    if not (run.compile and run.activation_checkpointing):
        return 0
    T, C, r = cfg.block_size, cfg.n_embd, resid_size(run)
    positions = T * C * r if run.batch_size > 1 else 0
    wpe_fp32 = T * C * 4 if param_size(run) == 2 else 0
    return train_tokens(cfg, run) * C * r + positions + wpe_fp32


def compiled_recomputed_softmax_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # compiled with checkpointing, math attention: the backward graph recomputes a block's attention as the
    # eval graph runs it, n * (the scores, the fp32 exp and the softmax, (2a + 4) * H * T, + their row max and
    # sum, 8H), beside ln_1's output, qkv (3aC) and the q, k, v copies (7aC in all, the generated code's count)
    if not (run.compile and run.activation_checkpointing and run.device == "cpu"):
        return 0
    softmax = compiled_eval_softmax_token_bytes(cfg, run)
    return train_tokens(cfg, run) * (softmax + 7 * cfg.n_embd * act_size(run)) if softmax else 0


def compiled_bottom_softmax_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # ... from 2 blocks on, the bottom block's, the blocks above done: its softmax (as above) beside the first
    # checkpoint (n*C*r; with B > 1 its two embeddings, the positions' T*C*r apart), the L-1 blocks' gradients
    # (the graph's outputs, every micro-step), the residual stream's gradient from above (rC) and the norms'
    # statistics (24 bytes) per token (read: 2L/64/4h and 3L/64/4h T=128 pure bf16, B = 1 and 2)
    softmax = compiled_recomputed_softmax_bytes(cfg, run)
    if cfg.n_layer < 2 or not softmax:
        return 0
    n, C, r = train_tokens(cfg, run), cfg.n_embd, resid_size(run)
    positions = cfg.block_size * C * r if run.batch_size > 1 else 0
    grads = (cfg.n_layer - 1) * block_grad_bytes(cfg, run)
    return softmax + n * C * r + positions + grads + n * (r * C + 24)


def compiled_bottom_softmax_pool_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # ... and, kept in inductor's reuse pool for the bottom block's c_fc output, the block above's MLP hidden
    # gradient (4aC per token), as far as it fits: the pool keeps a freed buffer only while inductor's own
    # estimate of the graph's peak does not rise (should_reuse_buffer, torch/_inductor/codegen/wrapper.py).
    # That estimate peaks at the block's softmax backward, whose output it counts beside the bmm's it is
    # written over (3 T x T: 3aHT), beside the gradients of the attention output, of ln_2's output, c_proj's
    # output and input (4aC) and the block's MLP weight gradients (8C^2 p); at the softmax's kernel it leaves
    # out the 16-bit scores the kernel frees (aHT; fp32 writes over them) and holds the softmax's T x T
    # tensors and q, k, v (compiled_eval_softmax_token_bytes, 3aC of its 7aC). What is left is the room. With
    # B > 1 the softmax backward holds q's and k's copies in qkv's place and c_proj's backward is done: 4aC less
    if not compiled_bottom_softmax_bytes(cfg, run):
        return 0
    n, C, H, T, a = train_tokens(cfg, run), cfg.n_embd, cfg.n_head, cfg.block_size, act_size(run)
    freed = a * H * T if a < 4 else 0
    softmax = compiled_eval_softmax_token_bytes(cfg, run) - 8 * H  # its T x T tensors
    room = n * (3 * a * H * T + freed - softmax + a * C) + 8 * C * C * param_size(run)
    room -= n * 4 * a * C if run.batch_size > 1 else 0
    return min(n * 4 * a * C, max(0, room))


def compiled_recomputed_exp_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # ... and after it: the fp32 exp's buffer (n*4*H*T) is not freed but kept for a later buffer of its size
    # (inductor's reuse pool), through the recomputed block's MLP and its backward. Counted for one block,
    # where that moment is the peak; with more, the worst block's moment (recompute_moments) is another one.
    # A 16-bit softmax (CPU pure bf16 or autocast) has no later buffer of its size: freed at once. Its 16-bit
    # scores may wait instead for the softmax backward's T x T (1L/128/8h T=256 B=3 pure bf16; not at 1L/128/4h
    # T=256 B=1 bf16), but only where inductor's own peak estimate, the recomputed softmax, has room for them
    # (should_reuse_buffer): the softmax's moment (compiled_recomputed_softmax_bytes) is the larger one then
    if not compiled_recomputed_softmax_bytes(cfg, run) or cfg.n_layer > 1 or softmax_size(run) != 4:
        return 0
    return train_tokens(cfg, run) * 4 * cfg.n_head * cfg.block_size


def compiled_recomputed_attention_output_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # compiled with checkpointing, math attention: the backward graph's recomputed block holds its attention
    # output twice, as the bmm wrote it (attention_act_bytes counts it) and copied to (B, T, C) for c_proj, and
    # c_proj's output (its buffer kept in inductor's pool, for ln_2's gradient), through the block's backward:
    # 2aC per token more than the forward saves
    if not (run.compile and run.activation_checkpointing and run.attention == "math"):
        return 0
    return train_tokens(cfg, run) * 2 * cfg.n_embd * act_size(run)


def compiled_recomputed_dropout_attention_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # compiled with checkpointing, CPU attention with dropout: the backward graph recomputes the block's attention
    # and holds through the block's MLP backward more than the forward's saved tensors (attention_act_bytes):
    # its dropout draws a mask from a seed, stored as fp32 uniform draws (4HT), not a bool mask. Per token:
    # - flash, 16-bit (pure bf16 or autocast): its fp32 decomposition, the exp, the uniform draws and the dropped
    #   weights (3 * 4HT), the row max, sum and any-mask (9H) and fp32 q, k, v and output (16C); fp32 keeps its
    #   scores as well (4 * 4HT)
    # - math, every dtype: the fp32 exp (written over fp32 scores, or beside 16-bit ones, which are freed), the
    #   uniform draws and the dropped weights ((8 + a) * HT), the row max and sum (8H), q, k, v and output (4aC)
    if not (run.compile and run.activation_checkpointing and run.device == "cpu") or cfg.dropout == 0:
        return 0
    H, T, C, a = cfg.n_head, cfg.block_size, cfg.n_embd, act_size(run)
    if run.attention == "math":
        return train_tokens(cfg, run) * max(0, (8 + a) * H * T + 8 * H + 4 * a * C - attention_act_bytes(cfg, run))
    # fp32 T x T buffers; from 2 blocks on the 16-bit step's fp32 scores too, kept in inductor's pool for the
    # next block's exp (3L/96/4h T=128 B=2 pure bf16)
    kept = 4 if a == 4 or cfg.n_layer > 1 else 3
    return train_tokens(cfg, run) * (kept * 4 * H * T + 9 * H + 16 * C - attention_act_bytes(cfg, run))


def compiled_fused_dropout_softmax_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # ... (flash) the recomputing kernel itself: its fp32 scores (4HT per token) beside the three T x T buffers
    # it writes, before the block's MLP and its dropout masks are recomputed (8aC + 2Cm, not there yet). From
    # 2 blocks on, inductor fuses a block's softmax backward with the next block's recomputed softmax into one
    # kernel: beside the first block's three T x T buffers, the next block's scores and its exp, uniform draws
    # and dropped weights (4 * 4HT) and row statistics (9H) per token (under autocast one fp32 buffer less, but
    # the 16-bit copies of the dropped weights and of their gradient for the bmm's, 2 * 2HT, in its place),
    # and the fp32 zeros (4HT) the decomposition's safe softmax selects from, saved once by the forward graph
    # for every block's recompute (those two: compiled_safe_softmax_zeros_bytes, compiled_next_block_scores_bytes,
    # alive from the block's MLP backward on). The first block's fp32 scores buffer, kept in inductor's pool
    # (compiled_recomputed_dropout_attention_bytes), is the next block's exp
    if not compiled_recomputed_dropout_attention_bytes(cfg, run) or run.attention != "flash":
        return 0
    H, T = cfg.n_head, cfg.block_size
    if cfg.n_layer > 1:  # after the block's MLP backward: its MLP activations and dropout masks are freed
        freed = mlp_act_bytes(cfg, run) + dropout_act_bytes(cfg, run)
        # the next block's scores and what they are made from: made before (fp32), or here
        made = 4 * H * T if compiled_next_block_scores_bytes(cfg, run) else -_next_block_input_bytes(cfg, run)
        return train_tokens(cfg, run) * (12 * H * T + 9 * H - freed - made)
    scores = 4 * H * T if act_size(run) == 2 else 0  # fp32 keeps them: counted already
    return train_tokens(cfg, run) * max(0, scores - mlp_act_bytes(cfg, run) - dropout_act_bytes(cfg, run))


def compiled_safe_softmax_zeros_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # compiled with checkpointing, CPU flash with dropout, from 2 blocks on: the fp32 zeros (4HT per token) the
    # decomposition's safe softmax selects from, saved once by the forward graph for every block's recompute:
    # alive from the end of forward (read at the backward graph's first kernel: 2L/64/1h T=128 B=4 pure bf16)
    # to the bottom block's fused kernel
    if cfg.n_layer < 2 or run.attention != "flash" or not compiled_recomputed_dropout_attention_bytes(cfg, run):
        return 0
    return train_tokens(cfg, run) * 4 * cfg.n_head * cfg.block_size


def compiled_next_block_scores_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # ... and the graph recomputes the next block's attention scores before this block's backward, to fuse this
    # block's softmax backward with the next block's recomputed softmax (compiled_fused_dropout_softmax_bytes).
    # Alive through the top block's MLP backward, per token: the next block's fp32 scores (4HT), its ln_1 output
    # and qkv (4aC), its fp32 q and k (8C; with B > 1 v's copy too, 4C) and, when it is the first block, its
    # input recomputed from the embeddings (rC) (read: 2L/64/2h T=256 B=3 and 3L/96/8h T=256 B=1, fp32). Pure
    # bf16 (2L/64/8h T=32 B=2) makes them after the block's MLP backward: the fused kernel's term counts them
    if not compiled_safe_softmax_zeros_bytes(cfg, run) or act_size(run) != 4:
        return 0
    return train_tokens(cfg, run) * (4 * cfg.n_head * cfg.block_size + _next_block_input_bytes(cfg, run))


def _next_block_input_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # per token, what the next block's scores are made from: its ln_1 output and qkv (4aC), fp32 q and k (8C;
    # with B > 1 v's copy too) and, when it is the first block, its input recomputed from the embeddings (rC)
    C = cfg.n_embd
    copies = 8 * C + (4 * C if run.batch_size > 1 else 0)
    first = resid_size(run) * C if cfg.n_layer == 2 else 0
    return 4 * act_size(run) * C + copies + first


def compiled_pooled_block_above_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # ... from 3 blocks on, a middle block's MLP backward: the next block is not recomputed yet, but the block
    # above's three fp32 T x T buffers its fused softmax kernel left (the scores' gradient, the uniform draws and
    # the dropped weights' gradient, 3 * 4HT per token) wait in inductor's pool for the next block's (read:
    # 3L/96/8h T=256 B=1 fp32, the step's peak)
    if cfg.n_layer < 3 or not compiled_safe_softmax_zeros_bytes(cfg, run):
        return 0
    return train_tokens(cfg, run) * 12 * cfg.n_head * cfg.block_size
