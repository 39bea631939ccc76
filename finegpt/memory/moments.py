"""The memory terms of moments inside backward, where transients sit beside what is already there: one chunk
of the chunked loss recomputed, the tied embedding's gradient at the end, math attention's softmax backward,
and activation checkpointing's recompute. Each is one small function with its formula and reason (bytes per
rank); report.py places them in the moments they belong to. Notation as in terms.py.
"""

from __future__ import annotations

from finegpt.config import ModelConfig, param_breakdown
from finegpt.memory.activations import (
    activation_bytes,
    compiled_eval_softmax_token_bytes,
    head_bytes,
    layer_act_bytes,
    loss_chunk_tokens,
    mlp_act_bytes,
    norm_act_bytes,
)
from finegpt.memory.state import (
    act_size,
    cpu_bf16_pack_bytes,
    cpu_flash_workspace_bytes,
    mask_size,
    param_size,
    resid_size,
    softmax_size,
    train_tokens,
)
from finegpt.run import RunConfig

# ---- the chunked loss (model.GPT.chunked_loss) --------------------------------------------------


def chunk_ce_size(run: RunConfig) -> int:
    return 2 if run.label == "pure_bf16" else 4  # cross-entropy's working dtype: fp32 (autocast casts up)


def loss_chunk_backward_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # one chunk's backward, its logits recomputed, at the larger of two moments, beside the LM head's gradient
    # summed over the chunks so far (V*C*a: autograd sums it in the dtype the matmul saw) and the gradient of
    # ln_f's output gathered chunk by chunk (n*C*r). At log_softmax's backward: its output, the loss's
    # gradient and log_softmax's own, 3 * n_c * V * 4 (2 pure bf16). At the LM head's backward: the logits'
    # gradient (n_c*V*a), this chunk's weight gradient (V*C*a) and the CPU matmul's scratch for it (measured
    # from half to all of V*C*a, depending on C: counted whole)
    if not run.loss_chunks:
        return 0
    n, V, C, a = train_tokens(cfg, run), cfg.vocab_size, cfg.n_embd, act_size(run)
    n_c = loss_chunk_tokens(n, run)
    summed = V * C * a if run.loss_chunks > 1 else 0
    moment = max(3 * n_c * V * chunk_ce_size(run), n_c * V * a + 2 * V * C * a)
    return moment + summed + n * C * resid_size(run)


# ---- the end of backward: the tied embedding's gradient ------------------------------------------


def embedding_grad_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # embedding_dense_backward makes a dense V x C gradient (the weight's dtype) for the token embedding,
    # while the tied LM head's gradient of the same weight waits in autograd's buffer to be summed with it;
    # + the gradient of the embeddings' output (n*C*r) it reads. Without an autocast copy between them the
    # LM head's gradient is a transposed view autograd cannot add into, so the sum is a third V x C tensor
    V, C, p = cfg.vocab_size, cfg.n_embd, param_size(run)
    out_of_place = V * C * p if run.label in ("fp32", "pure_bf16") and not run.compile else 0  # compiled: in-graph
    # compiled, inductor's decomposition accumulates the dense gradient in fp32 (V*C*4) even for bf16 weights
    dense = V * C * (4 if run.compile else p)
    return dense + out_of_place + train_tokens(cfg, run) * C * resid_size(run)


def compiled_head_grad_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # compiled, the backward graph sums the tied weight's two gradients itself: the LM head's, as its matmul
    # made it (V*C*a), is alive beside the embedding's dense one until the sum; the chunked loss runs eager
    if not run.compile or run.loss_chunks or compiled_ckpt_logits_grad_bytes(cfg, run):
        return 0  # with checkpointing, the graph makes it by an addmm into the sum, from the logits' gradient
    return cfg.vocab_size * cfg.n_embd * act_size(run)


def compiled_ckpt_logits_grad_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # compiled with checkpointing, one backward graph recomputes the blocks and runs their backward; it makes
    # the logits' gradient first (n*V*a) and keeps it to its last op, where the LM head's weight gradient is
    # fused into the tied sum (an addmm into the embedding's dense gradient): alive through every recomputed
    # block, in place of the LM head gradient the eager backward makes before the blocks
    if not (run.compile and run.activation_checkpointing) or run.loss_chunks:
        return 0
    return train_tokens(cfg, run) * cfg.vocab_size * act_size(run)


def compiled_recomputed_softmax_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # compiled with checkpointing, math attention: the backward graph recomputes a block's attention as the
    # eval graph runs it, n * (the scores, the fp32 exp and the softmax, (2a + 4) * H * T, + their row max and
    # sum, 8H), beside ln_1's output, qkv (3aC) and the q, k, v copies (7aC in all, the generated code's count)
    if not (run.compile and run.activation_checkpointing and run.device == "cpu"):
        return 0
    softmax = compiled_eval_softmax_token_bytes(cfg, run)
    return train_tokens(cfg, run) * (softmax + 7 * cfg.n_embd * act_size(run)) if softmax else 0


def compiled_recomputed_exp_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # ... and after it: the fp32 exp's buffer (n*4*H*T) is not freed but kept for a later buffer of its size
    # (inductor's reuse pool), through the recomputed block's MLP and its backward. Counted for one block,
    # where that moment is the peak; with more, the worst block's moment (recompute_moments) is another one
    if not compiled_recomputed_softmax_bytes(cfg, run) or cfg.n_layer > 1:
        return 0
    return train_tokens(cfg, run) * 4 * cfg.n_head * cfg.block_size


def compiled_forward_softmax_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # compiled math attention on CPU, the training forward at the last block's softmax kernel: its scores and
    # the fp32 exp it stores before it divides ((a + 4) * H * T per token; fp32: the scores only, 4HT, as
    # the softmax kept for backward is its own buffer) beside every activation saved so far, less the last
    # block's, which come after it (last_block_freed_bytes: its MLP, ln_2, ...); 0 where that is not more
    if not (run.compile and run.device == "cpu" and run.attention == "math") or run.activation_checkpointing:
        return 0
    a, HT = act_size(run), cfg.n_head * cfg.block_size
    transient = train_tokens(cfg, run) * HT * (4 if a == 4 else a + 4)
    return max(0, transient - last_block_freed_bytes(cfg, run))


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
    # output is still saved): 2 * n * H * T * s, s the softmax's element size (fp32 on CUDA autocast)
    if run.attention != "math" or run.compile:
        return 0
    return 2 * train_tokens(cfg, run) * cfg.n_head * cfg.block_size * softmax_size(run)


def recomputed_softmax_backward_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # checkpointing, math attention: in a recomputed block's attention backward the two T x T transients sit
    # where its MLP's recomputed activations were (freed by then)
    return max(0, softmax_backward_bytes(cfg, run) - last_block_freed_bytes(cfg, run))


def last_block_freed_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # freed before the last block's attention backward: its MLP's activations, ln_2's output and stats and
    # input, the attention output c_proj saved (a*C) and the dropout masks after c_proj and the MLP, per token
    C = cfg.n_embd
    drop = 2 * C * mask_size(run, act_size(run)) if cfg.dropout > 0 else 0
    per_token = mlp_act_bytes(cfg, run) + norm_act_bytes(cfg, run) // 2 + C * resid_size(run) + C * act_size(run)
    return train_tokens(cfg, run) * (per_token + drop)


def attention_backward_act_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # what is still saved when the last block's attention backward runs: every layer's activations and the
    # final norm + embeddings' (activation_bytes + head_bytes), less what the last block has freed
    if not (softmax_backward_bytes(cfg, run) or cpu_flash_workspace_bytes(cfg, run)):
        return 0
    saved = activation_bytes(cfg, run) + head_bytes(cfg, run)
    return saved - last_block_freed_bytes(cfg, run)


def last_block_early_grad_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # grads made before the last block's attention backward, on the 1st micro-step: the MLP's and c_proj's
    # weights and biases and ln_2 (9C^2 + 6C biases + 2C), beside the LM head's (V*C) and ln_f's (2C)
    if run.gradient_accumulation_steps > 1:
        return waiting_head_grad_bytes(cfg, run)
    C, b = cfg.n_embd, int(cfg.bias)
    return (9 * C * C + 6 * C * b + 2 * C * (1 + b) + cfg.vocab_size * C) * param_size(run)


# ---- the last block's MLP backward: the first thing backward does after the loss --------------------


def mlp_backward_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # c_proj's backward in the last block, every activation still saved: the gradient of the GELU output
    # (4aC per token) and of the residual stream (rC), and c_proj's weight gradient (4C^2 p); where the
    # logits are small or chunked, this is the step's peak
    n, C = train_tokens(cfg, run), cfg.n_embd
    pack = cpu_bf16_pack_bytes(cfg, run, n)
    return n * (4 * act_size(run) * C + resid_size(run) * C) + 4 * C * C * param_size(run) + pack


# ---- activation checkpointing: a block recomputed for its backward ---------------------------------


def recompute_transient_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # inside the recomputed block's MLP backward: as in any block's (mlp_backward_bytes), the gradient of the
    # GELU output and of the residual stream, and c_proj's weight gradient
    return mlp_backward_bytes(cfg, run)


def embedding_dropout_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # the embeddings' dropout mask (n*C), the one part of the final norm + embeddings term still alive once
    # ln_f's backward has run
    return train_tokens(cfg, run) * cfg.n_embd * mask_size(run, resid_size(run)) if cfg.dropout > 0 else 0


def recompute_moments(cfg: ModelConfig, run: RunConfig) -> tuple[int, int]:
    # (top, bottom) block recomputed. The top block is recomputed first, with every checkpoint held and no
    # block's grads; the bottom block last, with its one checkpoint, the other L-1 blocks' grads, and the
    # gradient arriving from the block above still held beside the two branch gradients and their sum (4rC).
    # A recomputed block's saved input is its checkpoint itself, so it adds one layer less that residual
    n, C, L = train_tokens(cfg, run), cfg.n_embd, cfg.n_layer
    checkpoint = n * C * resid_size(run)
    grads = block_grad_bytes(cfg, run) if run.gradient_accumulation_steps == 1 else 0
    block = n * sum(layer_act_bytes(cfg, run).values()) - checkpoint
    below_top = 4 * checkpoint if L > 1 else 0
    return L * checkpoint + block, checkpoint + (L - 1) * grads + block + below_top
