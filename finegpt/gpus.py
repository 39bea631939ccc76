"""The GPU catalogue: each card's memory as PyTorch reports it, bf16 support and dense peak TFLOPS from its
datasheet, and the names people write for it (nvidia-smi, shops, memory suffixes).

Entry points: GPUS, Gpu, resolve_gpu(name) -> GpuMatch (a did-you-mean on typos), get_gpu, custom_gpu,
gpu_from_device_name, detected_gpu_key, preset_key. Imports neither torch nor numpy (the browser calculator
runs it); what each card reaches in training (MFU) lives in finegpt.memory.gpus.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

from finegpt.errors import FinegptError, bad


@dataclass(frozen=True)
class Gpu:
    name: str
    memory_gib: float  # torch.cuda.get_device_properties(0).total_memory / 2**30, rounded
    bf16: bool
    tflops_16bit: float  # dense bf16 (or fp16 where no bf16) tensor-core peak, fp32 accumulate
    tflops_fp32: float  # dense fp32 (non-tensor-core) peak
    family: str = "other"  # a key of MFU_RANGES
    memory_gbps: float = 500.0  # memory bandwidth, GB/s, from the datasheet: what the LM head and loss run at


# Dense figures: datasheets quote 2x "with sparsity"; those are halved here. Memory bandwidth (memory_gbps) is
# each datasheet's GB/s: T4 320, L4 300, A10 600, RTX A4000 448, RTX A6000 768, V100 SXM2 900, A100 40GB 1555,
# A100 80GB SXM 2039, H100 SXM 3350, H200 4800; GeForce spec pages: 3060 360, 3080 760, 3090 936, 4070 Ti 504,
# 4080 717, 4090 1008. GeForce cards run
# fp16/bf16 tensor math with fp32 accumulate (what PyTorch uses) at half the fp16-accumulate rate.
GPUS: dict[str, Gpu] = {
    # NVIDIA T4 datasheet: 65 TFLOPS mixed fp16, 8.1 fp32; Turing has no bf16
    "T4": Gpu("T4", 14.74, False, 65.0, 8.1, family="t4", memory_gbps=320),
    # GA102/GA106 whitepaper (Ampere GeForce): fp16 tensor w/ fp32 accumulate, dense
    "3060": Gpu("RTX 3060 12GB", 11.76, True, 25.6, 12.7, family="geforce", memory_gbps=360),
    "3080": Gpu("RTX 3080 10GB", 9.77, True, 59.5, 29.8, family="geforce", memory_gbps=760),
    "3090": Gpu("RTX 3090", 23.69, True, 71.0, 35.6, family="geforce", memory_gbps=936),
    # Ada Lovelace whitepaper: fp16 tensor w/ fp32 accumulate, dense
    "4070ti": Gpu("RTX 4070 Ti", 11.72, True, 80.2, 40.1, family="geforce", memory_gbps=504),
    "4080": Gpu("RTX 4080", 15.70, True, 97.5, 48.7, family="geforce", memory_gbps=717),
    "4090": Gpu("RTX 4090", 23.64, True, 165.2, 82.6, family="geforce", memory_gbps=1008),
    # RTX A4000 datasheet: 153.4 sparse tensor TFLOPS -> 76.7 dense; 19.2 fp32
    "A4000": Gpu("RTX A4000", 15.72, True, 76.7, 19.2, family="geforce", memory_gbps=448),
    # NVIDIA A10 datasheet (A10G is AWS's variant of it): 125 dense bf16, 31.2 fp32
    "A10G": Gpu("A10G", 22.49, True, 125.0, 31.2, family="a10", memory_gbps=600),
    # NVIDIA L4 datasheet: 242 bf16 with sparsity -> 121 dense; 30.3 fp32
    "L4": Gpu("L4", 22.49, True, 121.0, 30.3, family="l4", memory_gbps=300),
    # RTX A6000 datasheet: 309.7 sparse tensor TFLOPS -> 154.8 dense; 38.7 fp32
    "A6000": Gpu("RTX A6000", 47.54, True, 154.8, 38.7, family="geforce", memory_gbps=768),
    # V100 SXM2 datasheet: 125 fp16 tensor, 15.7 fp32; Volta has no bf16
    "V100-16": Gpu("V100 16GB", 15.77, False, 125.0, 15.7, family="volta", memory_gbps=900),
    "V100-32": Gpu("V100 32GB", 31.74, False, 125.0, 15.7, family="volta", memory_gbps=900),
    # A100 datasheet: 312 dense bf16, 19.5 fp32
    "A100-40": Gpu("A100 40GB", 39.39, True, 312.0, 19.5, family="ampere", memory_gbps=1555),
    "A100-80": Gpu("A100 80GB", 79.15, True, 312.0, 19.5, family="ampere", memory_gbps=2039),
    # H100 SXM datasheet: 1979 bf16 with sparsity -> 989.4 dense; 67 fp32
    "H100": Gpu("H100 80GB", 79.10, True, 989.4, 67.0, family="hopper", memory_gbps=3350),
    # H200 datasheet: same compute as H100 SXM, 141 GB HBM3e
    "H200": Gpu("H200", 139.80, True, 989.4, 67.0, family="hopper", memory_gbps=4800),
}


def custom_gpu(memory_gib: float, bf16: bool = True, tflops_16bit: float = 100.0, tflops_fp32: float = 20.0) -> Gpu:
    """A card that is not listed: give its memory (and peaks, if you want times)."""
    if not memory_gib > 0:
        raise bad("memory_gib", memory_gib, "must be > 0", "Give the card's memory in GiB, e.g. 24")
    return Gpu(f"custom {memory_gib:g} GiB", float(memory_gib), bf16, tflops_16bit, tflops_fp32)


# ---- names as people write them: nvidia-smi, shop listings, memory suffixes ---------------------

# A card's model name (lower case, vendor words dropped) -> {memory in GB as marketed: preset key}.
# The first size listed is what a bare name means: the smaller card, which is also the common one in
# clouds and labs, and a plan made for it fits the larger card too.
GPU_NAMES: dict[str, dict[int, str]] = {
    "t4": {16: "T4"},
    "3060": {12: "3060"},
    "3080": {10: "3080"},
    "3090": {24: "3090"},
    "4070ti": {12: "4070ti"},
    "4080": {16: "4080"},
    "4090": {24: "4090"},
    "a4000": {16: "A4000"},
    "a10g": {24: "A10G"},
    "a10": {24: "A10G"},  # the A10G preset holds the A10 datasheet's figures
    "l4": {24: "L4"},
    "a6000": {48: "A6000"},
    "v100": {16: "V100-16", 32: "V100-32"},
    "v100s": {32: "V100-32"},  # the V100S: 32 GB, 4 % more peak than the V100
    "a100": {40: "A100-40", 80: "A100-80"},
    "h100": {80: "H100"},
    "h200": {141: "H200"},
}
_VENDOR_WORDS = frozenset("nvidia tesla geforce quadro rtx gtx gpu graphics card".split())
_PACKAGING = re.compile(r"(sxm\d?|pcie|nvlink|hbm\d?e?|g?ddr\d?x?|x\d+|\d+x)")  # words that name no other card
_MODIFIERS = ("ti", "super", "laptop", "mobile", "max", "q", "nvl", "d")  # words that do: a 3060 Ti is not a 3060
_MEMORY = re.compile(r"(\d+)gb")


class GpuMatch(NamedTuple):
    key: str  # the preset's key in GPUS (a custom card: its name)
    gpu: Gpu
    note: str | None  # set when the name was ambiguous: which variant was taken, for the caller to show


def _norm(name: str) -> str:
    return name.lower().replace(" ", "").replace("-", "").replace("_", "").replace("rtx", "")


def read_gpu_name(text: str) -> tuple[str, int | None]:
    """(model, memory in GB or None) from free text: 'NVIDIA A100-SXM4-80GB' -> ('a100', 80),
    'RTX 4070 Ti' -> ('4070ti', None), 'v100-16gb' -> ('v100', 16). The model is the first word with a
    digit; vendor, form-factor and memory-type words are dropped; brand words without digits are skipped."""
    text = re.sub(r"\b(\d+)\s*(gb|gib|g)\b", r"\1gb", text.lower())  # '80 GB', '80GiB', '80G' -> '80gb'
    model, memory_gb = "", None
    for word in filter(None, re.split(r"[^a-z0-9]+", text)):
        word = re.sub(r"^(rtx|gtx)(?=a?\d)", "", word)  # 'rtx4090' -> '4090', 'rtxa6000' -> 'a6000'
        if word in _VENDOR_WORDS or _PACKAGING.fullmatch(word):
            continue
        if m := _MEMORY.fullmatch(word):
            memory_gb = int(m[1])
        elif not model:
            model = word if any(c.isdigit() for c in word) else ""
        elif word.isdigit() and memory_gb is None:  # 'A100-80', 'V100-16': the preset keys' own form
            memory_gb = int(word)
        elif word in _MODIFIERS:
            model += word
    return model, memory_gb


def _typo_of(a: str, b: str) -> bool:
    """Same length and first character, with one letter changed or two neighbours swapped ('4900', '4090').
    A changed digit is another card, not a typo: 4060 and 4080, A800 and A100."""
    if len(a) != len(b) or a[:1] != b[:1]:
        return False
    diff = [i for i in range(len(a)) if a[i] != b[i]]
    if len(diff) == 1:
        return not (a[diff[0]].isdigit() and b[diff[0]].isdigit())
    return len(diff) == 2 and diff[1] == diff[0] + 1 and (a[diff[0]], a[diff[1]]) == (b[diff[1]], b[diff[0]])


def _suggest(model: str) -> list[str]:
    """Preset keys for a model name that has none: its base card ('3060ti' -> 3060) or a one-key typo
    ('4900' -> 4090). Never a card from another line: 'a100' is no typo of 'h100'."""
    names = {**{_norm(k): {0: k} for k in GPUS}, **GPU_NAMES}
    keys = []
    for name, sizes in names.items():
        rest = model[len(name) :] if model.startswith(name) else None
        if (rest and re.fullmatch(f"({'|'.join(_MODIFIERS)})+", rest)) or _typo_of(model, name):
            keys += [k for k in sizes.values() if k not in keys]
    return keys


def _unknown(text: str, model: str) -> FinegptError:
    close = _suggest(model or _norm(text))
    hint = f"Did you mean {' or '.join(close)}? " if close else ""
    return bad("gpu", text, "unknown GPU", f"{hint}Known: {', '.join(GPUS)}, or custom:<GiB> (its memory)")


def resolve_gpu(name: str | Gpu) -> GpuMatch:
    """The preset for a GPU named as people write it: a key ('4090', 'a100-80'), what nvidia-smi or
    torch.cuda.get_device_name() prints ('Tesla T4', 'NVIDIA A100-SXM4-80GB'), a shop name ('RTX 4090
    24GB'), in any case, spacing and dashes; 'custom:24' is a 24 GiB card. A bare name with several sizes
    ('A100', 'V100') takes the smaller and says so in .note. Unknown names raise with a did-you-mean."""
    if isinstance(name, Gpu):
        return GpuMatch(preset_key(name), name, None)
    text = str(name).strip()
    if text.lower().startswith("custom:"):
        try:
            memory_gib = float(text.split(":", 1)[1])
        except ValueError:
            raise bad("gpu", text, "custom size is not a number", "Write e.g. gpu=custom:24 (GiB)") from None
        if not 0 < memory_gib < float("inf"):
            raise bad("gpu", text, "custom size must be a positive number of GiB", "Write e.g. gpu=custom:24")
        gpu = custom_gpu(memory_gib)
        return GpuMatch(gpu.name, gpu, None)
    by_norm = {_norm(k): k for k in GPUS}
    if _norm(text) in by_norm:  # a key as written, also of a preset that has no GPU_NAMES entry
        key = by_norm[_norm(text)]
        return GpuMatch(key, GPUS[key], None)
    model, memory_gb = read_gpu_name(text)
    sizes = GPU_NAMES.get(model) or ({0: by_norm[model]} if model in by_norm else None)
    if not sizes:
        raise _unknown(text, model)
    if memory_gb is None or 0 in sizes:
        key = next(iter(sizes.values()))
    elif memory_gb in sizes:
        key = sizes[memory_gb]
    else:
        known = " or ".join(f"{k} ({gb} GB)" for gb, k in sizes.items())
        raise bad(
            "gpu",
            text,
            f"no {memory_gb} GB variant of this card among the presets",
            f"Use {known}, or custom:{memory_gb} for a {memory_gb} GB card",
        )
    note = None
    if memory_gb is None and len(sizes) > 1:
        others = " or ".join(f"{k} for the {gb} GB card" for gb, k in sizes.items() if k != key)
        note = (
            f"{text!r} comes in {' and '.join(f'{gb} GB' for gb in sizes)}; taking {key} ({GPUS[key].name}), "
            f"the common one. Write {others}."
        )
    return GpuMatch(key, GPUS[key], note)


def get_gpu(name: str | Gpu) -> Gpu:
    """The preset resolve_gpu finds for `name` (see there for the names it reads); a Gpu is itself."""
    return name if isinstance(name, Gpu) else resolve_gpu(name).gpu


def gpu_from_device_name(device_name: str) -> Gpu | None:
    """Map torch.cuda.get_device_name() ('NVIDIA A100-SXM4-80GB', 'Tesla T4') to a preset, or None."""
    try:
        return resolve_gpu(device_name).gpu
    except FinegptError:
        return None


def detected_gpu_key(default: str = "T4") -> str:
    """The preset key of this machine's CUDA GPU (torch.cuda.get_device_name()), or `default` when
    there is no CUDA GPU or no preset matches it: the notebooks plan for the lab's T4 then."""
    import torch

    if not torch.cuda.is_available():
        return default
    try:
        return resolve_gpu(torch.cuda.get_device_name()).key
    except FinegptError:
        return default


def preset_key(gpu: Gpu) -> str:
    """The GPUS key of a preset, or the card's name for a custom one."""
    return next((k for k, g in GPUS.items() if g == gpu), gpu.name)
