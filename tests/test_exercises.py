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
from finegpt.model import GPT, MLP, CausalSelfAttention, LayerNorm, count_params
from tests.exercise_support import verdict

SOLUTIONS = Path(__file__).resolve().parents[1] / "notebooks" / "solutions"
NOTEBOOKS = SOLUTIONS.parent
CHECKS = [name for name in ex.__all__ if name.startswith("check_")]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


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
@pytest.mark.parametrize("gap", [_gap, lambda *args: ...], ids=["raise", "ellipsis"])
def test_an_unanswered_exercise_says_not_attempted_and_never_raises(name, gap, capsys):
    assert verdict(capsys, getattr(ex, name), gap).endswith(ex.NOT_ATTEMPTED)


@pytest.mark.parametrize("check", [ex.check_mlp, ex.check_block])
def test_an_unanswered_class_says_not_attempted(check, capsys):
    assert verdict(capsys, check, _GapClass).endswith("not attempted yet: write it, then run this cell")


def test_a_forward_without_return_is_named_as_such(capsys):
    line = verdict(capsys, ex.check_block, _EllipsisForward)
    assert line.startswith("✗ transformer block: _EllipsisForward.forward returned None: is its `return` missing?")


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


# ---- every exercise has its catalogue of mistakes, each tested -----------------------------------


def test_every_exercise_has_at_least_six_tested_mistakes():
    from tests import test_exercises_data as d
    from tests import test_exercises_memory as m
    from tests import test_exercises_model as a
    from tests import test_exercises_sample as s
    from tests import test_exercises_train as t

    cases = {
        "check_bytes_per_token": d.BYTES_PER_TOKEN, "check_shard_header": d.HEADER, "check_shard_reader": d.READER,
        "check_param_count": a.PARAM_COUNT, "check_mlp": a.MLPS, "check_block": a.BLOCKS,
        "check_causal_attention": a.ATTENTION, "check_optimizer_step_bytes": m.OPTIMIZER_BYTES,
        "check_logits_bytes": m.LOGITS, "check_largest_batch": m.LARGEST, "check_lr_schedule": t.LR,
        "check_optimizer_step": t.STEP, "check_top_k": s.TOP_K, "check_top_p": s.TOP_P, "check_kv_decode_step": s.KV,
    }  # fmt: skip
    assert sorted(cases) == sorted(CHECKS)
    assert {name: len(c) for name, c in cases.items() if len(c) < 6} == {}
    for name, c in cases.items():
        hints = [hint for _, hint in c]
        assert len(set(hints)) == len(hints), name
