"""Decoding speed by attention kernel on a CUDA GPU: GPT-2 124M, batch 1, greedy, with and without cuDNN's
SDPA kernel, with and without the KV cache, in fp32 and bf16.

    python bench/decode_backends.py        # on a CUDA machine; prints the table

cuDNN's attention builds a plan for every new sequence length, and decoding changes the length at every
token; finegpt.model.GPT.generate therefore runs with DECODE_BACKENDS (no cuDNN). This bench shows why.
"""

from __future__ import annotations

import sys
import time

import torch
from torch.nn.attention import SDPBackend

from finegpt.config import ModelConfig
from finegpt.model import GPT

NEW_TOKENS = 96
KERNELS = {  # what generate may pick from: PyTorch's default set, and finegpt's
    "cuDNN, flash, efficient, math (PyTorch's default)": [
        SDPBackend.CUDNN_ATTENTION,
        SDPBackend.FLASH_ATTENTION,
        SDPBackend.EFFICIENT_ATTENTION,
        SDPBackend.MATH,
    ],
    "flash, efficient, math (finegpt's DECODE_BACKENDS)": [
        SDPBackend.FLASH_ATTENTION,
        SDPBackend.EFFICIENT_ATTENTION,
        SDPBackend.MATH,
    ],
}


def tokens_per_s(model, idx, use_cache: bool, backends) -> float:
    import finegpt.model as model_module

    model_module.DECODE_BACKENDS = backends  # generate enters sdpa_kernel(DECODE_BACKENDS)
    model.generate(idx, 4, temperature=0, use_cache=use_cache)  # warm-up: allocations, kernels
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    model.generate(idx, NEW_TOKENS, temperature=0, use_cache=use_cache)
    torch.cuda.synchronize()
    return NEW_TOKENS / (time.perf_counter() - t0)


def main() -> int:
    if not torch.cuda.is_available():
        print("decode_backends: needs a CUDA GPU; nothing measured")
        return 0
    import finegpt.model as model_module

    default = model_module.DECODE_BACKENDS
    torch.manual_seed(0)
    cfg = ModelConfig(n_layer=12, n_head=12, n_embd=768, block_size=1024, vocab_size=50304, bias=False)
    model = GPT(cfg).cuda().eval()
    idx = torch.tensor([[1000]], device="cuda")
    print(
        f"{torch.cuda.get_device_name()}, torch {torch.__version__}: GPT-2 124M, batch 1, greedy, "
        f"{NEW_TOKENS} new tokens\n"
    )
    print("| weights | kernels | KV cache tokens/s | full recompute tokens/s |\n|---|---|---:|---:|")
    try:
        for dtype in (torch.float32, torch.bfloat16):
            model.to(dtype)
            for label, backends in KERNELS.items():
                cached, full = (tokens_per_s(model, idx, c, backends) for c in (True, False))
                print(f"| {str(dtype).removeprefix('torch.')} | {label} | {cached:,.1f} | {full:,.1f} |", flush=True)
    finally:
        model_module.DECODE_BACKENDS = default
    return 0


if __name__ == "__main__":
    sys.exit(main())
