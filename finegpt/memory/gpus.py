"""GPU presets: memory as PyTorch reports it, bf16 support, dense peak TFLOPS from the datasheets.

Entry points: GPUS, Gpu, get_gpu(name) (did-you-mean on typos), gpu_from_device_name, detected_gpu_key,
peak_flops, MFU_RANGES, mfu_range.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from finegpt.errors import bad
from finegpt.memory.calibration import measured_mfu, widen


@dataclass(frozen=True)
class Gpu:
    name: str
    memory_gib: float  # torch.cuda.get_device_properties(0).total_memory / 2**30, rounded
    bf16: bool
    tflops_16bit: float  # dense bf16 (or fp16 where no bf16) tensor-core peak, fp32 accumulate
    tflops_fp32: float  # dense fp32 (non-tensor-core) peak
    aliases: tuple[str, ...] = ()  # substrings of torch.cuda.get_device_name()
    family: str = "other"  # a key of MFU_RANGES


# Dense figures: datasheets quote 2x "with sparsity"; those are halved here. GeForce cards run
# fp16/bf16 tensor math with fp32 accumulate (what PyTorch uses) at half the fp16-accumulate rate.
GPUS: dict[str, Gpu] = {
    # NVIDIA T4 datasheet: 65 TFLOPS mixed fp16, 8.1 fp32; Turing has no bf16
    "T4": Gpu("T4", 14.74, False, 65.0, 8.1, ("T4",), family="t4"),
    # GA102/GA106 whitepaper (Ampere GeForce): fp16 tensor w/ fp32 accumulate, dense
    "3060": Gpu("RTX 3060 12GB", 11.76, True, 25.6, 12.7, ("3060",), family="geforce"),
    "3080": Gpu("RTX 3080 10GB", 9.77, True, 59.5, 29.8, ("3080",), family="geforce"),
    "3090": Gpu("RTX 3090", 23.69, True, 71.0, 35.6, ("3090",), family="geforce"),
    # Ada Lovelace whitepaper: fp16 tensor w/ fp32 accumulate, dense
    "4070ti": Gpu("RTX 4070 Ti", 11.72, True, 80.2, 40.1, ("4070 Ti",), family="geforce"),
    "4080": Gpu("RTX 4080", 15.70, True, 97.5, 48.7, ("4080",), family="geforce"),
    "4090": Gpu("RTX 4090", 23.64, True, 165.2, 82.6, ("4090",), family="geforce"),
    # RTX A4000 datasheet: 153.4 sparse tensor TFLOPS -> 76.7 dense; 19.2 fp32
    "A4000": Gpu("RTX A4000", 15.72, True, 76.7, 19.2, ("A4000",), family="geforce"),
    # NVIDIA A10 datasheet (A10G is AWS's variant of it): 125 dense bf16, 31.2 fp32
    "A10G": Gpu("A10G", 22.49, True, 125.0, 31.2, ("A10G", "A10"), family="a10"),
    # NVIDIA L4 datasheet: 242 bf16 with sparsity -> 121 dense; 30.3 fp32
    "L4": Gpu("L4", 22.49, True, 121.0, 30.3, ("L4",), family="l4"),
    # RTX A6000 datasheet: 309.7 sparse tensor TFLOPS -> 154.8 dense; 38.7 fp32
    "A6000": Gpu("RTX A6000", 47.54, True, 154.8, 38.7, ("A6000",), family="geforce"),
    # V100 SXM2 datasheet: 125 fp16 tensor, 15.7 fp32; Volta has no bf16
    "V100-16": Gpu("V100 16GB", 15.77, False, 125.0, 15.7, ("V100-SXM2-16GB", "V100-PCIE-16GB"), family="volta"),
    "V100-32": Gpu(
        "V100 32GB", 31.74, False, 125.0, 15.7, ("V100-SXM2-32GB", "V100-PCIE-32GB", "V100"), family="volta"
    ),
    # A100 datasheet: 312 dense bf16, 19.5 fp32
    "A100-40": Gpu("A100 40GB", 39.39, True, 312.0, 19.5, ("A100-SXM4-40GB", "A100-PCIE-40GB"), family="ampere"),
    "A100-80": Gpu("A100 80GB", 79.15, True, 312.0, 19.5, ("A100-SXM4-80GB", "A100 80GB", "A100"), family="ampere"),
    # H100 SXM datasheet: 1979 bf16 with sparsity -> 989.4 dense; 67 fp32
    "H100": Gpu("H100 80GB", 79.10, True, 989.4, 67.0, ("H100",), family="hopper"),
    # H200 datasheet: same compute as H100 SXM, 141 GB HBM3e
    "H200": Gpu("H200", 139.80, True, 989.4, 67.0, ("H200",), family="hopper"),
}


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


def custom_gpu(memory_gib: float, bf16: bool = True, tflops_16bit: float = 100.0, tflops_fp32: float = 20.0) -> Gpu:
    """A card that is not listed: give its memory (and peaks, if you want times)."""
    if not memory_gib > 0:
        raise bad("memory_gib", memory_gib, "must be > 0", "Give the card's memory in GiB, e.g. 24")
    return Gpu(f"custom {memory_gib:g} GiB", float(memory_gib), bf16, tflops_16bit, tflops_fp32)


def _norm(name: str) -> str:
    return name.lower().replace(" ", "").replace("-", "").replace("_", "").replace("rtx", "")


def get_gpu(name: str | Gpu) -> Gpu:
    """A preset by key, case- and dash-insensitively ('4090', 'a100-80', 'h100'); 'custom:24' is 24 GiB."""
    if isinstance(name, Gpu):
        return name
    key = str(name)
    if key.lower().startswith("custom:"):
        try:
            return custom_gpu(float(key.split(":", 1)[1]))
        except ValueError:
            raise bad("gpu", key, "custom size is not a number", "Write e.g. gpu=custom:24 (GiB)") from None
    by_norm = {_norm(k): k for k in GPUS}
    if _norm(key) in by_norm:
        return GPUS[by_norm[_norm(key)]]
    close = difflib.get_close_matches(key, list(GPUS), n=1, cutoff=0.4)
    hint = f"Did you mean {close[0]}? " if close else ""
    raise bad("gpu", key, "unknown GPU", f"{hint}Known: {', '.join(GPUS)}, or custom:<GiB>")


def gpu_from_device_name(device_name: str) -> Gpu | None:
    """Map torch.cuda.get_device_name() ('NVIDIA A100-SXM4-80GB', 'Tesla T4') to a preset, or None."""
    best = None
    for gpu in GPUS.values():
        for alias in gpu.aliases:
            if alias.lower() in device_name.lower() and (best is None or len(alias) > best[0]):
                best = (len(alias), gpu)  # the longest alias wins: 'A100-SXM4-40GB' over 'A100'
    return best[1] if best else None


def detected_gpu_key(default: str = "T4") -> str:
    """The preset key of this machine's CUDA GPU (torch.cuda.get_device_name()), or `default` when
    there is no CUDA GPU or no preset matches it: the notebooks plan for the lab's T4 then."""
    import torch

    gpu = gpu_from_device_name(torch.cuda.get_device_name()) if torch.cuda.is_available() else None
    return next((key for key, g in GPUS.items() if g == gpu), default)


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


def preset_key(gpu: Gpu) -> str:
    """The GPUS key of a preset, or the card's name for a custom one."""
    return next((k for k, g in GPUS.items() if g == gpu), gpu.name)


def mfu_range(gpu: str | Gpu, compiled: bool = False) -> tuple[float, float]:
    """(low, high) MFU for this card, eager or compiled: its family's cited range, widened to include
    what bench/gpu_check.py measured on this preset (finegpt/memory/calibration.json)."""
    g = get_gpu(gpu)
    cited = MFU_RANGES.get(g.family, MFU_RANGES["other"])["compiled" if compiled else "eager"]
    return widen(cited, measured_mfu(preset_key(g), compiled))
