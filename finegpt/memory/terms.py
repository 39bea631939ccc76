"""One small function per memory term, in bytes, each with its formula and reason.

Notation: N parameters, n = B*T tokens per micro-batch, C n_embd, H n_head, L n_layer, V vocab,
T block_size. `estimate()` in report.py sums these; no constant hides inside a total.
Facts are for eager PyTorch with nanoGPT's loop (logits stay bound through backward).
"""

from __future__ import annotations

from finegpt.config import ModelConfig
from finegpt.memory.run import RunConfig
from finegpt.model import count_params, param_breakdown

# ---- element sizes --------------------------------------------------------------------------


def param_size(run: RunConfig) -> int:
    return 2 if run.dtype == "pure_bf16" else 4  # autocast keeps fp32 master weights


def act_size(run: RunConfig) -> int:
    return 4 if run.dtype == "fp32" else 2  # matmul outputs: 16-bit under autocast or pure bf16


def resid_size(run: RunConfig) -> int:
    return param_size(run)  # residual stream: fp32 + bf16 promotes to fp32 under autocast


def mask_size(run: RunConfig, elem: int) -> int:
    return elem if run.device == "cpu" else 1  # dropout masks: bool on CUDA, input dtype on CPU


# ---- persistent state -----------------------------------------------------------------------


def weight_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # N * 4 (fp32 master weights; tied lm_head counted once), N * 2 for pure bf16
    return count_params(cfg, non_embedding=False) * param_size(run)


def buffer_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # math attention registers a bool causal mask T*T per layer
    return cfg.n_layer * cfg.block_size**2 if run.attention == "math" else 0


def grad_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # one gradient per parameter, in the parameter's dtype
    return count_params(cfg, non_embedding=False) * param_size(run)


def optimizer_state_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # AdamW: exp_avg + exp_avg_sq = 2 * param bytes; SGD momentum buffer 1x; plain SGD none
    per = {"adamw_fused": 2, "adamw_foreach": 2, "sgd_momentum": 1, "sgd": 0}[run.optimizer]
    return per * count_params(cfg, non_embedding=False) * param_size(run)


def decayed_params(cfg: ModelConfig) -> int:
    # nanoGPT's first param group: the 2-D tensors (matmuls, embeddings); biases and norms are the second
    parts, b = param_breakdown(cfg), int(cfg.bias)
    return sum(parts.values()) - parts["layernorm"] - cfg.n_layer * 9 * cfg.n_embd * b


def optimizer_temp_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # foreach AdamW builds a temporary per tensor (the denominator sqrt(v)) for one param group at a
    # time: the decayed group's size, about 4N; the fused kernel updates in place
    return decayed_params(cfg) * param_size(run) if run.optimizer == "adamw_foreach" else 0


def autocast_copy_bytes(cfg: ModelConfig, run: RunConfig, blocks: int | None = None) -> int:
    # autocast caches a 16-bit copy of every matmul weight (and bias): 2 * (12LC^2 + VC + biases);
    # `blocks` counts how many blocks' copies are alive (checkpointing frees them; lm_head's stays)
    if run.dtype not in ("bf16", "fp16") or fsdp_param_size(run) == 2:
        return 0  # fp32, or FSDP2 already gathers 16-bit weights: nothing for autocast to cast
    parts = param_breakdown(cfg)
    blocks = cfg.n_layer if blocks is None else blocks
    per_block = (parts["attention"] + parts["mlp"]) // cfg.n_layer
    return 2 * (blocks * per_block + parts["token_embedding"])  # lm_head is the tied wte


def ddp_bucket_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # DDP's flat all-reduce buckets hold a copy of every grad (4N), allocated for the whole run: zero_grad
    # cannot free them. With gradient_as_bucket_view=True the grads are views into them instead (see grads_in_buckets)
    if run.world_size == 1 or run.sharding != "ddp":
        return 0
    return grad_bytes(cfg, run)


def grads_in_buckets(run: RunConfig) -> bool:
    return run.world_size > 1 and run.sharding == "ddp" and run.gradient_as_bucket_view


def fsdp_param_size(run: RunConfig) -> int:
    # FSDP2's MixedPrecisionPolicy (finegpt.step.mixed_precision) gathers 16-bit weights on GPU; CPU stays fp32
    sharded = run.world_size > 1 and run.sharding == "fsdp"
    return 2 if sharded and run.device == "cuda" and run.dtype != "fp32" else param_size(run)


def fsdp_gathered_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # FSDP2 gathers weights whole while they work. At the start of backward (and in eval) that is the
    # root's (embeddings / tied lm_head, ln_f: the root is not resharded after forward) and one block's
    # (the last, prefetched for its backward): (V*C + T*C + ln_f + one block) * gathered element size
    if run.world_size == 1 or run.sharding != "fsdp":
        return 0
    parts, ln_f = param_breakdown(cfg), cfg.n_embd * (1 + int(cfg.bias))
    block = (parts["attention"] + parts["mlp"] + parts["layernorm"] - ln_f) // cfg.n_layer
    root = parts["token_embedding"] + parts["position_embedding"] + ln_f
    return (root + block) * fsdp_param_size(run)


# ---- activations saved for backward, per layer per token ------------------------------------


def residual_act_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # the residual stream saved as ln_1 and ln_2 inputs: 2 * C * (4 fp32 / autocast, 2 pure bf16)
    return 2 * cfg.n_embd * resid_size(run)


def norm_act_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # per LayerNorm (2 per block): its output as the next matmul saves it (a*C) + mean and rstd (2 values)
    return 2 * (cfg.n_embd * act_size(run) + 2 * resid_size(run))


def softmax_size(run: RunConfig) -> int:
    # CUDA autocast runs softmax in fp32; CPU autocast keeps it 16-bit
    if run.dtype == "fp32" or (run.dtype in ("bf16", "fp16") and run.device == "cuda"):
        return 4
    return 2


def attention_act_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    C, H, T, a = cfg.n_embd, cfg.n_head, cfg.block_size, act_size(run)
    if run.attention == "flash":
        # q, k, v (3aC) + output (aC) + fp32 logsumexp per head (4H); no T x T matrix
        return 4 * a * C + 4 * H
    # explicit softmax: contiguous q, k, v and y (4aC) + the softmax output (H*T per token)
    soft = softmax_size(run)
    recast = soft == 4 and a == 2  # CUDA autocast: att @ v saves a 16-bit copy of the fp32 weights
    total = 4 * a * C + soft * H * T + (2 * H * T if recast else 0)
    if cfg.dropout > 0:  # dropout on the T x T weights: its mask, and its output unless it is recast
        total += mask_size(run, soft) * H * T + (0 if recast else soft * H * T)
    return total


def mlp_act_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # c_fc output (4C) and GELU output (4C), 16-bit under autocast
    return 8 * cfg.n_embd * act_size(run)


def dropout_act_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # resid_dropout and the MLP's dropout each keep a mask of C elements
    return 2 * cfg.n_embd * mask_size(run, act_size(run)) if cfg.dropout > 0 else 0


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


def per_layer_fixed_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # per layer, independent of batch: math attention's inverted causal mask (T*T bool) saved by masked_fill
    return cfg.block_size**2 if run.attention == "math" and not run.activation_checkpointing else 0


def head_act_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # per token: ln_f input + its mean/rstd, ln_f output as lm_head saves it, embedding dropout mask
    C = cfg.n_embd
    drop = C * mask_size(run, resid_size(run)) if cfg.dropout > 0 else 0
    return C * resid_size(run) + 2 * resid_size(run) + C * act_size(run) + drop


def logits_train_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # per token at backward start: logits + log_softmax output + its grad + the logits grad
    # fp32 4+4+4+4 = 16V; autocast 2 (bf16 logits) + 4+4+4 (cross-entropy runs in fp32) = 14V; pure bf16 8V
    return cfg.vocab_size * {"fp32": 16, "bf16": 14, "fp16": 14, "pure_bf16": 8}[run.dtype]


def logits_forward_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # per token at the end of forward: logits + log_softmax output (fp32 under autocast)
    return cfg.vocab_size * {"fp32": 8, "bf16": 6, "fp16": 6, "pure_bf16": 4}[run.dtype]


def logits_eval_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # per token, no grad: last batch's logits still bound + new logits + fp32 copy (autocast) + log_softmax
    return cfg.vocab_size * {"fp32": 12, "bf16": 12, "fp16": 12, "pure_bf16": 6}[run.dtype]


def batch_bytes(cfg: ModelConfig, tokens: int) -> int:
    # x and y int64 (8 bytes each per token), + the int64 positions
    return 16 * tokens + 8 * cfg.block_size


def prefetched_batch_bytes(tokens: int) -> int:
    # the loop's next micro-batch (x, y int64), copied to the device during this one's forward (finegpt.step):
    # alive through backward, the optimizer step and eval, until the next micro-step takes it
    return 16 * tokens
