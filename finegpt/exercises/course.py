"""Exercises whose answers the course goes on to use, and open tasks with a measurable goal.

02: check_attention_module(MyCausalSelfAttention): your attention function inside nanoGPT's module.
05: check_cached_forward(cached_forward): the model's forward for new tokens after a KV cache, at model
    level, where the position embedding needs the cache's offset.
Open tasks, each judged by a number: check_block_size_task (03), check_one_setting_task (04),
check_sampling_task (05).
"""

from __future__ import annotations

from dataclasses import fields

import torch
from torch.nn import functional as F

from finegpt.config import ModelConfig
from finegpt.exercises.check import Hint, checker, close, match, same_shape, student, tensor

B, T = 2, 5  # batch, tokens

# ---- 2.5 the attention module ------------------------------------------------------------------------

ATTN_CFG = ModelConfig(n_layer=1, n_head=4, n_embd=32, block_size=16, vocab_size=64, dropout=0.0, bias=True)


@checker("causal self-attention module")
def check_attention_module(AttentionClass):
    from finegpt.model import CausalSelfAttention

    cfg = ATTN_CFG
    H, C = cfg.n_head, cfg.n_embd
    torch.manual_seed(0)
    ref, mine = CausalSelfAttention(cfg).eval(), student(AttentionClass, cfg)
    want_names = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    got_names = {k: tuple(v.shape) for k, v in mine.state_dict().items()}
    if got_names != want_names:
        raise Hint(
            f"its weights should be nanoGPT's, {want_names}, got {got_names}: c_attn = nn.Linear(C, 3 * C), "
            f"c_proj = nn.Linear(C, C), both with bias=config.bias, and a mask buffer with persistent=False"
        )
    mine.load_state_dict(ref.state_dict())
    mine.eval()
    x = torch.randn(B, T, C, generator=torch.Generator().manual_seed(1))  # (B, T, C)
    with torch.no_grad():
        y = tensor("the output", student(mine, x))
        same_shape("the output", y.shape, (B, T, C), "B, T, C")
        want = ref(x)
        if close(y, want, atol=1e-5):
            return "q, k, v from c_attn, split into heads, your attention, heads merged, c_proj: equal to finegpt's"
        q, k, v = ref.c_attn(x).split(C, dim=2)  # 3 x (B, T, C)
        heads = lambda t: t.view(B, T, H, C // H).transpose(1, 2)  # noqa: E731 - (B, H, T, hs)
        merge = lambda t: t.transpose(1, 2).contiguous().view(B, T, C)  # noqa: E731
        sdpa = lambda a, b, c: F.scaled_dot_product_attention(a, b, c, is_causal=True)  # noqa: E731
        flat = lambda t: t.view(B, T, H, C // H)  # noqa: E731 - heads not moved in front of time
        match(
            y,
            {
                "the heads' output still needs c_proj: return self.c_proj(y)": merge(
                    sdpa(heads(q), heads(k), heads(v))
                ),
                "q, k and v come out of c_attn in that order: q, k, v = self.c_attn(x).split(C, dim=2)": ref.c_proj(
                    merge(sdpa(heads(k), heads(q), heads(v)))
                ),
                "the heads were not moved in front of time: view(B, T, H, hs).transpose(1, 2) gives (B, H, T, hs), "
                "so attention runs over time within each head": ref.c_proj(
                    sdpa(flat(q), flat(k), flat(v)).reshape(B, T, C)
                ),
                "the heads are merged without moving time back in front: y.transpose(1, 2).contiguous()"
                ".view(B, T, C)": (ref.c_proj(sdpa(heads(q), heads(k), heads(v)).reshape(B, T, C))),
                "one head of width C is not what the config asks: split C into n_head heads of C // n_head": ref.c_proj(
                    sdpa(q[:, None], k[:, None], v[:, None])[:, 0]
                ),
            },
        )
        raise Hint(f"the output differs from finegpt's CausalSelfAttention by up to {(y - want).abs().max():.3g}")


# ---- 5.3 the model's forward with a KV cache -----------------------------------------------------

KV_CFG = ModelConfig(n_layer=2, n_head=2, n_embd=16, block_size=16, vocab_size=48, dropout=0.0, bias=True)
PROMPT = 5  # tokens already in the cache


def _model():
    from finegpt.model import GPT

    class OwnForwardOnly(GPT):
        """finegpt's GPT whose own forward is off: the exercise is to write it from the model's parts."""

        def forward(self, *args, **kwargs):
            raise Hint(
                "model(...) is the answer itself: write the forward from the model's parts (model.transformer.wte, "
                "wpe, h, ln_f and model.lm_head)"
            )

    torch.manual_seed(0)
    model = OwnForwardOnly(KV_CFG).eval()
    with torch.no_grad():
        for p in model.transformer.wpe.parameters():  # positions that matter, so a wrong one shows
            p.normal_(0.0, 1.0)
    return model


def _filled(model, prompt):
    """Fresh caches holding the prompt, filled by finegpt's own forward."""
    from finegpt.model import GPT

    caches = model.new_caches(prompt.size(0), "cpu", torch.float32)
    GPT.forward(model, prompt, caches=caches)
    return caches


def _forward(model, idx, caches, start, layer_caches="each", norm=True):
    """The model's forward for idx after the cache, with positions from `start` (the right one: caches[0].pos)."""
    pos = torch.arange(start, start + idx.size(1))  # (T,)
    x = model.transformer.drop(model.transformer.wte(idx) + model.transformer.wpe(pos))  # (B, T, C)
    for i, block in enumerate(model.transformer.h):
        cache = {"each": caches[i], "first": caches[0], "none": None}[layer_caches]
        x = block(x, cache)
    return model.lm_head(model.transformer.ln_f(x) if norm else x)  # (B, T, V)


@checker("the model's forward with a KV cache")
def check_cached_forward(cached_forward):
    from finegpt.model import GPT

    model = _model()
    idx = torch.randint(0, KV_CFG.vocab_size, (B, PROMPT + 3), generator=torch.Generator().manual_seed(2))
    prompt = idx[:, :PROMPT]
    with torch.no_grad():
        for new in (idx[:, PROMPT:], idx[:, PROMPT : PROMPT + 1]):  # a chunk of 3, then a single token
            n = new.size(1)
            want = GPT.forward(model, torch.cat([prompt, new], 1))[0][:, PROMPT:]  # (B, n, V): full recompute
            caches = _filled(model, prompt)
            mine = student(cached_forward, model, new.clone(), caches, shared=(0, 2))  # the caches grow in place
            got = tensor("the logits", mine)
            if got.shape == (B, 1, KV_CFG.vocab_size) and n > 1:
                raise Hint("return the logits of every new token, (B, T, V), not only the last one")
            same_shape("the logits", got.shape, (B, n, KV_CFG.vocab_size), "B, T, V")
            if close(got, want, atol=1e-4):
                if any(c.pos != PROMPT + n for c in caches):
                    raise Hint(
                        f"the logits are right but the caches hold {[c.pos for c in caches]} positions, not "
                        f"{PROMPT + n}: pass each block its own cache, block(x, caches[i]), so the next step sees "
                        f"these tokens"
                    )
                continue
            mistakes = {
                f"the position embedding ignores the cache: the new tokens sit at positions {PROMPT}.."
                f"{PROMPT + n - 1}, not 0..{n - 1}. Start the positions at the cache's offset, "
                "torch.arange(past, past + T) with past = caches[0].pos": dict(start=0),
                f"positions are one too far: the first new token sits at position past = {PROMPT} (0-based), "
                "so torch.arange(past, past + T)": dict(start=PROMPT + 1),
                "the offset was read after a block had appended to the cache (pos had moved on): read "
                "past = caches[0].pos before the blocks run": dict(start=PROMPT + n),
                "every block got the first layer's cache: each layer keeps its own keys and values, "
                "block(x, caches[i])": dict(layer_caches="first"),
                "the blocks ran without their caches, so the new tokens cannot see the prompt: "
                "block(x, caches[i])": dict(layer_caches="none"),
                "without the cache and without the offset the new tokens are a text of their own: pass "
                "block(x, caches[i]) and start positions at caches[0].pos": dict(layer_caches="none", start=0),
                "the final LayerNorm is missing: logits = model.lm_head(model.transformer.ln_f(x))": dict(norm=False),
            }
            outputs = {}
            for hint, how in mistakes.items():
                outputs[hint] = _forward(model, new, _filled(model, prompt), **{"start": PROMPT, **how})
            match(got, outputs, atol=1e-4)
            worst = (got - want).abs().amax(dim=(0, 2))  # per new token
            raise Hint(
                f"the logits of new token {int((worst > 1e-4).nonzero()[0])} (of {n}, after a prompt of {PROMPT}) "
                f"differ from a full recompute by up to {worst.max():.3g}"
            )
    return "positions from the cache's offset, each block with its own cache: equal to recomputing the whole text"


# ---- open tasks ------------------------------------------------------------------------------------


def _report(title: str, judge, *args) -> None:
    """Print ✓ / ✗ / not attempted for an open task, like the checkers (and, like them, return nothing)."""
    try:
        note = judge(*args)
    except Hint as hint:
        print(f"✗ {title}: {hint}")
        return
    if note is None:
        print(f"… {title}: not attempted yet: set your answer, then run this cell")
        return
    print(f"✓ {title}: {note}")


def largest_block_size(model: dict, batch_size: int, gpu: str, step: int = 64, limit: int = 8192) -> int:
    """The largest multiple of `step` for block_size at which finegpt.memory says the run fits the GPU."""
    from finegpt import memory as M

    def fits(t: int) -> bool:
        cfg = ModelConfig(**{**model, "block_size": t})
        return M.fits(cfg, M.RunConfig(batch_size=batch_size, dtype=M.best_dtype(gpu), gpu=gpu), gpu)

    best = 0
    for t in range(step, limit + 1, step):
        if not fits(t):
            break
        best = t
    return best


def check_block_size_task(block_size, model: dict, batch_size: int, gpu: str = "T4") -> None:
    """03: the largest block_size (a multiple of 64) at which `model` fits `gpu` at batch_size."""

    def judge(b):
        if b is None:
            return None
        if not isinstance(b, int) or b % 64:
            raise Hint(f"block_size={b!r}: give a whole multiple of 64, as the calculator's slider steps")
        best = largest_block_size(model, batch_size, gpu)
        if b > best:
            raise Hint(f"block_size={b} does not fit: M.fits says no. Try smaller")
        if b < best:
            raise Hint(f"block_size={b} fits, and so does {b + 64}: try larger")
        return f"block_size={b} fits the {gpu} at batch_size={batch_size}, and {b + 64} does not"

    return _report("largest block_size", judge, block_size)


def check_one_setting_task(mine, base, result: dict | None, target: float) -> None:
    """04: a TrainConfig that differs from base in one setting (out_dir aside) and whose run (result, what
    train returned) ended with a val loss below target."""

    def judge(cfg):
        if cfg is None:
            return None
        changed = [
            f.name for f in fields(base) if f.name != "out_dir" and getattr(cfg, f.name) != getattr(base, f.name)
        ]
        if len(changed) != 1:
            raise Hint(f"change exactly one setting; you changed {changed or 'none'}")
        if result is None:
            raise Hint(f"you changed {changed[0]}: now train with it and pass what train returned")
        loss = result["final_val_loss"]
        if not loss < target:
            raise Hint(
                f"{changed[0]}={getattr(cfg, changed[0])!r} ended at val loss {loss:.4f}, not below {target:.4f}"
            )
        return f"{changed[0]}={getattr(cfg, changed[0])!r}: val loss {loss:.4f} < {target:.4f}"

    return _report("one setting, a lower loss", judge, mine)


def check_sampling_task(settings: dict | None, model, tokenizer, prompt: str, score, max_new_tokens: int,
                        defaults: dict, sampler=None, gain: float = 0.05) -> None:  # fmt: skip
    """05: one sampling setting changed from `defaults` that raises score(the sample's text after the prompt),
    its share of real words (finegpt.lab.real_word_share), by `gain` (or to at least 0.98) at the same seed."""
    from finegpt.sample import generate_text

    def share(s: dict) -> float:
        text = generate_text(model, tokenizer, prompt, max_new_tokens=max_new_tokens, sampler=sampler, **s)[0]
        return score(text[len(prompt) :])

    def judge(s):
        if s is None:
            return None
        changed = [k for k in s if s[k] != defaults.get(k)]
        if len(changed) != 1 or set(s) - set(defaults):
            raise Hint(f"change one of {sorted(defaults)}; you changed {changed or 'none'}")
        if s.get("temperature", 1) == 0:
            raise Hint("temperature 0 is greedy decoding, not sampling: pick a temperature above 0")
        base, got = share(defaults), share({**defaults, **s})
        goal = min(base + gain, 0.98)
        if got < goal:
            raise Hint(
                f"{changed[0]}={s[changed[0]]!r}: {got:.0%} real words, the defaults {base:.0%}; aim for {goal:.0%}"
            )
        return f"{changed[0]}={s[changed[0]]!r}: {got:.0%} real words against {base:.0%} at the defaults"

    return _report("more real words, one setting", judge, settings)
