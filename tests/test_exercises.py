"""finegpt.exercises: every worked solution passes its checker, each typical mistake (written below as a
small function) gets its own hint, a correct answer written another way passes too, and an unanswered
exercise says so without raising, so the notebooks run with their gaps open."""

import math
import re
import runpy
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from torch.nn import functional as F

from finegpt import exercises as ex
from finegpt.data.shards import make_header
from finegpt.model import GPT, MLP, CausalSelfAttention, LayerNorm, count_params
from finegpt.train import get_lr

SOLUTIONS = Path(__file__).resolve().parents[1] / "notebooks" / "solutions"
NOTEBOOKS = SOLUTIONS.parent
CHECKS = [name for name in ex.__all__ if name.startswith("check_")]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def verdict(capsys, check, answer) -> str:
    """The one line a check prints."""
    check(answer)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


# ---- the solutions ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(SOLUTIONS.glob("*.py")), ids=lambda p: p.stem)
def test_every_worked_solution_passes_its_checker(path, capsys):
    runpy.run_path(str(path))
    lines = [line for line in capsys.readouterr().out.strip().splitlines() if not line.startswith("finegpt ")]
    calls = re.findall(r"^check_\w+\(", path.read_text(), re.M)
    assert len(lines) == len(calls) >= 2 and all(line.startswith("✓ ") for line in lines), lines


@pytest.mark.parametrize("path", sorted(SOLUTIONS.glob("*.py")), ids=lambda p: p.stem)
def test_solution_notebooks_are_synced_pairs_that_show_their_checks_passing(path):
    import jupytext

    py, ipynb = jupytext.read(path), jupytext.read(path.with_suffix(".ipynb"))
    assert [(c.cell_type, c.source.strip()) for c in ipynb.cells] == [(c.cell_type, c.source.strip()) for c in py.cells]
    code = [c for c in ipynb.cells if c.cell_type == "code"]
    assert [c.get("execution_count") for c in code] == list(range(1, len(code) + 1))
    printed = "".join(o.get("text", "") for c in code for o in c.get("outputs", []))
    assert printed.count("✓ ") == len(re.findall(r"^check_\w+\(", path.read_text(), re.M))


def test_jupytext_sync_of_the_solutions_changes_nothing(tmp_path):
    import json
    import shutil
    import subprocess
    import sys

    for path in SOLUTIONS.iterdir():
        shutil.copy2(path, tmp_path)
    pys = sorted(str(p) for p in tmp_path.glob("*.py"))
    subprocess.run([sys.executable, "-m", "jupytext", "--sync", *pys], check=True, capture_output=True)
    for path in SOLUTIONS.glob("*.py"):
        assert (tmp_path / path.name).read_text() == path.read_text()
        ipynb = path.with_suffix(".ipynb")
        assert json.loads((tmp_path / ipynb.name).read_text()) == json.loads(ipynb.read_text())


def test_every_checker_has_a_solution_and_a_gap_in_a_notebook():
    solved = "".join(p.read_text() for p in SOLUTIONS.glob("*.py"))
    lessons = "".join(p.read_text() for p in NOTEBOOKS.glob("[0-9][0-9]_*.py"))
    assert len(CHECKS) >= 12
    for name in CHECKS:
        handed_in = f", {name}, paths" in lessons  # lab.hand_in(part, answer, check, paths) runs the check
        assert f"\n{name}(" in solved and (f"\n{name}(" in lessons or handed_in), name
    assert lessons.count("raise NotImplementedError  # your code here") >= len(CHECKS)


# ---- unanswered, or crashing --------------------------------------------------------------------


def _gap(*args):
    raise NotImplementedError  # your code here


class _GapClass(nn.Module):
    def __init__(self, config):
        super().__init__()
        raise NotImplementedError  # your code here


class _EllipsisForward(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x): ...


@pytest.mark.parametrize("name", CHECKS)
@pytest.mark.parametrize("gap", [_gap, lambda *args: ..., lambda *args: None], ids=["raise", "ellipsis", "none"])
def test_an_unanswered_exercise_says_not_attempted_and_never_raises(name, gap, capsys):
    assert verdict(capsys, getattr(ex, name), gap).endswith(ex.NOT_ATTEMPTED)


@pytest.mark.parametrize("check,gap", [(ex.check_mlp, _GapClass), (ex.check_block, _EllipsisForward)])
def test_an_unanswered_class_says_not_attempted(check, gap, capsys):
    assert verdict(capsys, check, gap).endswith("not attempted yet: write it, then run this cell")


def test_a_crash_in_the_students_code_is_reported_in_one_line(capsys):
    line = verdict(capsys, ex.check_top_k, lambda logits, k: logits @ logits)
    assert line.startswith("✗ top-k filter: your code raised RuntimeError:")


# ---- correct answers written another way --------------------------------------------------------


def _attention_by_sdpa(q, k, v):
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def _attention_by_tril(q, k, v):
    T = q.size(-2)
    w = (q @ k.transpose(-2, -1)) * k.size(-1) ** -0.5
    w = torch.where(torch.tril(torch.ones(T, T, dtype=torch.bool)), w, -torch.inf)
    return F.softmax(w, dim=-1) @ v


class _SequentialMLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        C = config.n_embd
        self.c_fc, self.c_proj = nn.Linear(C, 4 * C, bias=config.bias), nn.Linear(4 * C, C, bias=config.bias)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))  # GPT-2's original GELU


class _BlockWithNames(_EllipsisForward):
    def forward(self, x):
        attended = self.attn(self.ln_1(x))
        h = x + attended
        return h + self.mlp(self.ln_2(h))


def _params_from_meta_model(cfg):
    with torch.device("meta"):
        return sum(p.numel() for p in GPT(cfg).parameters())


def _header_with_struct(num_tokens, tokenizer):
    import struct

    name = tokenizer.name.encode()
    raw = struct.pack("<6i", 20240520, 1 if tokenizer.vocab_size <= 65536 else 2, num_tokens, tokenizer.vocab_size,
                      tokenizer.eot, len(name))  # fmt: skip
    raw = raw + bytes(8) + name
    return np.frombuffer(raw + bytes(1024 - len(raw)), dtype=np.int32)


def _reader_with_memmap(path):
    header = np.memmap(path, dtype=np.int32, mode="r", shape=(256,))
    dtype = {1: np.uint16, 2: np.uint32}[int(header[1])]
    return np.memmap(path, dtype=dtype, mode="r", offset=1024, shape=(int(header[2]),))


def _optimizer_bytes_by_formula(cfg, optimizer, dtype, adamw_moments=2, grads=True, temporaries=True, size=None):
    from finegpt.model import param_breakdown

    n, size = count_params(cfg, non_embedding=False), size or (2 if dtype == "pure_bf16" else 4)
    decayed = n - param_breakdown(cfg)["layernorm"] - cfg.n_layer * 9 * cfg.n_embd * cfg.bias
    states = {"adamw_fused": adamw_moments, "adamw_foreach": adamw_moments, "sgd_momentum": 1, "sgd": 0}[optimizer]
    temps = decayed if optimizer == "adamw_foreach" and temporaries else 0
    return size * ((1 + grads + states) * n + temps)


def _largest_by_halving(fits, limit=4096):
    lo, hi = 0, limit  # lo fits (or is 0), the answer is in [lo, hi]
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return lo


def _lr_with_min(it, cfg):
    if not cfg.decay_lr:
        return cfg.learning_rate
    if it < cfg.warmup_iters:
        return cfg.learning_rate * (it + 1) / (cfg.warmup_iters + 1)
    r = min(1.0, (it - cfg.warmup_iters) / (cfg.lr_decay_iters - cfg.warmup_iters))
    return cfg.min_lr + (cfg.learning_rate - cfg.min_lr) * (1 + math.cos(math.pi * r)) / 2


def _step_one_backward(model, optimizer, get_batch, gradient_accumulation_steps, grad_clip):
    loss = torch.stack([model(*get_batch(k))[1] for k in range(gradient_accumulation_steps)]).mean()
    loss.backward()  # one backward over the mean: the same gradients, more memory
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()


def _top_k_by_sort(logits, k):
    kth = logits.sort(dim=-1, descending=True).values[:, min(k, logits.size(-1)) - 1, None]
    return torch.where(logits >= kth, logits, torch.full_like(logits, float("-inf")))


def _top_p_row_by_row(logits, p):
    out = torch.full_like(logits, float("-inf"))
    for r, row in enumerate(logits):
        total = 0.0
        for i in row.argsort(descending=True).tolist():
            out[r, i] = row[i]
            total += row.softmax(-1)[i].item()
            if total >= p:
                break
    return out


def _decode_with_explicit_softmax(attn, x, past_k, past_v):
    B, _, C = x.shape
    q, k, v = (t.view(B, 1, attn.n_head, -1).transpose(1, 2) for t in attn.c_attn(x).split(C, dim=2))
    k, v = torch.cat((past_k, k), dim=2), torch.cat((past_v, v), dim=2)
    w = (q @ k.transpose(-2, -1) / math.sqrt(k.size(-1))).softmax(-1)  # (B, H, 1, P + 1)
    return attn.c_proj((w @ v).transpose(1, 2).reshape(B, 1, C)), k, v


@pytest.mark.parametrize(
    "check,answer",
    [
        (ex.check_causal_attention, _attention_by_sdpa),
        (ex.check_causal_attention, _attention_by_tril),
        (ex.check_mlp, _SequentialMLP),
        (ex.check_block, _BlockWithNames),
        (ex.check_param_count, _params_from_meta_model),
        (ex.check_shard_header, _header_with_struct),
        (ex.check_shard_reader, _reader_with_memmap),
        (
            ex.check_bytes_per_token,
            lambda texts, tok: sum(len(bytes(t, "utf-8")) for t in texts) / sum(len(tok.encode(t)) for t in texts),
        ),
        (ex.check_optimizer_step_bytes, _optimizer_bytes_by_formula),
        (
            ex.check_logits_bytes,
            lambda B, T, V, dtype: B * T * V * {"fp32": 16, "pure_bf16": 8}.get(dtype, 14),
        ),
        (ex.check_largest_batch, _largest_by_halving),
        (ex.check_lr_schedule, _lr_with_min),
        (ex.check_optimizer_step, _step_one_backward),
        (ex.check_top_k, _top_k_by_sort),
        (ex.check_top_p, _top_p_row_by_row),
        (ex.check_kv_decode_step, _decode_with_explicit_softmax),
    ],
    ids=lambda v: getattr(v, "__name__", ""),
)
def test_a_correct_answer_written_another_way_passes(check, answer, capsys):
    assert verdict(capsys, check, answer).startswith("✓ ")


# ---- typical mistakes, each with its own hint ---------------------------------------------------
# 01


def _header_version_always_1(num_tokens, tokenizer):
    header = make_header(num_tokens, tokenizer)
    header[1] = 1
    return header


def _header_vocab_and_eot_swapped(num_tokens, tokenizer):
    header = make_header(num_tokens, tokenizer)
    header[3], header[4] = header[4], header[3]
    return header


def _header_name_right_after_its_length(num_tokens, tokenizer):
    header = make_header(num_tokens, tokenizer)
    header[8:24] = 0
    name = tokenizer.name.encode()
    header.view(np.uint8)[24 : 24 + len(name)] = np.frombuffer(name, dtype=np.uint8)
    return header


def _words_per_token(texts, tok):
    return sum(map(len, texts)) / sum(len(tok.encode(t)) for t in texts)


def _mean_of_ratios(texts, tok):
    return float(np.mean([len(t.encode()) / len(tok.encode(t)) for t in texts]))


def _eot_per_document(texts, tok):
    return sum(len(t.encode()) for t in texts) / sum(len(tok.encode(t)) + 1 for t in texts)


# 02


def _attention_without_mask(q, k, v):
    return F.scaled_dot_product_attention(q, k, v)


def _attention_without_scale(q, k, v):
    return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=1.0)


def _attention_mask_after_softmax(q, k, v):
    T = q.size(-2)
    w = (q @ k.transpose(-2, -1) / math.sqrt(k.size(-1))).softmax(-1)
    return w.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), 0.0) @ v


def _attention_heads_and_time_swapped(q, k, v):
    return F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2)


def _attention_softmax_over_queries(q, k, v):
    T = q.size(-2)
    w = (q @ k.transpose(-2, -1) / math.sqrt(k.size(-1))).masked_fill(torch.ones(T, T).triu(1).bool(), -math.inf)
    return w.softmax(-2) @ v


class _ReluMLP(_SequentialMLP):
    def forward(self, x):
        return self.c_proj(F.relu(self.c_fc(x)))


class _LinearMLP(_SequentialMLP):
    def forward(self, x):
        return self.c_proj(self.c_fc(x))


class _NarrowMLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        C = config.n_embd
        self.c_fc, self.c_proj = nn.Linear(C, C, bias=config.bias), nn.Linear(C, C, bias=config.bias)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x)))


class _AlwaysBiasedMLP(_SequentialMLP):
    def __init__(self, config):
        nn.Module.__init__(self)
        C = config.n_embd
        self.c_fc, self.c_proj = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)


class _PostLNBlock(_EllipsisForward):
    def forward(self, x):
        x = self.ln_1(x + self.attn(x))
        return self.ln_2(x + self.mlp(x))


class _NoResidualBlock(_EllipsisForward):
    def forward(self, x):
        return self.mlp(self.ln_2(self.attn(self.ln_1(x))))


class _Ln1TwiceBlock(_EllipsisForward):
    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_1(x))


class _ParallelBlock(_EllipsisForward):
    def forward(self, x):
        return x + self.attn(self.ln_1(x)) + self.mlp(self.ln_2(x))


# 03


def _largest_by_scanning(fits, limit=4096):
    b = 0
    while b < limit and fits(b + 1):
        b += 1
    return b


def _largest_first_failure(fits, limit=4096):
    b = _largest_by_halving(fits, limit)
    return min(b + 1, limit) if b else 0


def _largest_never_zero(fits, limit=4096):
    return max(1, _largest_by_halving(fits, limit))


def _largest_doubling_only(fits, limit=4096):
    b = 1 if fits(1) else 0
    while b and 2 * b <= limit and fits(2 * b):
        b *= 2
    return b


# 04


def _lr_warmup_from_zero(it, cfg):
    return cfg.learning_rate * it / cfg.warmup_iters if cfg.decay_lr and it < cfg.warmup_iters else get_lr(it, cfg)


def _lr_warmup_one_early(it, cfg):
    if cfg.decay_lr and it < cfg.warmup_iters:
        return cfg.learning_rate * (it + 1) / cfg.warmup_iters
    return get_lr(it, cfg)


def _lr_cosine_forever(it, cfg):
    if not cfg.decay_lr or it < cfg.warmup_iters:
        return get_lr(it, cfg)
    r = (it - cfg.warmup_iters) / (cfg.lr_decay_iters - cfg.warmup_iters)
    return cfg.min_lr + 0.5 * (1 + math.cos(math.pi * r)) * (cfg.learning_rate - cfg.min_lr)


def _lr_linear_decay(it, cfg):
    if not cfg.decay_lr or it < cfg.warmup_iters or it > cfg.lr_decay_iters:
        return get_lr(it, cfg)
    r = (it - cfg.warmup_iters) / (cfg.lr_decay_iters - cfg.warmup_iters)
    return cfg.min_lr + (1 - r) * (cfg.learning_rate - cfg.min_lr)


def _lr_decay_to_zero(it, cfg):
    if not cfg.decay_lr or it < cfg.warmup_iters or it > cfg.lr_decay_iters:
        return get_lr(it, cfg)
    r = (it - cfg.warmup_iters) / (cfg.lr_decay_iters - cfg.warmup_iters)
    return 0.5 * (1 + math.cos(math.pi * r)) * cfg.learning_rate


def _step(divide=True, zero_inside=False, clip="norm", clip_each=False, zero_after=True, ret="mean"):
    def optimizer_step(model, optimizer, get_batch, gradient_accumulation_steps, grad_clip):
        G, losses = gradient_accumulation_steps, []
        for k in range(G):
            if zero_inside:
                optimizer.zero_grad()
            _, loss = model(*get_batch(k))
            (loss / G if divide else loss).backward()
            losses.append(loss.item())
            if clip_each:
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        if clip == "norm":
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        elif clip == "value":
            torch.nn.utils.clip_grad_value_(model.parameters(), grad_clip)
        optimizer.step()
        if zero_after:
            optimizer.zero_grad(set_to_none=True)
        return sum(losses) / G if ret == "mean" else sum(losses)

    return optimizer_step


# 05


def _top_k_strict(logits, k):
    return logits.masked_fill(logits <= torch.topk(logits, min(k, logits.size(-1))).values[:, [-1]], -math.inf)


def _top_k_zeros(logits, k):
    return logits.masked_fill(logits < torch.topk(logits, min(k, logits.size(-1))).values[:, [-1]], 0.0)


def _top_k_whole_batch(logits, k):
    kth = torch.topk(logits.flatten(), min(k, logits.size(-1)) * logits.size(0)).values[-1]
    return logits.masked_fill(logits < kth, -math.inf)


def _top_k_sorted(logits, k):
    values = logits.sort(-1, descending=True).values
    values[:, min(k, logits.size(-1)) :] = -math.inf
    return values


def _top_k_in_place(logits, k):
    return logits.masked_fill_(logits < torch.topk(logits, min(k, logits.size(-1))).values[:, [-1]], -math.inf)


def _top_k_without_min(logits, k):
    return logits.masked_fill(logits < torch.topk(logits, k).values[:, [-1]], -math.inf)


def _top_p(cut, descending=True):
    def top_p_filter(logits, p):
        s, order = torch.sort(logits, descending=descending)
        probs = s.softmax(-1)
        drop = probs.cumsum(-1) > p if cut == "crossing dropped" else probs.cumsum(-1) - probs > p
        return torch.full_like(logits, -math.inf).scatter(-1, order, s.masked_fill(drop, -math.inf))

    return top_p_filter


def _top_p_token_order(logits, p):
    probs = logits.softmax(-1)
    return logits.masked_fill(probs.cumsum(-1) - probs > p, -math.inf)


def _decode(causal=False, append=True, front=False, merge=True):
    def decode_step(attn, x, past_k, past_v):
        B, _, C = x.shape
        q, k, v = (t.view(B, 1, attn.n_head, -1).transpose(1, 2) for t in attn.c_attn(x).split(C, dim=2))
        if append:
            k, v = (
                torch.cat((new, past), 2) if front else torch.cat((past, new), 2)
                for past, new in ((past_k, k), (past_v, v))
            )
        else:
            k, v = past_k, past_v
        y = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        return (attn.c_proj(y.transpose(1, 2).reshape(B, 1, C)) if merge else y), k, v

    return decode_step


MISTAKES = [
    (ex.check_shard_header, _header_version_always_1, "version must be 2 (uint32 tokens)"),
    (ex.check_shard_header, _header_vocab_and_eot_swapped, "header[3] holds the EOT id"),
    (ex.check_shard_header, _header_name_right_after_its_length, "the name starts at byte 24"),
    (ex.check_shard_header, lambda n, tok: make_header(n, tok).astype(np.int64), "a header is 256 int32 numbers"),
    (ex.check_shard_reader, lambda path: np.fromfile(path, dtype=np.uint16), "your first numbers are the header"),
    (ex.check_shard_reader, lambda path: np.fromfile(path, dtype=np.uint16, offset=1024), "this shard is version 2"),
    (ex.check_shard_reader, lambda path: np.fromfile(path, dtype=np.int16, offset=1024), "negative ids"),
    (
        ex.check_shard_reader,
        lambda path: np.fromfile(path, dtype=np.int32, offset=1024),
        "a version-1 shard holds uint16",
    ),
    (ex.check_bytes_per_token, _words_per_token, "you counted characters"),
    (ex.check_bytes_per_token, _mean_of_ratios, "you averaged each document's ratio"),
    (ex.check_bytes_per_token, _eot_per_document, "you counted an EOT token per document"),
    (ex.check_param_count, lambda cfg: count_params(cfg), "the position embedding (T × C) is missing"),
    (
        ex.check_param_count,
        lambda cfg: count_params(cfg, False) + cfg.vocab_size * cfg.n_embd,
        "lm_head counted as a second",
    ),
    (
        ex.check_param_count,
        lambda cfg: count_params(cfg, False) - 9 * cfg.n_layer * cfg.n_embd * cfg.bias,
        "the Linear layers' biases are missing",
    ),
    (
        ex.check_param_count,
        lambda cfg: count_params(cfg, False) - cfg.n_embd * (1 + cfg.bias),
        "the final LayerNorm ln_f is missing",
    ),
    (ex.check_mlp, _ReluMLP, "ReLU where GPT-2 has GELU"),
    (ex.check_mlp, _LinearMLP, "no nonlinearity between c_fc and c_proj"),
    (ex.check_mlp, _NarrowMLP, "c_fc.weight has shape (32, 32), expected (128, 32)"),
    (ex.check_mlp, _AlwaysBiasedMLP, "config.bias=False but you made"),
    (ex.check_block, _PostLNBlock, "post-LN"),
    (ex.check_block, _NoResidualBlock, "no residual connections"),
    (ex.check_block, _Ln1TwiceBlock, "the MLP reads ln_1"),
    (ex.check_block, _ParallelBlock, "attention and MLP both read the block's input"),
    (ex.check_causal_attention, _attention_without_mask, "position 0 attends to position 1"),
    (ex.check_causal_attention, _attention_without_scale, "the scores are not scaled: divide q·kᵀ by √hs = 4"),
    (ex.check_causal_attention, _attention_mask_after_softmax, "the mask is applied after the softmax"),
    (
        ex.check_causal_attention,
        _attention_heads_and_time_swapped,
        "expected (B, H, T, hs) = (2, 3, 7, 16), got (B, T, H, hs)",
    ),
    (ex.check_causal_attention, _attention_softmax_over_queries, "the softmax runs over the queries"),
    (
        ex.check_optimizer_step_bytes,
        lambda c, o, d: _optimizer_bytes_by_formula(c, o, d, grads=False),
        "the gradients are missing",
    ),
    (
        ex.check_optimizer_step_bytes,
        lambda c, o, d: _optimizer_bytes_by_formula(c, o, d, adamw_moments=1),
        "AdamW keeps two moments",
    ),
    (
        ex.check_optimizer_step_bytes,
        lambda c, o, d: _optimizer_bytes_by_formula(c, o, d, temporaries=False),
        "foreach AdamW's temporaries are missing",
    ),
    (
        ex.check_optimizer_step_bytes,
        lambda c, o, d: _optimizer_bytes_by_formula(c, o, d, size=4),
        "pure_bf16 keeps weights, gradients and states in bf16",
    ),
    (ex.check_logits_bytes, lambda B, T, V, d: 16 * B * T * V, "under autocast the logits leave the matmul in 16-bit"),
    (ex.check_logits_bytes, lambda B, T, V, d: 4 * B * T * V, "that is the logits alone"),
    (ex.check_logits_bytes, lambda B, T, V, d: 8 * B * T * V, "that is the end of the forward"),
    (ex.check_logits_bytes, lambda B, T, V, d: 16 * B * V, "n counts tokens, batch_size × block_size"),
    (ex.check_largest_batch, _largest_by_scanning, "right answer, but fits() ran"),
    (ex.check_largest_batch, _largest_first_failure, "does not fit: return the last b that fit"),
    (ex.check_largest_batch, _largest_never_zero, "batch_size=1 does not fit here, so the answer is 0"),
    (ex.check_largest_batch, _largest_doubling_only, "fits too: the search stopped early"),
    (ex.check_lr_schedule, _lr_warmup_from_zero, "iteration 0 gets a learning rate of 0"),
    (ex.check_lr_schedule, _lr_warmup_one_early, "warmup reaches the full rate at iteration 9, one step early"),
    (ex.check_lr_schedule, _lr_cosine_forever, "after lr_decay_iters=100 the rate stays at min_lr"),
    (ex.check_lr_schedule, _lr_linear_decay, "a linear decay; nanoGPT's is a cosine"),
    (ex.check_lr_schedule, _lr_decay_to_zero, "the cosine ends at 0"),
    (ex.check_optimizer_step, _step(divide=False), "the loss is not divided by gradient_accumulation_steps"),
    (ex.check_optimizer_step, _step(zero_inside=True), "zero_grad runs inside the loop"),
    (ex.check_optimizer_step, _step(clip=None), "the gradients are not clipped"),
    (ex.check_optimizer_step, _step(clip=None, clip_each=True), "clipped after every micro-batch"),
    (ex.check_optimizer_step, _step(clip="value"), "clip_grad_value_ clamps each number"),
    (ex.check_optimizer_step, _step(zero_after=False), "after the step the gradients are still there"),
    (ex.check_optimizer_step, _step(ret="sum"), "you returned the sum of the micro-batch losses"),
    (ex.check_top_k, _top_k_strict, "one too few: keep the k-th largest too"),
    (ex.check_top_k, _top_k_zeros, "the dropped entries are 0, not -inf"),
    (ex.check_top_k, _top_k_whole_batch, "the cut-off is shared by the whole batch"),
    (ex.check_top_k, _top_k_sorted, "the kept logits moved"),
    (ex.check_top_k, _top_k_in_place, "you changed the logits passed in"),
    (ex.check_top_k, _top_k_without_min, "is more than the 40 tokens: keep them all"),
    (ex.check_top_p, _top_p("crossing dropped"), "keeps one token too few"),
    (ex.check_top_p, _top_p("exact", descending=False), "you kept the least likely tokens"),
    (ex.check_top_p, _top_p_token_order, "you added up the probabilities in token-id order"),
    (
        ex.check_kv_decode_step,
        _decode(causal=True),
        "is_causal=True with a single query lets it see only the first key",
    ),
    (ex.check_kv_decode_step, _decode(append=False), "k has 5 positions, the cache's old length"),
    (ex.check_kv_decode_step, _decode(front=True), "the new k went in front"),
    (ex.check_kv_decode_step, _decode(merge=False), "y is still split into heads"),
]


@pytest.mark.parametrize("check,answer,hint", MISTAKES, ids=[f"{c.__name__}-{h[:30]}" for c, _, h in MISTAKES])
def test_each_typical_mistake_gets_its_own_hint(check, answer, hint, capsys):
    line = verdict(capsys, check, answer)
    assert line.startswith("✗ ") and hint in line, line


def test_every_exercise_recognises_at_least_two_mistakes():
    counts = {name: sum(check.__name__ == name for check, _, _ in MISTAKES) for name in CHECKS}
    assert min(counts.values()) >= 2, counts
    assert len({hint for _, _, hint in MISTAKES}) == len(MISTAKES)
