"""A speed model that knows the model's shape: one training step's time from its work, for a GPU you do not
have (or this CPU), calibrated on measured steps. Torch-free.

A micro-step is matmul FLOPs at a per-family share of the card's peak (lower for narrow layers), plus memory
traffic at the card's bandwidth (the LM head's logits and the loss over them, every layer's elementwise ops,
the weights' autocast copies), plus a fixed cost per kernel. A GPU runs the host's kernel launches alongside its
work, so the slower of the two sets the pace; a CPU runs them one after the other. The optimizer step adds its
own traffic. Eager and compiled differ in bytes per logit and per activation, and in the number of kernels.
Entry points: predict(model_cfg, gpu, batch_size, ...) -> SpeedPrediction (finegpt.memory.predict_speed),
run_mfu_range, mfu_of, cpu_constants, CALIBRATION_POINTS.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from finegpt.config import ModelConfig, count_params
from finegpt.gpus import Gpu, get_gpu
from finegpt.memory.calibration import active

# Achievable share of the dense 16-bit peak on a wide matmul, per family (fitted or cited, see docs/speed.md).
MATMUL_SHARE = {
    "hopper": 0.80,  # fitted to the H200's three measured steps (CALIBRATION_POINTS, bench/gpu_check.py)
    # the families below are not measured yet: set so GPT-2 124M at B=12 lands in or just above the cited
    # ranges of finegpt.memory.gpus (which come from older PyTorch, without flash attention or fused AdamW)
    "ampere": 0.60,
    "volta": 0.55,
    "a10": 0.55,  # karpathy/llm.c#621: 43 % MFU on an A10 with hand-written kernels
    "geforce": 0.70,  # karpathy/nanoGPT#182: 55 % MFU compiled for 124M on a 4090 (of its fp32-accumulate peak)
    "t4": 0.45,  # NVIDIA forum 264462: a T4 sustains ~24 of 65 TFLOPS (37 %) under its 70 W cap
    "l4": 0.45,  # capped at 72 W like the T4
    "other": 0.60,
}
WIDTH_HALF = 384  # a matmul with K = n_embd reaches share * C / (C + 384): narrow layers leave tensor cores idle
# Bytes moved per element, per micro-step (forward + backward), eager vs compiled, for 16-bit autocast:
LOGIT_BYTES = {"eager": 52.0, "compiled": 12.0}  # eager: bf16 logits, an fp32 copy, log_softmax and its grad
ACTIVATION_BYTES = {"eager": 200.0, "compiled": 100.0}  # per (token, n_embd, layer): norms, GELU, adds, copies
WEIGHT_BYTES_PER_PARAM = 12.0  # autocast's 16-bit copy of each weight, read again in forward and backward
OPTIMIZER_BYTES_PER_PARAM = 40.0  # fused AdamW reads p, g, m, v and writes p, m, v; clipping reads g twice
FP32_TRAFFIC = 2.0  # fp32 tensors (a CPU run, or fp32 on a GPU) move twice the bytes of 16-bit ones
# Kernels per micro-step (forward + backward) and per optimizer step, and their cost each
KERNELS_PER_LAYER = {"eager": 50, "compiled": 15}
KERNELS_FIXED = {"eager": 40, "compiled": 20}
OPTIMIZER_KERNELS = 20
LAUNCH_S = {"eager": 10e-6, "compiled": 6e-6}  # host time per kernel: Python, dispatch, the CUDA launch
KERNEL_MIN_S = 2e-6  # device time of the smallest kernel
# How far a measured step falls from the prediction: a family measured on a GPU, and one that is not
SPREAD = {"measured": (0.85, 1.2), "cited": (0.65, 1.5)}
MEASURED_FAMILIES = ("hopper",)

# The measured points this model is calibrated on, each with its source: (name, ModelConfig fields, preset,
# batch_size, gradient_accumulation_steps, compiled, measured MFU). docs/speed.md prints them against predict().
CALIBRATION_POINTS = [
    ("GPT-2 124M eager", dict(n_layer=12, n_head=12, n_embd=768, block_size=1024), "H200", 16, 4, False, 0.337),
    ("GPT-2 124M compiled", dict(n_layer=12, n_head=12, n_embd=768, block_size=1024), "H200", 16, 4, True, 0.425),
    ("the lab's 04 model", dict(n_layer=4, n_head=4, n_embd=128, block_size=512), "H200", 256, 1, False, 0.058),
]


@dataclass
class SpeedPrediction:
    step_s: float  # one optimizer step (all micro-steps)
    step_s_range: tuple[float, float]  # (fast, slow)
    tokens_per_s: float
    mfu: float | None  # None on a CPU: no datasheet peak
    mfu_range: tuple[float, float] | None  # (low, high)
    parts_s: dict  # per micro-step: matmul, LM head + loss traffic, activation traffic, weights, kernels


_OVERRIDE: dict[str, float] = {}  # share_override's: a refit trying shares


def matmul_share(family: str) -> float:
    """A family's matmul share: what bench/gpu_check.py's sweep fitted (calibration.json speed.<family>), else
    MATMUL_SHARE's."""
    if family in _OVERRIDE:
        return _OVERRIDE[family]
    fitted = active().get("speed", {}).get(family, {}).get("matmul_share")
    return float(fitted) if fitted is not None else MATMUL_SHARE.get(family, MATMUL_SHARE["other"])


def measured_family(family: str) -> bool:
    return family in MEASURED_FAMILIES or "matmul_share" in active().get("speed", {}).get(family, {})


@contextlib.contextmanager
def share_override(family: str, share: float):
    """Predict with another matmul share for a family for a while (a refit's search)."""
    _OVERRIDE[family] = share
    try:
        yield
    finally:
        del _OVERRIDE[family]


def run_mfu_range(
    model_cfg: ModelConfig,
    gpu: str | Gpu,
    batch_size: int,
    gradient_accumulation_steps: int = 1,
    compiled: bool = False,
    dtype: str = "bf16",
) -> tuple[float, float]:
    """(low, high) MFU predicted for this run on this card: what plans and times use."""
    return predict(model_cfg, gpu, batch_size, gradient_accumulation_steps, compiled, dtype).mfu_range


def flops_per_token(model_cfg: ModelConfig) -> int:
    # nanoGPT's estimate_mfu: 6N + 12 L C T (finegpt.memory.solve uses the same)
    return 6 * count_params(model_cfg) + 12 * model_cfg.n_layer * model_cfg.n_embd * model_cfg.block_size


def mfu_of(model_cfg: ModelConfig, tokens_per_s: float, gpu: str | Gpu, dtype: str = "bf16") -> float:
    g = get_gpu(gpu)
    peak = 1e12 * (g.tflops_fp32 if dtype in ("fp32", "float32") else g.tflops_16bit)
    return flops_per_token(model_cfg) * tokens_per_s / peak


# A CPU has no datasheet: finegpt.memory.probe.cpu_yardstick() measures one here and now (a 256 x 256 matmul's
# FLOP/s, an add's bytes/s, one tiny autograd op's seconds), and a training step runs at a fitted share of each.
# The shares travel between machines and loads; the yardstick is the machine. These defaults stand until
# bench/speed_check.py has fitted calibration.json's speed.cpu.
CPU_YARDSTICK = {"flops_per_s": 100e9, "bytes_per_s": 12e9, "op_s": 60e-6}
CPU_SHARES = {"flops": 0.3, "bytes": 0.4, "ops": 1.0}
CPU_SPREAD = (0.6, 1.6)


def cpu_constants(yardstick: dict | None = None) -> dict:
    """This CPU's rates for a training step, {'flops_per_s', 'bytes_per_s', 'op_s', 'spread'}: the fitted shares
    (calibration.json speed.cpu) times `yardstick` (probe.cpu_yardstick() on this machine now), else times the
    yardstick of the machine the shares were fitted on."""
    fitted = active().get("speed", {}).get("cpu", {})
    shares = {**CPU_SHARES, **fitted.get("shares", {})}
    y = {**CPU_YARDSTICK, **fitted.get("yardstick", {}), **(yardstick or {})}
    return {
        "flops_per_s": shares["flops"] * y["flops_per_s"],
        "bytes_per_s": shares["bytes"] * y["bytes_per_s"],
        "op_s": shares["ops"] * y["op_s"],
        "spread": list(fitted.get("spread", CPU_SPREAD)),
    }


def work(model_cfg: ModelConfig, batch_size: int, compiled: bool = False, fp32: bool = False) -> dict:
    """One micro-step's work: matmul 'flops', bytes moved (the LM head and loss over the logits, every layer's
    elementwise ops, the weights' copies) and 'kernels'; and the optimizer step's 'opt_bytes', 'opt_kernels'."""
    mode = "compiled" if compiled else "eager"
    C, L, V = model_cfg.n_embd, model_cfg.n_layer, model_cfg.vocab_size
    tokens, n_params = batch_size * model_cfg.block_size, count_params(model_cfg, non_embedding=False)
    scale = FP32_TRAFFIC if fp32 else 1.0
    return {
        "flops": flops_per_token(model_cfg) * tokens,
        "logit_bytes": tokens * V * LOGIT_BYTES[mode] * scale,
        "activation_bytes": tokens * C * L * ACTIVATION_BYTES[mode] * scale,
        "weight_bytes": WEIGHT_BYTES_PER_PARAM * n_params * scale,
        "kernels": KERNELS_PER_LAYER[mode] * L + KERNELS_FIXED[mode],
        "opt_bytes": OPTIMIZER_BYTES_PER_PARAM * n_params,
        "opt_kernels": OPTIMIZER_KERNELS,
    }


def _parts(w: dict, matmul_flops_per_s: float, bytes_per_s: float) -> dict:
    return {
        "matmul": w["flops"] / matmul_flops_per_s,
        "LM head + loss": w["logit_bytes"] / bytes_per_s,
        "activations": w["activation_bytes"] / bytes_per_s,
        "weights": w["weight_bytes"] / bytes_per_s,
    }


def cpu_step_s(w: dict, gradient_accumulation_steps: int, flops_per_s: float, bytes_per_s: float, op_s: float):
    """A CPU step: everything runs one after the other, so the terms add (linear in 1 / flops_per_s,
    1 / bytes_per_s and op_s: bench/speed_check.py fits the three by least squares)."""
    micro_s = sum(_parts(w, flops_per_s, bytes_per_s).values()) + w["kernels"] * op_s
    return gradient_accumulation_steps * micro_s + w["opt_bytes"] / bytes_per_s + w["opt_kernels"] * op_s


def predict(
    model_cfg: ModelConfig,
    gpu: str | Gpu | None,
    batch_size: int,
    gradient_accumulation_steps: int = 1,
    compiled: bool = False,
    dtype: str = "bf16",
    cpu_yardstick: dict | None = None,
) -> SpeedPrediction:
    """The step time of a run of model_cfg at batch_size x gradient_accumulation_steps x block_size on one
    `gpu` (a preset or Gpu), or on a CPU (gpu=None, fp32: cpu_constants(cpu_yardstick))."""
    mode = "compiled" if compiled else "eager"
    if gpu is None:  # a CPU: no peak to speak of, the work and the per-op cost add up
        k = cpu_constants(cpu_yardstick)
        w = work(model_cfg, batch_size, compiled, fp32=True)
        parts = {**_parts(w, k["flops_per_s"], k["bytes_per_s"]), "kernels": w["kernels"] * k["op_s"]}
        step_s = cpu_step_s(w, gradient_accumulation_steps, k["flops_per_s"], k["bytes_per_s"], k["op_s"])
        spread, g = tuple(k["spread"]), None
    else:
        g = get_gpu(gpu)
        fp32 = dtype in ("fp32", "float32")
        peak = 1e12 * (g.tflops_fp32 if fp32 else g.tflops_16bit)
        share = matmul_share(g.family) * model_cfg.n_embd / (model_cfg.n_embd + WIDTH_HALF)
        w, bytes_per_s = work(model_cfg, batch_size, compiled, fp32), g.memory_gbps * 1e9
        parts = _parts(w, peak * share, bytes_per_s)
        device_s = sum(parts.values()) + w["kernels"] * KERNEL_MIN_S
        parts["kernels"] = w["kernels"] * LAUNCH_S[mode]
        micro_s = max(device_s, parts["kernels"])  # the host launches while the device works
        opt_s = max(w["opt_bytes"] / bytes_per_s, w["opt_kernels"] * LAUNCH_S[mode])
        step_s = gradient_accumulation_steps * micro_s + opt_s
        spread = SPREAD["measured" if measured_family(g.family) else "cited"]
    step_range = (step_s * spread[0], step_s * spread[1])
    tokens_per_s = gradient_accumulation_steps * batch_size * model_cfg.block_size / step_s
    if g is None:
        mfu = mfu_range = None
    else:
        mfu = mfu_of(model_cfg, tokens_per_s, g, dtype)
        mfu_range = (mfu * step_s / step_range[1], mfu * step_s / step_range[0])
    return SpeedPrediction(step_s, step_range, tokens_per_s, mfu, mfu_range, parts)


predict_speed = predict  # finegpt.memory's name for it
