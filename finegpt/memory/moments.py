"""The memory terms of moments inside backward, where transients sit beside what is already there: the tied
embedding's gradient at the end, math attention's softmax backward, the MLP's backward and activation
checkpointing's recompute (a chunk of the chunked loss recomputed: loss_chunk.py). Each is one small function
with its formula and reason (bytes per rank); report.py places them in the moments they belong to. Notation as
in terms.py.
"""

from __future__ import annotations

from finegpt.config import ModelConfig, count_params, param_breakdown
from finegpt.memory.activations import (
    activation_bytes,
    head_bytes,
    layer_act_bytes,
    mlp_act_bytes,
    norm_act_bytes,
    per_layer_fixed_bytes,
)
from finegpt.memory.compiled_backward import (
    compiled_last_kernel_bytes,
    compiled_logits_grad_bytes,
)
from finegpt.memory.state import (
    act_size,
    autocast_copy_bytes,
    compiled_wgrad_scratch_bytes,
    cpu_bf16_c_attn_backward_scratch_bytes,
    cpu_bf16_wgrad_scratch_bytes,
    cpu_flash_fallback,
    cpu_flash_workspace_bytes,
    mask_size,
    measured_mm_scratch_bytes,
    param_size,
    resid_size,
    softmax_size,
    train_tokens,
)
from finegpt.run import RunConfig

# ---- the end of backward: the tied embedding's gradient ------------------------------------------


def embedding_grad_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # embedding_dense_backward makes a dense V x C gradient (the weight's dtype) for the token embedding,
    # while the tied LM head's gradient of the same weight waits in autograd's buffer to be summed with it;
    # + the gradient of the embeddings' output (n*C*r) it reads. Without an autocast copy between them the
    # LM head's gradient is a transposed view autograd cannot add into, so the sum is a third V x C tensor (the
    # chunked loss's, summed over 2+ chunks, is a tensor of autograd's own: added into in place)
    V, C, p = cfg.vocab_size, cfg.n_embd, param_size(run)
    # compiled, the graph sums them itself, unless the chunked loss (eager) made the LM head's: 1 chunk, a view
    view = run.label in ("fp32", "pure_bf16") and run.loss_chunks < 2 and (not run.compile or run.loss_chunks == 1)
    out_of_place = V * C * p if view else 0
    if not run.compile:
        return V * C * p + out_of_place + train_tokens(cfg, run) * C * resid_size(run)
    # compiled, inductor's decomposition accumulates the dense gradient in fp32 (V*C*4) even for bf16 weights,
    # and its kernel casts it into the graph's output (V*C*p more) while the fp32 one is alive. Without the
    # chunked loss that output is the tied sum, counted with the step's gradients; with it, the LM head's
    # gradient comes from the eager loss and waits outside the graph, so the cast output is one V x C more.
    # The out-of-place sum comes after the graph has returned: its output and the sum, beside the waiting one
    cast = V * C * p if run.loss_chunks and p < 4 else 0
    n, a = train_tokens(cfg, run), act_size(run)
    # the kernel is fused with the first block's ln_1 backward: its c_attn output and input gradients (4aC per
    # token) are alive in it, and wpe's dense gradient, also accumulated in fp32 (T*C*4: for fp32 weights that
    # is the gradient itself, counted with the step's) (checkpointing: its own), under autocast c_attn's 16-bit
    # weight gradient it casts, and the forward tensors it reads
    wpe = cfg.block_size * C * 4 if p < 4 else 0
    first = 0 if run.activation_checkpointing else n * 4 * a * C + wpe
    first += compiled_last_kernel_bytes(cfg, run)
    in_graph = V * C * 4 + cast + n * C * resid_size(run) + first
    if compiled_logits_grad_bytes(cfg, run) and p == 4:  # fp32: the kernel's dense sum is the final addmm's
        # input, whose output (the step's gradient) is made once the first block's gradients are freed; ln_f's
        # output (n*C*a) is saved for that addmm
        in_graph = max(V * C * 4 + n * C * a, n * C * resid_size(run) + first)
    return max(in_graph, 2 * out_of_place)


def first_block_input_grad_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # eager, one micro-step: the first block's c_attn backward, the last matmul of backward. Every gradient
    # but the embeddings' exists (the tied LM head's waits for the dense one, the same V*C*p; wpe's T*C*p is
    # not made yet) beside the gradient of q, k, v (3aC per token) and of ln_1's output (aC), ln_1's output and
    # the block's input still saved (aC + rC), and the residual stream's gradient (rC); the embeddings' dropout
    # mask waits for its backward. Checkpointing: the first block recomputed holds the same. From the 2nd
    # micro-step on, the gradients are the ones held (gradients (previous micro-step)), summed into in place
    # Under autocast the matmul's 16-bit weight gradient (3C^2 a) is cast to fp32 after it, once the q, k, v
    # and ln_1 output gradients are freed, its input's gradient cast to fp32 for ln_1 (rC): the later moment
    # where C is large against the tokens. From the 2nd micro-step the cast (3C^2 p) is beside it too, until it
    # is added into .grad
    if run.compile:
        return 0
    C, a, r, p, n = cfg.n_embd, act_size(run), resid_size(run), param_size(run), train_tokens(cfg, run)
    single = run.gradient_accumulation_steps == 1
    grads = (count_params(cfg, non_embedding=False) - cfg.block_size * C) * p if single else 0
    matmul = n * 5 * a * C + cpu_bf16_c_attn_backward_scratch_bytes(cfg, run)
    if a < p:
        matmul = max(matmul, 3 * C * C * (a if single else a + p))
    return grads + matmul + n * 2 * r * C + embedding_dropout_bytes(cfg, run)


def first_block_mlp_backward_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # eager, one micro-step, 2+ layers: the first block's MLP backward. The blocks above have made their
    # gradients ((L-1) blocks) and freed their activations and 16-bit weight copies; the first block's are
    # still saved (one layer's activations, its 12C^2 copies under autocast) beside the MLP's transients, as in
    # the last block's (mlp_backward_bytes). Where the gradients outweigh a layer's activations (few tokens),
    # this is later and larger than the last block's
    if run.compile or run.activation_checkpointing or run.gradient_accumulation_steps > 1 or cfg.n_layer < 2:
        return 0
    L, C = cfg.n_layer, cfg.n_embd
    copies = 2 * 12 * C * C if autocast_copy_bytes(cfg, run) else 0
    first = activation_bytes(cfg, run) // L
    return (L - 1) * block_grad_bytes(cfg, run) + first + copies + mlp_backward_bytes(cfg, run)


def compiled_head_grad_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # compiled, the backward graph sums the tied weight's two gradients itself: the LM head's, as its matmul
    # made it (V*C*a), is alive beside the embedding's dense one until the sum; the chunked loss runs eager.
    # With checkpointing under autocast the graph makes it first and holds it through every recomputed block
    if not run.compile or run.loss_chunks or compiled_ckpt_logits_grad_bytes(cfg, run):
        return 0  # with checkpointing, the graph makes it by an addmm into the sum, from the logits' gradient
    if compiled_logits_grad_bytes(cfg, run):
        return 0  # ... and so without autocast
    return cfg.vocab_size * cfg.n_embd * act_size(run)


def compiled_ckpt_logits_grad_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # compiled with checkpointing, one backward graph recomputes the blocks and runs their backward; it makes
    # the logits' gradient first (n*V*a) and keeps it to its last op, where the LM head's weight gradient is
    # fused into the tied sum (an addmm into the embedding's dense gradient): alive through every recomputed
    # block, in place of the LM head gradient the eager backward makes before the blocks. Under autocast the
    # matmul's 16-bit output cannot be an addmm into the fp32 sum: the graph makes the LM head's gradient at
    # once (compiled_head_grad_bytes keeps it) and frees the logits' gradient (recompute.py)
    if not (run.compile and run.activation_checkpointing) or run.loss_chunks or act_size(run) < param_size(run):
        return 0
    return train_tokens(cfg, run) * cfg.vocab_size * act_size(run)


def compiled_forward_softmax_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # compiled math attention on CPU, the training forward at the last block's softmax kernel: its scores and
    # the fp32 exp it stores before it divides ((a + 4) * H * T per token; fp32: the scores only, 4HT, as
    # the softmax kept for backward is its own buffer) beside every activation saved so far, less the last
    # block's, which come after it (last_block_freed_bytes: its MLP, ln_2, ...); 0 where that is not more
    if not (run.compile and run.device == "cpu" and run.attention == "math") or run.activation_checkpointing:
        return 0
    a, HT = act_size(run), cfg.n_head * cfg.block_size
    transient = train_tokens(cfg, run) * HT * (4 if a == 4 else a + 4)
    return max(0, transient + compiled_forward_softmax_beside_bytes(cfg, run) - last_block_freed_bytes(cfg, run))


def compiled_forward_softmax_beside_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # ... and beside that kernel, what no saved-activation term counts (CPU inductor's forward code, 3L/96/8h
    # T=128 B=3 bf16 dropout 0.1): c_attn's output (3aC per token), which the kernel reads to make v's copy
    # (B, H > 1: with one sequence or head q, k, v are views of it, saved already); its fp32 row max and sum
    # (8H); from the 2nd block the running residual stream (rC: the blocks save their norms' inputs, not it);
    # with dropout the embeddings' bool mask (C), saved from the first kernel on
    C, n = cfg.n_embd, train_tokens(cfg, run)
    qkv = 0 if run.batch_size == 1 or cfg.n_head == 1 else 3 * act_size(run) * C
    resid = resid_size(run) * C if cfg.n_layer > 1 else 0
    mask = C if cfg.dropout > 0 else 0
    return n * (qkv + 8 * cfg.n_head + resid + mask)


def waiting_head_grad_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # from the 2nd micro-step the grads exist and autograd adds into them, but the tied weight's LM-head
    # gradient (V*C*p) still waits for the embedding's; on the 1st it is this step's gradient, counted there
    return cfg.vocab_size * cfg.n_embd * param_size(run) if run.gradient_accumulation_steps > 1 else 0


# ---- math attention: the softmax's backward in the last block ------------------------------------


def block_grad_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # one block's gradients: (12C^2 + 13C biases + 4C norms) * p
    parts, ln_f = param_breakdown(cfg), cfg.n_embd * (1 + int(cfg.bias))
    return (parts["attention"] + parts["mlp"] + parts["layernorm"] - ln_f) // cfg.n_layer * param_size(run)


def softmax_backward_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # the gradient of the T x T attention weights and _softmax_backward_data's output beside it (the softmax
    # output is still saved): 2 * n * H * T * s, s the softmax's element size (fp32 on CUDA autocast). With
    # dropout, one: the gradient of the dropped weights, made
    # as the bmm's backward frees the dropped weights it saved; each later T x T gradient replaces the one before.
    # CPU flash attention with dropout falls back to the math kernel in fp32 (state.cpu_flash_fallback): s = 4
    if cpu_flash_fallback(cfg, run):
        return train_tokens(cfg, run) * cfg.n_head * cfg.block_size * 4
    if run.attention != "math" or run.compile:
        return 0
    copies = 1 if cfg.dropout > 0 else 2
    return copies * train_tokens(cfg, run) * cfg.n_head * cfg.block_size * softmax_size(run)


def math_attention_grad_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # eager math attention (or CPU flash's dropout fallback), beside its T x T transients: the gradient of v
    # (aC per token) and of the residual stream arriving from above (rC); with dropout the peak is at the bmm's
    # backward, where the gradient of the attention output (aC) is still alive too
    # (CPU 16-bit: that backward's two bmm operands, made contiguous, 2sC more)
    if not softmax_backward_bytes(cfg, run) or run.compile:
        return 0
    C, s = cfg.n_embd, 4 if cpu_flash_fallback(cfg, run) else act_size(run)
    if cfg.dropout > 0:
        s *= 2 if run.device == "cpu" and s == 2 else 1
    return train_tokens(cfg, run) * ((2 if cfg.dropout > 0 else 1) * s * C + resid_size(run) * C)


def recomputed_attention_backward_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # checkpointing: a recomputed block's attention backward, where its MLP's recomputed activations were
    # (last_block_freed_bytes, freed by then). Math: the two T x T transients and the gradients of the attention
    # output and the residual stream (aC + rC per token; the recomputed ~mask masked_fill saved is the block's,
    # recompute_moments); CPU flash: its workspace and gradients (flash_backward_grad_bytes). Beside them, on
    # the first micro-step, the block's MLP, c_proj and ln_2 gradients (9C^2 + 6C biases + 2C norm)
    C, b = cfg.n_embd, int(cfg.bias)
    if softmax_backward_bytes(cfg, run):
        moment = softmax_backward_bytes(cfg, run) + math_attention_grad_bytes(cfg, run)
    elif cpu_flash_workspace_bytes(cfg, run):
        moment = cpu_flash_workspace_bytes(cfg, run) + flash_backward_grad_bytes(cfg, run)
    elif run.compile and run.attention == "math":  # the backward graph's softmax backward
        moment = compiled_recomputed_softmax_backward_bytes(cfg, run)
    else:
        return 0
    first = run.gradient_accumulation_steps == 1 or run.compile  # compiled: the graph's outputs, every micro-step
    grads = (9 * C * C + 6 * C * b + 2 * C * (1 + b)) * param_size(run) if first else 0
    return max(0, moment + grads - last_block_freed_bytes(cfg, run))


def compiled_recomputed_softmax_backward_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # compiled math attention, a block recomputed in the backward graph, to the end of its attention's backward:
    # one T x T more than it saved, the gradient of the attention weights (a bmm's output, n*H*T*s; the softmax's
    # backward writes over it in place; with dropout it takes the dropped weights' buffer: none more), beside the
    # gradients of the attention output and of the residual stream (aC + rC; ln_2's output's is in c_proj's
    # output's buffer: recompute.compiled_recomputed_attention_output_bytes), and v's gradient (aC) next to the
    # q, k, v gradient it is gathered into (3aC) and the softmax backward's row sums (4H), per token. With B > 1
    # the first checkpoint is saved as its two embeddings, the positions' (T*C*r) apart
    if not (run.compile and run.activation_checkpointing and run.attention == "math"):
        return 0
    n, C, H, T, r = train_tokens(cfg, run), cfg.n_embd, cfg.n_head, cfg.block_size, resid_size(run)
    weights = H * T * softmax_size(run) if cfg.dropout == 0 else 0
    positions = T * C * r if run.batch_size > 1 else 0
    return n * (weights + 5 * act_size(run) * C + r * C + 4 * H) + positions


def recomputed_attention_copy_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # eager checkpointing under autocast, at the recomputed block's attention backward: its 16-bit weight copies
    # but the MLP's (c_fc and c_proj, 8C^2 + 5C biases), freed with the MLP's backward, and lm_head's (VC).
    # The chunked loss casts lm_head's weight inside each chunk's checkpoint and frees it there: no VC then
    # (3L/96/8h T=128 V=2048 B=3 bf16 math, chunks 8: +4.23 % with it)
    copies = autocast_copy_bytes(cfg, run, blocks=1)
    if not copies:
        return 0
    head = 2 * cfg.vocab_size * cfg.n_embd if run.loss_chunks else 0
    return max(0, copies - 2 * (8 * cfg.n_embd**2 + 5 * cfg.n_embd * int(cfg.bias)) - head)


def last_block_freed_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # freed before the last block's attention backward: its MLP's activations, ln_2's output and stats and
    # input, the attention output c_proj saved (a*C) and the dropout masks after c_proj and the MLP, per token
    # (the flash kernel saves its output itself, and c_proj reads it without a copy: not freed then)
    C = cfg.n_embd
    drop = 2 * C * mask_size(run, act_size(run)) if cfg.dropout > 0 else 0
    flash_out = run.attention == "flash" and not cpu_flash_fallback(cfg, run)
    y = 0 if flash_out else C * act_size(run)
    per_token = mlp_act_bytes(cfg, run) + norm_act_bytes(cfg, run) // 2 + C * resid_size(run) + y
    return train_tokens(cfg, run) * (per_token + drop)


def attention_backward_act_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # what is still saved when the last block's attention backward runs: every layer's activations and the
    # final norm + embeddings' (activation_bytes + head_bytes), less what the last block has freed
    if not (softmax_backward_bytes(cfg, run) or cpu_flash_workspace_bytes(cfg, run)):
        return 0
    # (eager, ln_f's backward has run by then: of the final norm + embeddings only the embeddings' dropout mask)
    head = head_bytes(cfg, run) if run.compile else embedding_dropout_bytes(cfg, run)
    return activation_bytes(cfg, run) + head - last_block_freed_bytes(cfg, run)


def last_block_early_grad_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # grads made before the last block's attention backward, on the 1st micro-step: the MLP's and c_proj's
    # weights and biases and ln_2 (9C^2 + 6C biases + 2C), beside the LM head's (V*C) and ln_f's (2C)
    if run.gradient_accumulation_steps > 1:
        return waiting_head_grad_bytes(cfg, run)
    C, b = cfg.n_embd, int(cfg.bias)
    return (9 * C * C + 6 * C * b + 2 * C * (1 + b) + cfg.vocab_size * C) * param_size(run)


# ---- eager backward: what autograd still holds of the forward's 16-bit weight copies ----------------


def kept_copy_bytes(cfg: ModelConfig, run: RunConfig, moment: str) -> int:
    # autocast's cache is dropped when the forward's autocast context exits; what stays is each matmul's 16-bit
    # weight copy saved for its backward (not the biases': addmm's backward does not read them), freed when that
    # backward has run. The last block's MLP backward: every block's 12C^2 (lm_head's VC is done); its attention
    # backward: less that block's c_proj and MLP (9C^2). Compiled: the graph's own (autocast_copy_bytes)
    if not autocast_copy_bytes(cfg, run) or run.compile:
        return autocast_copy_bytes(cfg, run)
    C, L = cfg.n_embd, cfg.n_layer
    done = 9 * C * C if moment == "attention" else 0
    return 2 * (L * 12 * C * C - done)


def flash_backward_grad_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # CPU flash attention's backward: the gradients of q, k and v it zero-fills before it starts (3aC per
    # token), beside the gradient of its output (aC) and of the residual stream arriving from above (rC).
    # Compiled, the backward graph calls the same kernel, and from 2 blocks keeps the last MLP's hidden gradient
    # (4aC) as the buffer for the next block's (6L/16/1h T=1024 B=4 pure bf16); checkpointed: recompute.py
    if not cpu_flash_workspace_bytes(cfg, run) or (run.compile and run.activation_checkpointing):
        return 0
    C, a = cfg.n_embd, act_size(run)
    pooled = 4 * a * C if run.compile and cfg.n_layer > 1 else 0
    return train_tokens(cfg, run) * (4 * a * C + resid_size(run) * C + pooled)


# ---- the last block's MLP backward: the first thing backward does after the loss --------------------


def mlp_backward_bytes(cfg: ModelConfig, run: RunConfig, recomputed: bool = False) -> int:
    # the last block's MLP backward, every activation still saved, at the larger of two matmuls' backward.
    # c_proj's: the gradient of the GELU output (4aC per token) and of the residual stream (rC; autocast casts
    # it to 16-bit for the matmul, aC more) and c_proj's weight gradient (4C^2 p). c_fc's: c_fc's and GELU's
    # outputs are freed (8aC), GELU's input gradient (4aC), c_fc's input gradient (aC) and the residual's (rC)
    # beside both weight gradients; it is the larger where C is large against the tokens. Where the logits are
    # small or chunked, this is the step's peak
    n, C, a, r, p = train_tokens(cfg, run), cfg.n_embd, act_size(run), resid_size(run), param_size(run)
    cast = a * C if a < r else 0
    scratch_proj = _mm_scratch(cfg, run, n * 4 * a * C, C, 4 * C, recomputed)  # c_proj's weight: C x 4C
    scratch_fc = _mm_scratch(cfg, run, n * a * C, 4 * C, C, recomputed)  # c_fc's weight: 4C x C
    done = 4 * C * C * p if run.gradient_accumulation_steps == 1 else 0  # later micro-steps add it into .grad
    c_fc = n * (a * C + r * C - 4 * a * C) + done + 4 * C * C * a + scratch_fc
    if a == p or run.compile:
        # compiled under autocast, not checkpointed: c_proj's weight gradient leaves the backward graph's mm in
        # 16 bits (4C^2 a), cast to fp32 by a later kernel, as c_attn's (compiled_c_attn_grad_copy_bytes): the
        # mm's output buffer beside its scratch is 1,179,648 B at C = 384 (1L/384/8h T=64 B=8 bf16 chunks 8).
        # Recomputed under autocast (compiled), it is the mm's 16-bit output beside its scratch, cast to fp32 by
        # the next kernel once the scratch is freed: the larger of those two moments (2L/128/2h T=32 B=8 bf16)
        wgrad = 4 * C * C * (a if run.compile and not run.activation_checkpointing else p) + scratch_proj
        if recomputed and a < p:
            wgrad = max(4 * C * C * a + scratch_proj, 4 * C * C * (a + p))
        c_proj = n * (4 * a * C + r * C + cast) + wgrad
        return max(c_proj, c_fc)
    # eager autocast: a weight gradient leaves its matmul in 16 bits (4C^2 a, beside the matmul's scratch) and
    # is cast to fp32 (4C^2 p) once the matmul's backward has freed its saved input, its output gradient and
    # the weight's 16-bit copy (kept_copy_bytes counts it until then): two moments a matmul. c_proj's cast
    # keeps the residual's gradient; c_fc's comes after its input gradient's cast to fp32 for ln_2 (rC, the
    # 16-bit one freed), with both copies of the MLP freed (8C^2 a)
    c_proj = n * (4 * a * C + r * C + cast) + 4 * C * C * a + scratch_proj
    c_proj_cast = n * r * C + 4 * C * C * p
    c_fc -= 4 * C * C * a  # c_proj's 16-bit weight copy, freed by c_proj's backward
    c_fc_cast = n * (2 * r * C - 9 * a * C) + done + 4 * C * C * (p - a)
    return max(c_proj, c_proj_cast, c_fc, c_fc_cast)


def _mm_scratch(cfg: ModelConfig, run: RunConfig, grad_in: int, rows: int, cols: int, recomputed: bool) -> int:
    # CPU 16-bit matmuls keep scratch while they run: the input's gradient packs the 16-bit weight (4C^2 * 2 +
    # 5 KiB), the weight's gradient (rows x cols: its output x input features) reorders and packs
    # (cpu_bf16_wgrad_scratch_bytes).
    # AddmmBackward0 (bias) makes the input's gradient (grad_in) first, MmBackward0 (no bias) the weight's
    # (4C^2 a): whichever comes second has the first beside its scratch, the first only its own.
    # `recomputed` (compiled, checkpointing): the backward graph's own aten::mm, its scratch on top of the
    # moment (measured: 40,064 B, c_proj's C x 4C over 48 tokens at 2 threads, the step's peak at 6L/16/2h
    # T=16 B=3 bf16), without eager's weight packing or matmul order. So too compiled without checkpointing
    # (75,520 B, c_proj's 64 x 256 over 128 tokens at 2 threads: 2L/64/4h T=64 B=2 pure bf16)
    if recomputed or run.compile:
        return compiled_wgrad_scratch_bytes(cfg, run, rows, cols)
    scratch_w = cpu_bf16_wgrad_scratch_bytes(cfg, run, train_tokens(cfg, run), rows, cols)
    if not scratch_w:
        return 0
    # the input's gradient, grad (n x rows) @ W (rows x cols): measured on this CPU where it is
    n, rule = train_tokens(cfg, run), 8 * cfg.n_embd**2 + 5120
    pack_in = measured_mm_scratch_bytes("grad_input", n, rows, cols, run.cpu_threads, rule)
    if cfg.bias:
        return max(pack_in - 4 * cfg.n_embd**2 * act_size(run), scratch_w)
    return max(scratch_w - grad_in, pack_in)


# ---- activation checkpointing: a block recomputed for its backward ---------------------------------


def recompute_transient_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # inside the recomputed block's MLP backward: as in any block's (mlp_backward_bytes), the gradient of the
    # GELU output and of the residual stream, and c_proj's weight gradient
    return mlp_backward_bytes(cfg, run, recomputed=run.compile)


def embedding_dropout_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # the embeddings' dropout mask (n*C), the one part of the final norm + embeddings term still alive once
    # ln_f's backward has run; compiled, the forward graph saves it as a bool mask (1 byte an element)
    size = 1 if run.compile else mask_size(run, resid_size(run))
    return train_tokens(cfg, run) * cfg.n_embd * size if cfg.dropout > 0 else 0


def recompute_moments(cfg: ModelConfig, run: RunConfig) -> tuple[int, int]:
    # (top, bottom) block recomputed. The top block is recomputed first, with every checkpoint held and no
    # block's grads; the bottom block last, with its one checkpoint, the other L-1 blocks' grads, and the
    # gradient arriving from the block above still held beside the two branch gradients and their sum (4rC).
    # A recomputed block's saved input is its checkpoint itself, so it adds one layer less that residual.
    # Each checkpoint keeps its block's fixed part beside it (per_layer_fixed_bytes: CPU's saved RNG state).
    # Eager math attention: the recomputed block's masked_fill saves its inverted causal mask (T*T bool)
    n, C, L = train_tokens(cfg, run), cfg.n_embd, cfg.n_layer
    checkpoint = n * C * resid_size(run) + per_layer_fixed_bytes(cfg, run)
    grads = block_grad_bytes(cfg, run) if run.gradient_accumulation_steps == 1 else 0
    mask = cfg.block_size**2 if run.attention == "math" and not run.compile else 0
    block = n * sum(layer_act_bytes(cfg, run).values()) - n * C * resid_size(run) + mask
    return L * checkpoint + block, checkpoint + (L - 1) * grads + block
