"""Text generation over `GPT.generate`: prompt in, strings out; seeded, cached, checked settings.

Entry points: generate_text(model, tokenizer, prompt, ...) (safe to print: printable()), generate_tokens
(the ids, for exact bytes), load_for_sampling(ckpt=None, baseline=None, device='auto');
the defaults are finegpt.config.SAMPLING.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from finegpt.config import SAMPLING
from finegpt.errors import bad
from finegpt.step import pick_device


def check_sampling(
    max_new_tokens: int, temperature: float, top_k: int | None, top_p: float | None, num_samples: int = 1
) -> None:
    """One-line errors for settings generate() would misread or crash on."""
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or not 1 <= max_new_tokens <= 10**6:
        raise bad(
            "max_new_tokens", max_new_tokens, "must be an integer in [1, 1000000]", "Use e.g. --max_new_tokens 200"
        )
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or not 1 <= num_samples <= 10**4:
        raise bad("num_samples", num_samples, "must be an integer in [1, 10000]", "Use e.g. --num_samples 3")
    if not isinstance(temperature, (int, float)) or not 0 <= temperature < float("inf"):
        raise bad(
            "temperature",
            temperature,
            "must be a finite number >= 0",
            "Use 0 for greedy, 0.8 for focused text, 1.0 for the model's own distribution",
        )
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0):
        raise bad("top_k", top_k, "must be an integer >= 0", "Use e.g. 200, or 0 to switch top-k off")
    if top_p is not None and not (isinstance(top_p, (int, float)) and 0 < top_p <= 1):
        raise bad("top_p", top_p, "must be in (0, 1]", "Use e.g. 0.9, or 1.0 to switch top-p off")


@contextlib.contextmanager
def only_real_tokens(model, vocab_size: int):
    """Mask the padded vocab rows (e.g. 50257..50303) while generating: they are no token, can't be
    decoded, and an untrained or converted model may give them real probability."""
    if model.config.vocab_size <= vocab_size:
        yield
        return

    def mask(module, inputs, logits):
        logits[..., vocab_size:] = float("-inf")
        return logits

    handle = model.lm_head.register_forward_hook(mask)
    try:
        yield
    finally:
        handle.remove()


# C0 controls but newline and tab, DEL, and the C1 controls: shown as \x1b, not sent to the terminal, where
# ESC starts an escape sequence and NUL makes grep call the log binary
_VISIBLE = {c: f"\\x{c:02x}" for c in [*range(0x20), *range(0x7F, 0xA0)] if c not in (0x09, 0x0A)}


def printable(text: str) -> str:
    """text with every control character but newline and tab written out visibly ('\\x1b', '\\x00'), so
    printing it can't move the cursor, recolour or reset a terminal or a notebook's output."""
    return text.translate(_VISIBLE)


def generate_tokens(
    model,
    tokenizer,
    prompt: str = "",
    max_new_tokens: int = SAMPLING["max_new_tokens"],
    temperature: float = SAMPLING["temperature"],
    top_k: int | None = SAMPLING["top_k"],
    top_p: float | None = SAMPLING["top_p"],
    seed: int | None = SAMPLING["seed"],
    use_cache: bool = True,
    num_samples: int = 1,
    sampler=None,
) -> list[list[int]]:
    """num_samples continuations of prompt as token ids, each with the prompt's ids in front. An empty
    prompt starts from the end-of-text token, as documents do in the shards, and that token is left out.
    temperature=0 is greedy; the same seed and settings give the same ids. sampler: GPT.generate's."""
    check_sampling(max_new_tokens, temperature, top_k, top_p, num_samples)
    device = next(model.parameters()).device
    start = tokenizer.encode(prompt) if prompt else [tokenizer.eot]
    idx = torch.tensor([start] * num_samples, dtype=torch.long, device=device)  # (num_samples, T)
    generator = None
    if seed is not None:
        generator = torch.Generator(device=device)
        generator.manual_seed(seed)
    was_training = model.training
    model.eval()
    try:
        with only_real_tokens(model, tokenizer.vocab_size):
            out = model.generate(
                idx,
                max_new_tokens,
                temperature=temperature,
                top_k=top_k or None,
                top_p=top_p,
                use_cache=use_cache,
                generator=generator,
                sampler=sampler,
            )
    finally:
        model.train(was_training)
    keep = len(start) if not prompt else 0  # drop the start token, keep a real prompt
    return [row[keep:] for row in out.tolist()]


def generate_text(
    model,
    tokenizer,
    prompt: str = "",
    max_new_tokens: int = SAMPLING["max_new_tokens"],
    temperature: float = SAMPLING["temperature"],
    top_k: int | None = SAMPLING["top_k"],
    top_p: float | None = SAMPLING["top_p"],
    seed: int | None = SAMPLING["seed"],
    use_cache: bool = True,
    num_samples: int = 1,
    raw: bool = False,
    sampler=None,
) -> list[str]:
    """generate_tokens(...) decoded, each with the prompt in front: invalid UTF-8 as U+FFFD and, unless
    raw=True, control characters written out visibly (printable), so the text is safe to print."""
    rows = generate_tokens(
        model, tokenizer, prompt, max_new_tokens, temperature, top_k, top_p, seed, use_cache, num_samples, sampler
    )
    texts = [tokenizer.decode(ids) for ids in rows]
    return texts if raw else [printable(text) for text in texts]


def load_for_sampling(ckpt: str | Path | None = None, baseline: str | None = None, device: str = "auto"):
    """(GPT, tokenizer, label) from a checkpoint (file or out dir) or a GPT-2 baseline name/dir."""
    from finegpt.data import get_tokenizer

    device = pick_device(device)
    if baseline:
        from finegpt.eval import load_gpt2

        return load_gpt2(baseline, device=device), get_tokenizer("gpt2"), baseline
    from finegpt.train import load_model

    model, checkpoint = load_model(ckpt, device)
    return model, get_tokenizer(checkpoint["data"]["tokenizer"]), str(ckpt)


def read_prompt(prompt: str) -> str:
    """nanoGPT's convention: 'FILE:prompt.txt' reads the prompt from a file. The prompt must be UTF-8 text:
    a byte that is not (a latin-1 file, a terminal in another encoding) is named, with its position."""
    fix = "Give the prompt as UTF-8 text, e.g. re-encode the file with `iconv -f latin1 -t utf-8`"
    if prompt.startswith("FILE:"):
        path = Path(prompt[5:])
        if not path.is_file():
            raise bad("prompt", prompt, "no such file", "Check the path after FILE:")
        raw = path.read_bytes()
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise bad("prompt", prompt, f"byte 0x{raw[e.start]:02x} at offset {e.start} is not UTF-8", fix) from None
    try:
        prompt.encode("utf-8")  # a non-UTF-8 byte in argv arrives as a lone surrogate (surrogateescape)
    except UnicodeEncodeError as e:
        shown = prompt.encode("utf-8", "surrogateescape")
        byte = ord(prompt[e.start]) - 0xDC00 if 0xDC80 <= ord(prompt[e.start]) <= 0xDCFF else None
        what = f"byte 0x{byte:02x}" if byte is not None else "a lone surrogate"
        raise bad(
            "prompt", shown.decode("utf-8", "replace"), f"{what} at character {e.start} is not UTF-8", fix
        ) from None
    return prompt
