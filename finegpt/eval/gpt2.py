"""OpenAI's GPT-2 weights (via Hugging Face `transformers`) in finegpt's GPT, as a baseline.

Entry point: load_gpt2("gpt2" | "gpt2-medium" | "gpt2-large" | "gpt2-xl" | local_dir, device).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from finegpt.config import ModelConfig, padded_vocab
from finegpt.errors import bad
from finegpt.model import GPT

# (n_layer, n_head, n_embd); all have block_size 1024 and vocab 50257
GPT2_SIZES = {
    "gpt2": (12, 12, 768),  # 124M
    "gpt2-medium": (24, 16, 1024),  # 350M
    "gpt2-large": (36, 20, 1280),  # 774M
    "gpt2-xl": (48, 25, 1600),  # 1558M
}
# HF's Conv1D stores weights as (in, out); nn.Linear wants (out, in)
TRANSPOSED = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def check_baseline(name: str) -> None:
    if name not in GPT2_SIZES and not Path(name).is_dir():
        raise bad(
            "baseline",
            name,
            "is not a GPT-2 model",
            f"Use one of {', '.join(GPT2_SIZES)}, or a directory written by save_pretrained",
        )


def _hf_model(name: str):
    check_baseline(name)
    try:
        from transformers import GPT2LMHeadModel  # lazy: an optional dependency
    except ImportError as e:
        raise bad(
            "baseline",
            name,
            "needs the transformers package",
            "Install it with `pip install transformers` (or `pip install finegpt[extras]`)",
        ) from e
    try:
        return GPT2LMHeadModel.from_pretrained(name)
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0].rstrip(".") if str(e).strip() else type(e).__name__
        raise bad(
            "baseline",
            name,
            f"could not load the weights ({first})",
            "Go online once so Hugging Face caches them, or pass a directory written by save_pretrained",
        ) from e


def load_gpt2(name: str = "gpt2", device="cpu") -> GPT:
    """GPT-2 as a finegpt GPT in eval mode. The vocab is padded from 50257 to a multiple of 64
    (50304) as finegpt's models are; the padded rows are the mean token embedding, so each padded
    logit equals the mean real logit and, by Jensen's inequality, gets at most 1/50257 of the mass.
    Evaluation and sampling ignore them exactly."""
    hf = _hf_model(name)
    c = hf.config
    if c.activation_function not in ("gelu_new", "gelu_pytorch_tanh", "gelu"):
        raise bad(
            "baseline", name, f"uses activation {c.activation_function!r}", "Use an OpenAI GPT-2 checkpoint (gelu_new)"
        )
    cfg = ModelConfig(
        n_layer=c.n_layer,
        n_head=c.n_head,
        n_embd=c.n_embd,
        block_size=c.n_positions,
        vocab_size=padded_vocab(c.vocab_size),
        dropout=0.0,
        bias=True,
    )
    model = GPT(cfg)
    if c.activation_function != "gelu":  # GPT-2 used the tanh approximation of GELU
        for block in model.transformer.h:
            block.mlp.gelu = nn.GELU(approximate="tanh")

    ours = model.state_dict()
    with torch.no_grad():
        for key, value in hf.state_dict().items():
            if key.endswith((".attn.bias", ".attn.masked_bias")) or key == "lm_head.weight":
                continue  # causal-mask buffers in older transformers; the head is tied to wte
            if key.endswith(TRANSPOSED):
                value = value.t()
            if key == "transformer.wte.weight":
                padded = value.mean(dim=0, keepdim=True).expand(cfg.vocab_size - value.size(0), -1)
                value = torch.cat([value, padded])  # (50304, C)
            if ours[key].shape != value.shape:
                raise bad(
                    "baseline",
                    name,
                    f"{key} has shape {tuple(value.shape)}, expected {tuple(ours[key].shape)}",
                    "Use an OpenAI GPT-2 checkpoint",
                )
            ours[key].copy_(value)
    del hf
    return model.to(device).eval()
