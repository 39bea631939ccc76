"""What each GPU reaches in training: MFU ranges per family and the dense peak FLOP/s an MFU divides by.
The cards themselves (memory, bf16, peaks, names) are finegpt.gpus' catalogue.

Entry points: MFU_RANGES, mfu_range, peak_flops.
"""

from __future__ import annotations

from finegpt.gpus import GPUS, Gpu, get_gpu, gpu_from_device_name, preset_key
from finegpt.memory.calibration import measured_mfu, widen

__all__ = ["GPUS", "MFU_RANGES", "Gpu", "mfu_range", "peak_flops", "preset_key"]


# Model FLOPs utilization (MFU: 6N + 12LCT FLOPs per token x tokens/s / the dense peak above) that
# nanoGPT-style training of 30M-350M GPTs reaches, (low, high), eager and compiled. A time is a range
# because the MFU is; the training log prints the real one. Sources, per family:
MFU_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    # NVIDIA developer forum "About GPU peak performance" (264462): a T4 sustains ~24 TFLOPS (37 % of 65)
    # on large fp16 matmuls under its 70 W cap. A 30M GPT spends most of its time in the LM head and the
    # fp32 loss over 50k logits, memory-bound at 320 GB/s: 10-13 % eager. Compiled fuses the loss
    "t4": {"eager": (0.10, 0.13), "compiled": (0.12, 0.20)},
    # the L4 is capped at 72 W like the T4, with a 300 GB/s bus
    "l4": {"eager": (0.10, 0.18), "compiled": (0.15, 0.25)},
    # karpathy/nanoGPT README: torch.compile takes GPT-2 124M (B=12, T=1024, one A100) from ~250 to
    # ~135 ms/iter: 13 % eager and 25 % compiled MFU by this formula; newer PyTorch (flash SDPA, fused
    # AdamW) reaches more
    "ampere": {"eager": (0.13, 0.28), "compiled": (0.25, 0.45)},
    "volta": {"eager": (0.13, 0.25), "compiled": (0.20, 0.35)},  # V100: no bf16, fp16 + GradScaler
    # karpathy/nanoGPT#464: compiled 124M on an H100 logged "104 %" of the A100's 312 TFLOPS = 33 % of
    # 989; eager about half of that (the README's 1.85x compile speed-up)
    "hopper": {"eager": (0.12, 0.22), "compiled": (0.25, 0.40)},
    # karpathy/nanoGPT#182: compiled 124M on one 4090 logged "29 %" of the A100's 312 = 55 % of the
    # 4090's 165 (fp32-accumulate peak); eager about 1/1.85 of that
    "geforce": {"eager": (0.20, 0.30), "compiled": (0.35, 0.55)},
    # karpathy/llm.c#621: llm.c's hand-written CUDA reaches 43 % on an A10: PyTorch stays below
    "a10": {"eager": (0.15, 0.25), "compiled": (0.25, 0.43)},
    "other": {"eager": (0.13, 0.28), "compiled": (0.25, 0.45)},
}


def peak_flops(device_name_or_gpu: str | Gpu, dtype: str = "bf16") -> float | None:
    """Dense peak FLOP/s for MFU: a preset key or a torch.cuda.get_device_name() string; None if unknown.
    dtype 'fp32' gives the fp32 peak; anything 16-bit the tensor-core peak."""
    gpu = device_name_or_gpu if isinstance(device_name_or_gpu, Gpu) else None
    if gpu is None:
        try:
            gpu = get_gpu(device_name_or_gpu)
        except ValueError:
            gpu = gpu_from_device_name(str(device_name_or_gpu))
    if gpu is None:
        return None
    return 1e12 * (gpu.tflops_fp32 if dtype in ("fp32", "float32") else gpu.tflops_16bit)


def mfu_range(gpu: str | Gpu, compiled: bool = False) -> tuple[float, float]:
    """(low, high) MFU for this card, eager or compiled, whatever the model: its family's cited range, widened
    to include what bench/gpu_check.py measured on any card of the family (finegpt/memory/calibration.json), so
    an H100 and an H200 read the same range. finegpt.memory.speed's run_mfu_range knows the model and batch."""
    g = get_gpu(gpu)
    cited = MFU_RANGES.get(g.family, MFU_RANGES["other"])["compiled" if compiled else "eager"]
    for key, card in GPUS.items():
        if card.family == g.family:
            cited = widen(cited, measured_mfu(key, compiled))
    return cited
