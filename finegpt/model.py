"""The GPT: nanoGPT's model with a KV cache for generation, and exact parameter counts.

Reads bottom-up like nanoGPT: LayerNorm -> CausalSelfAttention -> MLP -> Block -> GPT.
Entry points: GPT, sample_next (top_k_logits, top_p_logits); param_breakdown and count_params (finegpt.config's).
"""

from __future__ import annotations

import inspect
import math

import torch
import torch.nn as nn
from torch.nn import functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.checkpoint import checkpoint

from finegpt.config import ModelConfig, count_params, param_breakdown  # noqa: F401 (counted from the config alone)

# ---- the model ------------------------------------------------------------------------------


class LayerNorm(nn.Module):
    """LayerNorm with an optional bias (PyTorch's has no bias=False before 2.1)."""

    def __init__(self, ndim: int, bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class KVCache:
    """Keys and values of one layer for generation: (B, H, block_size, hs), filled up to `pos`."""

    def __init__(self, B: int, H: int, max_T: int, hs: int, device, dtype):
        self.k = torch.zeros(B, H, max_T, hs, device=device, dtype=dtype)
        self.v = torch.zeros(B, H, max_T, hs, device=device, dtype=dtype)
        self.pos = 0

    def append(self, k, v):
        T = k.size(2)
        self.k[:, :, self.pos : self.pos + T] = k
        self.v[:, :, self.pos : self.pos + T] = v
        self.pos += T
        return self.k[:, :, : self.pos], self.v[:, :, : self.pos]


class CausalSelfAttention(nn.Module):
    def __init__(self, config: ModelConfig, attention: str = "flash"):
        super().__init__()
        assert config.n_embd % config.n_head == 0
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # q, k, v at once
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.dropout = config.dropout
        self.attention = attention  # 'flash': fused SDPA, no T x T matrix; 'math': the explicit softmax
        if attention == "math":
            mask = torch.tril(torch.ones(config.block_size, config.block_size, dtype=torch.bool))
            self.register_buffer("mask", mask.view(1, 1, config.block_size, config.block_size), persistent=False)

    def forward(self, x, cache: KVCache | None = None):
        B, T, C = x.size()  # batch, sequence length, n_embd
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)  # 3 x (B, T, C)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, H, T, hs)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, H, T, hs)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, H, T, hs)
        past = 0
        if cache is not None:
            past = cache.pos
            k, v = cache.append(k, v)  # (B, H, past + T, hs)
        if self.attention == "flash" or cache is not None:
            if past == 0:
                mask, causal = None, True
            elif T == 1:
                mask, causal = None, False  # one new query may see every cached key
            else:  # a chunk after a prefix: query i sees keys up to past + i
                mask = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(diagonal=past)
                causal = False
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, is_causal=causal, dropout_p=self.dropout if self.training else 0.0
            )
        else:
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))  # (B, H, T, T)
            att = att.masked_fill(~self.mask[:, :, :T, :T], float("-inf"))
            att = self.attn_dropout(F.softmax(att, dim=-1))
            y = att @ v  # (B, H, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # re-assemble heads: (B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))  # (B, T, C) -> (B, T, 4C) -> (B, T, C)


class Block(nn.Module):
    """Pre-LN transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, config: ModelConfig, attention: str = "flash"):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config, attention)
        self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x, cache: KVCache | None = None):
        x = x + self.attn(self.ln_1(x), cache)
        x = x + self.mlp(self.ln_2(x))
        return x


# Attention kernels for generation. cuDNN's is left out: it plans anew for every sequence length, and decoding
# changes the length at every token. GPT-2 124M in bf16 on an H200 decoded 12.3 tokens/s with it and 207
# without (python bench/decode_backends.py, docs/gpu_results.md); training's fixed shapes keep every kernel.
DECODE_BACKENDS = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]


class GPT(nn.Module):
    def __init__(self, config: ModelConfig, attention: str = "flash"):
        super().__init__()
        if attention not in ("flash", "math"):
            raise ValueError(f"attention={attention!r}: not supported. Use 'flash' or 'math'.")
        self.config = config
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, config.n_embd),
                wpe=nn.Embedding(config.block_size, config.n_embd),
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList([Block(config, attention) for _ in range(config.n_layer)]),
                ln_f=LayerNorm(config.n_embd, bias=config.bias),
            )
        )
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # weight tying, as GPT-2
        self.activation_checkpointing = False  # recompute each block in backward to save memory
        self.loss_chunks = 0  # >= 1: the loss in that many chunks of tokens, each chunk's logits recomputed in backward

        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2: residual projections scaled by 1/sqrt(2L)
            if name.endswith("c_proj.weight"):
                torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def get_num_params(self, non_embedding: bool = True) -> int:
        """Counted from the tensors; equals count_params(config) (tests check both)."""
        n_params = sum(p.numel() for p in self.parameters())
        return n_params - (self.transformer.wpe.weight.numel() if non_embedding else 0)

    def forward(self, idx, targets=None, caches: list[KVCache] | None = None, last_only: bool = False):
        """idx (B, T) token ids -> logits (B, T, V), or (B, 1, V) with last_only; loss with targets."""
        B, T = idx.size()
        past = caches[0].pos if caches else 0
        if past + T > self.config.block_size:
            raise ValueError(
                f"sequence length {past + T} > block_size={self.config.block_size}. "
                f"Crop the input to the last {self.config.block_size} tokens."
            )
        pos = torch.arange(past, past + T, dtype=torch.long, device=idx.device)  # (T,)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))  # (B, T, C)
        for i, block in enumerate(self.transformer.h):
            if self.activation_checkpointing and self.training and caches is None:
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x, caches[i] if caches else None)
        x = self.transformer.ln_f(x)
        if targets is not None and self.loss_chunks:
            return None, self.chunked_loss(x, targets)  # no (B, T, V) logits are ever held
        if targets is not None:
            logits = self.lm_head(x)  # (B, T, V)
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
            return logits, loss
        if last_only:
            x = x[:, [-1], :]  # (B, 1, C): generation needs only the next token's logits
        return self.lm_head(x), None

    def _loss_sum(self, x, targets):
        logits = self.lm_head(x)  # (n_chunk, V): the only logits alive, in forward and again in backward
        return F.cross_entropy(logits, targets, ignore_index=-1, reduction="sum")

    @torch.compiler.disable  # inductor would run every chunk's matmul before their reductions: all logits at once
    def chunked_loss(self, x, targets):
        """The mean cross-entropy of x (B, T, C) after ln_f against targets (B, T), computed loss_chunks
        chunks of tokens at a time. With grad, each chunk is checkpointed: backward recomputes its logits
        instead of keeping them, so no more than one chunk's (n / loss_chunks, V) logits are ever alive.
        Equals F.cross_entropy over the full logits (tests/test_chunked_loss.py); llm.c fuses the classifier
        for the same reason."""
        x, targets = x.view(-1, x.size(-1)), targets.view(-1)  # (n, C), (n,)
        size = -(-x.size(0) // self.loss_chunks)  # tokens per chunk; the last one may be shorter
        total = 0.0
        for x_c, y_c in zip(x.split(size), targets.split(size)):
            if torch.is_grad_enabled():
                total = total + checkpoint(self._loss_sum, x_c, y_c, use_reentrant=False)
            else:
                total = total + self._loss_sum(x_c, y_c)
        return total / (targets != -1).sum()  # the mean over the tokens that count, as ignore_index=-1 does

    def configure_optimizers(
        self, weight_decay: float, learning_rate: float, betas, device_type: str, fused: bool | None = None
    ):
        """AdamW with nanoGPT's groups: 2-D tensors (matmuls, embeddings) decay, biases and norms don't.
        fused=None uses the fused kernel where this PyTorch has one for the device."""
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
        if fused is None:
            fused = "fused" in inspect.signature(torch.optim.AdamW).parameters and device_type in ("cuda", "cpu")
        kind = {"fused": True} if fused else {"foreach": True}  # foreach: one kernel per op, 4N bytes of temporaries
        return torch.optim.AdamW(groups, lr=learning_rate, betas=tuple(betas), **kind)

    def new_caches(self, batch_size: int, device, dtype) -> list[KVCache]:
        C, H = self.config.n_embd, self.config.n_head
        return [KVCache(batch_size, H, self.config.block_size, C // H, device, dtype) for _ in self.transformer.h]

    @torch.no_grad()
    def generate(
        self,
        idx,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        use_cache: bool = True,
        generator: torch.Generator | None = None,
        sampler=None,
    ):
        """Append max_new_tokens to idx (B, T). temperature=0 is greedy. With use_cache the keys and
        values of earlier tokens are kept, so each step runs one token through the model instead of
        the whole context. Past block_size, both paths see the same last-block_size-token window.
        sampler: a function with sample_next's arguments to draw each token (05 passes the student's)."""
        bs = self.config.block_size
        caches = None
        with sdpa_kernel(DECODE_BACKENDS):
            for _ in range(max_new_tokens):
                if not use_cache:
                    logits, _ = self(idx[:, -bs:], last_only=True)
                elif caches is None or caches[0].pos >= bs:  # (re)fill: the whole window at once
                    caches = self.new_caches(idx.size(0), idx.device, self.lm_head.weight.dtype)
                    logits, _ = self(idx[:, -bs:], caches=caches, last_only=True)
                else:
                    logits, _ = self(idx[:, -1:], caches=caches, last_only=True)
                idx_next = (sampler or sample_next)(logits[:, -1, :], temperature, top_k, top_p, generator)  # (B, 1)
                idx = torch.cat((idx, idx_next), dim=1)
        return idx


def sample_next(
    logits,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
):
    """logits (B, V) -> next ids (B, 1). Order as in HF: temperature, then top-k, then top-p."""
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits.float() / temperature
    if top_k is not None and top_k > 0:
        logits = top_k_logits(logits, top_k)
    if top_p is not None and top_p < 1.0:
        logits = top_p_logits(logits, top_p)
    probs = F.softmax(logits, dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator)


def top_k_logits(logits, top_k: int):
    """logits (B, V) -> a copy with -inf below each row's k-th largest: only the k most likely stay."""
    v, _ = torch.topk(logits, min(top_k, logits.size(-1)))  # (B, k), sorted
    return logits.masked_fill(logits < v[:, [-1]], float("-inf"))


def top_p_logits(logits, top_p: float):
    """logits (B, V) -> a copy with -inf outside each row's nucleus: the smallest set of most likely
    tokens whose probability reaches top_p (the most likely token always stays)."""
    sorted_logits, order = torch.sort(logits, descending=True)  # (B, V)
    probs = sorted_logits.softmax(dim=-1)
    drop = probs.cumsum(dim=-1) - probs > top_p  # the mass before a token already reaches top_p
    sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
    return torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
