"""One small function per memory term, in bytes per rank, each with its formula and reason.

Notation: N parameters, n = B*T tokens per micro-batch (n_e for eval), C n_embd, H n_head, L n_layer,
V vocab, T block_size, a the activations' element size, r the residual stream's. `estimate()` in
report.py sums these by phase; no constant hides inside a total. The step is finegpt.step's: inside
forward_backward the logits stay bound through backward into the next micro-step's forward (as in
nanoGPT's train.py), but they are freed when it returns, so unlike nanoGPT's loop the optimizer step and
eval do not hold them; the prefetched next batch is held through both. With
run.compile, the terms inductor changes (logits, norms, attention, the autocast copies, eval) take
their compiled form, measured on CPU inductor and, for CUDA runs, on a GPU (calibration.py).
"""

from __future__ import annotations

from finegpt.config import GIB, ModelConfig, count_params, param_breakdown
from finegpt.memory.calibration import (
    compiled_coefficient,
    eager_logit_bytes,
    gpu_measured,
    measured_overhead,
    widen,
)
from finegpt.run import RunConfig

MIB = 2**20

# ---- element sizes and token counts ---------------------------------------------------------


def param_size(run: RunConfig) -> int:
    return 2 if run.label == "pure_bf16" else 4  # autocast keeps fp32 master weights


def act_size(run: RunConfig) -> int:
    return 4 if run.label == "fp32" else 2  # matmul outputs (and the logits): 16-bit under autocast or pure bf16


def resid_size(run: RunConfig) -> int:
    return param_size(run)  # residual stream: fp32 + bf16 promotes to fp32 under autocast


def mask_size(run: RunConfig, elem: int) -> int:
    return elem if run.device == "cpu" else 1  # dropout masks: bool on CUDA, input dtype on CPU


def softmax_size(run: RunConfig) -> int:
    # CUDA autocast runs softmax in fp32; CPU autocast keeps it 16-bit
    if run.label == "fp32" or (run.label in ("bf16", "fp16") and run.device == "cuda"):
        return 4
    return 2


def train_tokens(cfg: ModelConfig, run: RunConfig) -> int:
    return run.batch_size * cfg.block_size  # n = B*T per micro-step


def eval_tokens(cfg: ModelConfig, run: RunConfig) -> int:
    return run.eval_micro_batch * cfg.block_size  # n_e = eval_batch_size*T per eval batch


def sharded(nbytes: int, run: RunConfig, *kinds: str) -> int:
    # a rank keeps 1/world_size of what the listed shardings split (ceil: the last shard is padded)
    return -(-nbytes // run.world_size) if run.world_size > 1 and run.sharding in kinds else nbytes


def fsdp(run: RunConfig) -> bool:
    return run.world_size > 1 and run.sharding == "fsdp"


# ---- persistent state -----------------------------------------------------------------------


def weight_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # N * 4 (fp32 master weights; tied lm_head counted once), N * 2 for pure bf16; FSDP keeps 1/world
    return sharded(count_params(cfg, non_embedding=False) * param_size(run), run, "fsdp")


def buffer_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # math attention registers a bool causal mask T*T per layer
    return cfg.n_layer * cfg.block_size**2 if run.attention == "math" else 0


def full_grad_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # one gradient per parameter, in the parameter's dtype: N * 4 (N * 2 pure bf16), unsharded
    return count_params(cfg, non_embedding=False) * param_size(run)


def grads_in_buckets(run: RunConfig) -> bool:
    return run.world_size > 1 and run.sharding == "ddp" and run.gradient_as_bucket_view


def grad_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # this step's gradients per rank: ZeRO-2 and FSDP reduce-scatter them to 1/world; with DDP's
    # gradient_as_bucket_view they are views into the buckets and cost nothing more
    return 0 if grads_in_buckets(run) else sharded(full_grad_bytes(cfg, run), run, "zero2", "fsdp")


def held_grad_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # gradient accumulation: from the 2nd micro-step the previous ones' gradients are held; FSDP2 skips
    # the reduce-scatter on all but the last micro-step, so it holds them full size
    if run.gradient_accumulation_steps == 1:
        return 0
    return full_grad_bytes(cfg, run) if fsdp(run) else grad_bytes(cfg, run)


def optimizer_state_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # AdamW: exp_avg + exp_avg_sq = 2 * param bytes; SGD momentum buffer 1x; plain SGD none
    per = {"adamw_fused": 2, "adamw_foreach": 2, "sgd_momentum": 1, "sgd": 0}[run.optimizer]
    total = per * count_params(cfg, non_embedding=False) * param_size(run)
    return sharded(total, run, "zero1", "zero2", "fsdp")


def decayed_params(cfg: ModelConfig) -> int:
    # nanoGPT's first param group: the 2-D tensors (matmuls, embeddings); biases and norms are the second
    parts, b = param_breakdown(cfg), int(cfg.bias)
    return sum(parts.values()) - parts["layernorm"] - cfg.n_layer * 9 * cfg.n_embd * b


def optimizer_temp_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # foreach AdamW builds a temporary per tensor (the denominator sqrt(v)) for one param group at a
    # time: the decayed group's size, about 4N; the fused kernel updates in place
    if run.optimizer != "adamw_foreach":
        return 0
    return sharded(decayed_params(cfg) * param_size(run), run, "zero1", "zero2", "fsdp")


def ddp_bucket_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # DDP's flat all-reduce buckets hold a copy of every grad (4N), allocated when DDP wraps the model:
    # zero_grad cannot free them. With gradient_as_bucket_view=True the grads are views into them instead
    if run.world_size == 1 or run.sharding != "ddp":
        return 0
    return full_grad_bytes(cfg, run)


def fsdp_param_size(run: RunConfig) -> int:
    # FSDP2's MixedPrecisionPolicy (finegpt.step.mixed_precision) gathers 16-bit weights on GPU; CPU stays fp32
    return 2 if fsdp(run) and run.device == "cuda" and run.label != "fp32" else param_size(run)


def fsdp_gathered_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # FSDP2 gathers weights whole while they work. At the start of backward (and in eval) that is the
    # root's (embeddings / tied lm_head, ln_f: the root is not resharded after forward) and one block's
    # (the last, prefetched for its backward): (V*C + T*C + ln_f + one block) * gathered element size
    if not fsdp(run):
        return 0
    parts, ln_f = param_breakdown(cfg), cfg.n_embd * (1 + int(cfg.bias))
    block = (parts["attention"] + parts["mlp"] + parts["layernorm"] - ln_f) // cfg.n_layer
    root = parts["token_embedding"] + parts["position_embedding"] + ln_f
    return (root + block) * fsdp_param_size(run)


def autocast_copy_bytes(cfg: ModelConfig, run: RunConfig, blocks: int | None = None) -> int:
    # autocast caches a 16-bit copy of every matmul weight (and bias): 2 * (12LC^2 + VC + biases);
    # `blocks` counts how many blocks' copies are alive (checkpointing frees them; lm_head's stays).
    # Compiled, the graph saves the weights' copies for backward, not the biases'
    if run.label not in ("bf16", "fp16") or fsdp_param_size(run) == 2:
        return 0  # fp32, or FSDP2 already gathers 16-bit weights: nothing for autocast to cast
    parts, C, b = param_breakdown(cfg), cfg.n_embd, int(cfg.bias)
    blocks = cfg.n_layer if blocks is None else blocks
    per_block = (parts["attention"] + parts["mlp"]) // cfg.n_layer - (9 * C * b if run.compile else 0)
    return 2 * (blocks * per_block + parts["token_embedding"])  # lm_head is the tied wte


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
        # q, k, v (3aC) + output (aC) + fp32 logsumexp per head (4H); no T x T matrix
        return 4 * a * C + 4 * H
    # explicit softmax: contiguous q, k, v and y (4aC) + the softmax output (H*T per token)
    soft = softmax_size(run)
    if run.compile:  # inductor saves the scores' softmax (and, fp32, its row max and sum: 8H)
        return 4 * a * C + soft * H * T + (8 * H if soft == 4 else 0)
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
    eager_math = run.attention == "math" and not run.activation_checkpointing and not run.compile
    return cfg.block_size**2 if eager_math else 0


def head_act_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # per token: ln_f input + its mean/rstd, ln_f output as lm_head saves it, embedding dropout mask.
    # Compiled: ln_f's normalized input + rstd, the loss's row max and log-sum-exp (fp32 each), and
    # the first block's ln_1 mean (its input is recomputed from the embeddings, so mean and rstd are kept)
    C, r = cfg.n_embd, resid_size(run)
    if run.compile:
        return C * r + C * act_size(run) + 4 + 8 + 4
    drop = C * mask_size(run, r) if cfg.dropout > 0 else 0
    return C * r + 2 * r + C * act_size(run) + drop


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
    if run.compile:
        return int(n * V * act_size(run) * compiled_coefficient("logits_train_copies", run.device))
    measured = eager_logit_bytes("logits_train_bytes", run.label, run.device)
    if measured is not None:
        return int(n * V * measured)
    return n * V * {"fp32": 16, "bf16": 14, "fp16": 14, "pure_bf16": 8}[run.label]


def logits_forward_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # at the end of forward: logits + log_softmax output (fp32 under autocast); compiled, the logits only
    n, V = train_tokens(cfg, run), cfg.vocab_size
    if run.compile:
        return n * V * act_size(run)
    return n * V * {"fp32": 8, "bf16": 6, "fp16": 6, "pure_bf16": 4}[run.label]


def bound_logits_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # a micro-step's logits, still bound after its backward (`logits, loss = model(X, Y)`) and through the
    # next micro-step's forward, until forward_backward returns: n * V * a, eager or compiled
    return train_tokens(cfg, run) * cfg.vocab_size * act_size(run)


# ---- eval: no grad, two batches (the previous one's logits still bound) ------------------------


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
    if not run.compile:
        return autocast_copy_bytes(cfg, run)
    C = cfg.n_embd
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
    return n_e * (per_token + a * cfg.vocab_size) + eval_weight_copy_bytes(cfg, run, "mlp")


def eval_attention_moment_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # math attention, beside the previous batch's logits (aV per token): the residual, (eager) ln_1's output,
    # q, k, v (3aC) and the no-grad T x T transients, two at a time: scores and their masked copy (+ the T x T
    # bool ~mask, eager), or the softmax and its input (CUDA autocast: fp32 softmax + its 16-bit cast).
    # Flash attention keeps no T x T matrix and never peaks here
    if run.attention != "math":
        return 0
    C, a, HT, n_e = cfg.n_embd, act_size(run), cfg.n_head * cfg.block_size, eval_tokens(cfg, run)
    ln_out = 0 if run.compile else (2 if run.label == "pure_bf16" else 4) * C
    base = n_e * (resid_size(run) * C + ln_out + 3 * a * C + a * HT + a * cfg.vocab_size)
    mask = 0 if run.compile else cfg.block_size**2
    return base + max(n_e * a * HT + mask, n_e * softmax_size(run) * HT) + eval_weight_copy_bytes(cfg, run, "attention")


def eval_head_moment_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # at the loss: the residual stream (compiled: ln_f's output, a*C) + the logits terms above, per token
    r = act_size(run) if run.compile else resid_size(run)
    n_e = eval_tokens(cfg, run)
    return n_e * (r * cfg.n_embd + eval_logits_bytes(cfg, run)) + eval_weight_copy_bytes(cfg, run, "head")


def eval_forward_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # the largest moment of a no-grad forward (with the weight copies alive then) + the eval batch
    moments = (eval_mlp_moment_bytes(cfg, run), eval_attention_moment_bytes(cfg, run), eval_head_moment_bytes(cfg, run))
    return max(moments) + batch_bytes(cfg, eval_tokens(cfg, run))


# ---- outside the allocator's peak: what nvidia-smi adds, each a (low, high) range ---------------


def cuda_context_range(run: RunConfig) -> tuple[int, int]:
    # CUDA context + loaded kernels: ~0.3 GiB with lazy module loading (PyTorch's default on CUDA >= 11.7)
    # to 0.7 GiB for one tensor on older stacks (discuss.pytorch.org/t/73021: 723 MiB). Compiled, inductor's
    # Triton kernels load as more modules: 0.4-1.0 GiB. A GPU measurement (calibration.json) widens it
    low, high = (0.4, 1.0) if run.compile else (0.3, 0.8)
    key = "cuda_context_gib_compiled" if run.compile else "cuda_context_gib_eager"
    low, high = widen((low, high), measured_overhead(key))
    return int(low * GIB), int(high * GIB)


def cublas_workspace_range(run: RunConfig) -> tuple[int, int]:
    # allocated through the caching allocator, per cuBLAS handle (the forward's thread and autograd's
    # backward thread each have one): cuBLAS 8 MiB (discuss.pytorch.org/t/178671: 8519680 B) + cuBLASLt
    # 1-32 MiB (pytorch/pytorch#120925: 32 MiB on Hopper); the CPU measurements cannot see them
    return 2 * 9 * MIB, 2 * 40 * MIB


def reserve_factor_range(run: RunConfig) -> tuple[float, float]:
    # the caching allocator keeps freed blocks for reuse and rounds requests up (to 512 B and 2 MiB
    # segments): reserved = allocated * 1.05-1.20 for static shapes. A GPU measurement widens it
    key = "reserved_factor_compiled" if run.compile else "reserved_factor_eager"
    return widen((1.05, 1.20), measured_overhead(key))


def nccl_bytes(run: RunConfig) -> int:
    # NCCL's buffers: about 3 GiB per GPU seen with 8-GPU DDP, scaled down for fewer ranks
    return int(3 * GIB * (run.world_size - 1) / 7) if run.world_size > 1 else 0


def compiled_uncertainty_bytes(compiled_terms_bytes: int, run: RunConfig) -> int:
    # a CUDA run's compiled terms, while only CPU inductor has measured them: +5 % (the CPU grid's
    # acceptance); none once a GPU has measured them, or for a CPU run (the backend they were measured on)
    return 0 if run.device == "cpu" or gpu_measured() else compiled_terms_bytes // 20
