"""The memory terms a step holds while it runs: activations saved for backward, the logits and the loss
(the no-grad eval forward is eval_forward.py's). Each is one small function with its formula and reason;
notation as in terms.py.
"""

from __future__ import annotations

from finegpt.config import ModelConfig
from finegpt.memory.calibration import compiled_coefficient, eager_logit_bytes
from finegpt.memory.state import (
    act_size,
    autocast_copy_bytes,
    cpu_flash_fallback,
    mask_size,
    param_size,
    resid_size,
    softmax_size,
    train_tokens,
)
from finegpt.run import RunConfig

# ---- activations saved for backward, per layer per token ------------------------------------


def residual_act_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # the residual stream saved as ln_1 and ln_2 inputs: 2 * C * (4 fp32 / autocast, 2 pure bf16);
    # compiled, ln_2 keeps its normalized input instead, of the same size
    return 2 * cfg.n_embd * resid_size(run)


def norm_act_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # per LayerNorm (2 per block): its output as the next matmul saves it (a*C) + mean and rstd
    # (2 values); compiled, the fused norm keeps rstd only (one fp32)
    stats = 4 if run.compile else 2 * resid_size(run)
    return 2 * (cfg.n_embd * act_size(run) + stats)


def attention_act_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    C, H, T, a = cfg.n_embd, cfg.n_head, cfg.block_size, act_size(run)
    if run.attention == "flash":
        # q, k, v (3aC) + output (aC) + fp32 logsumexp per head (4H); no T x T matrix. On CPU, SDPA with
        # dropout falls back to its math kernel in fp32: the attention weights, the dropout mask and the
        # dropped weights (3 * 4 * H * T) and fp32 q, k, v (3C(4 - a) more); CUDA's flash kernel drops in place
        # (fp32 at B=1 or H=1: the bmm's (B*H, T, hs) operands are views, no copies, so v's view keeps c_attn's
        # whole output and the scaled q and k are saved as they are: 8C more than the copies B, H > 1 make)
        cpu_math = run.device == "cpu" and cfg.dropout > 0
        views = 8 * C if a == 4 and (run.batch_size == 1 or H == 1) else 0
        fallback = 12 * H * T + 3 * C * (4 - a) + views if cpu_math else 0
        if cpu_math and run.compile:  # inductor's decomposition, as its generated code saves it: the fp32 scores,
            # a bool mask, the row max, sum and any-mask (9H). Without autocast its fp32 q, k, v (12C), the
            # fp32 dropped weights (4HT) and the output (aC); under autocast 16-bit q, k, v and output (4aC).
            # fp32 at B=1 or H=1, as eager: c_attn's output and the scaled q and k (views: 8C more; 3L/96/4h
            # T=128 B=1 fp32, 2 fp32 n x C buffers a block more)
            if param_size(run) == a:
                return 12 * C + a * C + 9 * H + 9 * H * T + views
            return 4 * a * C + 9 * H + 5 * H * T
        return 4 * a * C + 4 * H + fallback
    # explicit softmax: contiguous q, k, v and y (4aC) + the softmax output (H*T per token)
    soft = softmax_size(run)
    if run.compile:  # inductor saves the scores' softmax (and, fp32, its row max and sum: 8H)
        # CPU, with dropout on the weights: its bool mask and the dropped weights, (1 + a) * H * T
        drop = (1 + a) * H * T if cfg.dropout > 0 and run.device == "cpu" else 0
        return 4 * a * C + soft * H * T + (8 * H if soft == 4 else 0) + drop
    recast = soft == 4 and a == 2  # CUDA autocast: att @ v saves a 16-bit copy of the fp32 weights
    total = 4 * a * C + soft * H * T + (2 * H * T if recast else 0)
    if cfg.dropout > 0:  # dropout on the T x T weights: its mask, and its output unless it is recast
        total += mask_size(run, soft) * H * T + (0 if recast else soft * H * T)
    return total


def flash_fallback_forward_bytes(cfg: ModelConfig, run: RunConfig, recompute: bool = False) -> int:
    # eager CPU flash attention with dropout runs the math fallback in fp32 (state.cpu_flash_fallback): the
    # training forward as the last block's fallback returns, beyond what attention_act_bytes saves. Once, not per
    # head or batch: the causal mask as an fp32 additive mask (4T^2). 16-bit inputs: c_attn's output still held
    # as q, k, v (3aC per token), the unscaled fp32 q and k (8C) and the fp32 output of att @ v (4C), cast to
    # 16 bits as the fallback returns, beside its 16-bit copy of the dropped weights (B*H*T^2*a). Where the
    # bmm's operands are no views (B, H > 1) it copies them: the fp32 v and the scaled q stay bound beside
    # their copies (8C). Autocast: ln_1's fp32 output too (rC), attn's argument until it returns (c_attn saved
    # its 16-bit cast). fp32: no casts; B, H > 1, c_attn's output and the scaled q (16C), else saved already
    if not cpu_flash_fallback(cfg, run):
        return 0
    C, H, T, a, r, n = cfg.n_embd, cfg.n_head, cfg.block_size, act_size(run), resid_size(run), train_tokens(cfg, run)
    views = run.batch_size == 1 or H == 1
    if a == 4:
        held = 0 if views else n * 16 * C
    else:
        ln_1 = r * C if a < r else 0
        held = n * (3 * a * C + 12 * C + (0 if views else 8 * C) + ln_1) + run.batch_size * H * T * T * a
    # not made yet in the last block: ln_2's input (rC) and output + stats, the MLP and both dropout masks;
    # nor (autocast) the 16-bit copies of its c_proj and MLP weights and of lm_head (wte)
    b = int(cfg.bias)
    later = n * (r * C + norm_act_bytes(cfg, run) // 2 + mlp_act_bytes(cfg, run) + dropout_act_bytes(cfg, run))
    if not recompute:  # a recomputed block's stage counts only its attention's copies (phases.py)
        later += 2 * (9 * C * C + 6 * C * b + cfg.vocab_size * C) if autocast_copy_bytes(cfg, run) else 0
    incoming = n * r * C if recompute else 0  # recomputed in backward: the gradient arriving at the block
    return max(0, 4 * T * T + held + incoming - later)


def mlp_act_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # c_fc output (4C) and GELU output (4C), 16-bit under autocast
    return 8 * cfg.n_embd * act_size(run)


def dropout_act_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # resid_dropout and the MLP's dropout each keep a mask of C elements. Compiled (not checkpointed: recompute.py
    # counts its own), inductor's decomposition saves the mask as the bool of its comparison (gt), 1 byte, on CPU
    # too (4L/64/1h T=256 B=2 fp32: 2 bool masks of n*C a block)
    if cfg.dropout == 0:
        return 0
    if run.compile and not run.activation_checkpointing:
        return 2 * cfg.n_embd
    return 2 * cfg.n_embd * mask_size(run, act_size(run))


def layer_act_bytes(cfg: ModelConfig, run: RunConfig) -> dict[str, int]:
    """Per layer per token, by component."""
    return {
        "residual": residual_act_bytes(cfg, run),
        "norms": norm_act_bytes(cfg, run),
        "attention": attention_act_bytes(cfg, run),
        "mlp": mlp_act_bytes(cfg, run),
        "dropout": dropout_act_bytes(cfg, run),
    }


def checkpoint_act_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # with activation checkpointing a block keeps only its input (the residual, C elements)
    return cfg.n_embd * resid_size(run)


CPU_RNG_STATE_BYTES = 5056  # torch.get_rng_state(): the CPU generator's state, a uint8 tensor


def per_layer_fixed_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # per layer, independent of batch: math attention's inverted causal mask (T*T bool) saved by masked_fill;
    # checkpointing on CPU, the RNG state each checkpointed block saves in forward to replay its dropout in the
    # recompute (CPU_RNG_STATE_BYTES, freed as its backward runs; on CUDA the saved state is host memory)
    eager_math = run.attention == "math" and not run.activation_checkpointing and not run.compile
    saved_rng = run.activation_checkpointing and run.device == "cpu" and not run.compile
    return (cfg.block_size**2 if eager_math else 0) + (CPU_RNG_STATE_BYTES if saved_rng else 0)


def head_act_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # per token: ln_f input + its mean/rstd, ln_f output as lm_head saves it, embedding dropout mask.
    # Compiled: ln_f's normalized input + rstd, the loss's row max and log-sum-exp (fp32 each), and
    # the first block's ln_1 mean (its input is recomputed from the embeddings, so mean and rstd are kept)
    C, r = cfg.n_embd, resid_size(run)
    if run.compile and run.loss_chunks:  # the graph ends at ln_f: its output goes to the eager chunked loss
        return C * r + C * r + 4 + 4
    if run.compile:
        return C * r + C * act_size(run) + 4 + 8 + 4
    drop = C * mask_size(run, r) if cfg.dropout > 0 else 0
    saved = r if run.loss_chunks else act_size(run)  # the chunked loss's checkpoints keep ln_f's output as it is
    return C * r + 2 * r + C * saved + drop


# ---- activations, whole micro-batch ---------------------------------------------------------


def activation_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # L * (n * per layer per token + per-layer fixed); checkpointing keeps each block's input only
    per_token = (
        checkpoint_act_bytes(cfg, run) if run.activation_checkpointing else sum(layer_act_bytes(cfg, run).values())
    )
    return cfg.n_layer * (train_tokens(cfg, run) * per_token + per_layer_fixed_bytes(cfg, run))


def recomputed_block_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # checkpointing: one block's activations rebuilt for its backward, n * (one layer per token)
    return train_tokens(cfg, run) * sum(layer_act_bytes(cfg, run).values()) if run.activation_checkpointing else 0


def lm_head_grad_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # checkpointing: the tied lm_head's gradient (V*C) is allocated before the blocks' backward starts
    return cfg.vocab_size * cfg.n_embd * param_size(run)


def head_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    return train_tokens(cfg, run) * head_act_bytes(cfg, run)  # n * head per token


def batch_bytes(cfg: ModelConfig, tokens: int) -> int:
    # x and y int64 (8 bytes each per token), + the int64 positions
    return 16 * tokens + 8 * cfg.block_size


def prefetched_batch_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # the loop's next micro-batch (x, y int64: 16n), copied to the device after this one's forward
    # (finegpt.step.forward_backward): alive through backward, the optimizer step and eval
    return 16 * train_tokens(cfg, run)


def bound_batch_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # this micro-step's X, Y (16n, int64 each) stay bound after its backward, until the next micro-step
    # rebinds them or forward_backward returns
    return 16 * train_tokens(cfg, run)


# ---- the logits: per token V wide, the largest term of a small GPT ---------------------------


def logits_train_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # at backward start: eager logits + log_softmax output + its grad + the logits grad:
    # fp32 4+4+4+4 = 16V; autocast 2 (bf16 logits) + 4+4+4 (cross-entropy runs in fp32) = 14V; pure bf16 8V.
    # Compiled: the fused loss keeps no fp32 copy: logits + autograd's zero gradient for the returned
    # logits + the loss's gradient, each a*V (3aV)
    # An eager CUDA run uses the bytes per logit a GPU measured, where one has (calibration.json eager_cuda).
    n, V = train_tokens(cfg, run), cfg.vocab_size
    if run.loss_chunks:
        return 0  # the chunked loss keeps no logits for backward: moments.py has its chunk's moment
    if run.compile:
        return int(n * V * act_size(run) * compiled_coefficient("logits_train_copies", run.device))
    measured = eager_logit_bytes("logits_train_bytes", run.label, run.device)
    if measured is not None:
        return int(n * V * measured)
    return n * V * {"fp32": 16, "bf16": 14, "fp16": 14, "pure_bf16": 8}[run.label]


def logits_forward_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # at the end of forward: logits + log_softmax output (fp32 under autocast); compiled, the logits only
    n, V = train_tokens(cfg, run), cfg.vocab_size
    if run.loss_chunks:
        n = loss_chunk_tokens(n, run)  # one chunk at a time, freed before the next; eager even when compiled
    if run.compile and not run.loss_chunks:
        return n * V * act_size(run)
    return n * V * {"fp32": 8, "bf16": 6, "fp16": 6, "pure_bf16": 4}[run.label]


def bound_logits_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # a micro-step's logits, still bound after its backward (`logits, loss = model(X, Y)`) and through the
    # next micro-step's forward, until forward_backward returns: n * V * a, eager or compiled (chunked: none)
    if run.loss_chunks:
        return 0
    return train_tokens(cfg, run) * cfg.vocab_size * act_size(run)


def loss_chunk_tokens(tokens: int, run: RunConfig) -> int:
    # n_c = ceil(n / loss_chunks): the tokens of one chunk of the chunked loss (all n when it is off)
    return -(-tokens // run.loss_chunks) if run.loss_chunks else tokens
