"""Exercises that build something: code a student wrote and checked is used by the notebooks after it.
02's CausalSelfAttention, MLP and Block build the model 04 trains (cpu and smoke mode), 04's schedule and
optimizer step drive its loop, 05's top-k and top-p filters drive its sampler.

hand_in(part, answer, check, paths, needs=()) runs the exercise's check; when it passes, the answer's
source (and that of `needs`, the functions it calls) is saved to the lab folder's handed_in/<part>.py,
and when it does not, an older hand-in is withdrawn. handed_in(paths, mode) -> Mine: what is the
student's, as Hooks for finegpt.train.train and a sampler for GPT.generate, with one line per part.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import io
import linecache
import math
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

PARTS = {  # part: (the notebook it is written in, what it is, the notebook that uses it)
    "attention": ("02", "CausalSelfAttention", "04"),
    "mlp": ("02", "MLP", "04"),
    "block": ("02", "Block", "04"),
    "lr": ("04", "learning-rate schedule", "04"),
    "step": ("04", "optimizer step", "04"),
    "top_k": ("05", "top-k filter", "05"),
    "top_p": ("05", "top-p filter", "05"),
}
MODEL_PARTS = ("attention", "mlp", "block")


def folder(paths) -> Path:
    return Path(paths.root) / "handed_in"


# ---- saving: the source of what passed ----------------------------------------------------------------


def source_of(obj) -> str:
    """The source of a function, or of a class (in a notebook a class has no file: its cell is found through
    one of its functions, and the class cut out of it)."""
    if inspect.isfunction(obj):
        return textwrap.dedent(inspect.getsource(obj))
    fns = [f for f in vars(obj).values() if inspect.isfunction(f)]
    if not fns:
        raise ValueError(f"{obj!r} has no methods to find its source by")
    code = fns[0].__code__
    text = "".join(linecache.getlines(code.co_filename))
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ClassDef) and node.name == obj.__name__:
            if node.lineno <= code.co_firstlineno <= node.end_lineno:
                return textwrap.dedent(ast.get_source_segment(text, node, padded=True))
    raise ValueError(f"the source of class {obj.__name__} was not found")


def hand_in(part: str, answer, check, paths, needs=()) -> None:
    """Run check(answer), print its line, and keep answer for the notebook that uses it when it passed.
    Returns nothing, so a notebook cell ending with it shows only what it printed; is_handed_in tells."""
    where, what, user = PARTS[part]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        check(answer)
    line = out.getvalue()
    print(line, end="")
    file = folder(paths) / f"{part}.py"
    if not line.startswith("✓"):
        withdrawn = file.exists()
        file.unlink(missing_ok=True)
        print(f"not handed in{' (your earlier one is withdrawn)' if withdrawn else ''}: notebook {user} uses "
              f"finegpt's {what} until this check passes")  # fmt: skip
        return
    try:
        source = "\n\n".join([*map(source_of, needs), source_of(answer)])
    except (OSError, TypeError, ValueError) as e:
        print(f"not handed in: your code's source could not be read ({e}); notebook {user} uses finegpt's {what}")
        return
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(f"# {what}, handed in from notebook {where}\n# answer: {answer.__name__}\n\n{source}\n")
    print(f"handed in: notebook {user} will use your {answer.__name__} as its {what}")


def is_handed_in(part: str, paths) -> bool:
    return (folder(paths) / f"{part}.py").exists()


def load(part: str, paths):
    """The handed-in answer for part, rebuilt from its saved source, or None."""
    import numpy as np
    import torch
    import torch.nn as nn
    from torch.nn import functional as F

    from finegpt import model as finegpt_model

    file = folder(paths) / f"{part}.py"
    if not file.exists():
        return None
    text = file.read_text()
    name = text.splitlines()[1].removeprefix("# answer: ")
    names = {"torch": torch, "nn": nn, "F": F, "math": math, "np": np, "__name__": f"handed_in_{part}"}
    names |= {k: getattr(finegpt_model, k) for k in ("LayerNorm", "CausalSelfAttention", "MLP", "Block", "KVCache")}
    exec(compile(text, str(file), "exec"), names)
    return names[name]


# ---- using it ----------------------------------------------------------------------------------------------


def _training_only(cls):
    """cls, taking GPT's `cache` argument too: generation's KV cache is finegpt's (05 loads the checkpoint
    into finegpt's GPT, which the same state-dict names make possible)."""

    def forward(self, x, cache=None):
        if cache is not None:
            raise ValueError(f"your {cls.__name__} has no KV cache: sample with finegpt.sample.load_for_sampling")
        return cls.forward(self, x)

    return type(cls.__name__, (cls,), {"forward": forward, "__module__": cls.__module__})


def student_gpt(config, attention=None, mlp=None, block=None):
    """finegpt's GPT with every block rebuilt from the handed-in classes (None: finegpt's), then GPT-2's
    init drawn again over the whole model, as GPT.__init__ draws it. It generates without a KV cache (the
    exercises' classes have none): every new token recomputes the context, with the same tokens as a result."""
    import torch
    import torch.nn as nn

    from finegpt.model import GPT, Block

    class StudentGPT(GPT):
        def generate(self, idx, max_new_tokens, *args, use_cache=True, **kwargs):
            return super().generate(idx, max_new_tokens, *args, use_cache=False, **kwargs)

    model = StudentGPT(config)
    blocks = []
    for _ in range(config.n_layer):
        b = _training_only(block)(config) if block else Block(config)
        if attention:
            b.attn = _training_only(attention)(config)
        if mlp:
            b.mlp = mlp(config)
        blocks.append(b)
    model.transformer.h = nn.ModuleList(blocks)
    model.apply(model._init_weights)
    for name, p in model.named_parameters():  # GPT-2: residual projections scaled by 1/sqrt(2L)
        if name.endswith("c_proj.weight"):
            torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))
    return model


def step_hook(optimizer_step):
    """Hooks.step from 04's exercise: optimizer_step(model, optimizer, get_batch, accumulation, grad_clip)."""

    def run(parts, batches, first_micro_step, gas, grad_clip):
        get_batch = lambda k: batches.get(first_micro_step + k)  # noqa: E731 - (x, y), each (B, T)
        return float(optimizer_step(parts.model, parts.optimizer, get_batch, gas, grad_clip))

    return run


def sampler(top_k_filter=None, top_p_filter=None):
    """finegpt.model.sample_next, with 05's filters in place of finegpt's where handed in."""
    import torch
    from torch.nn import functional as F

    from finegpt.model import top_k_logits, top_p_logits

    def sample_next(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
        if temperature == 0:
            return logits.argmax(dim=-1, keepdim=True)
        logits = logits.float() / temperature
        if top_k is not None and top_k > 0:
            logits = (top_k_filter or top_k_logits)(logits, top_k)
        if top_p is not None and top_p < 1.0:
            logits = (top_p_filter or top_p_logits)(logits, top_p)
        return torch.multinomial(F.softmax(logits, dim=-1), num_samples=1, generator=generator)

    return sample_next


@dataclass
class Mine:
    """What is the student's: parts (part -> the loaded answer), the Hooks train() takes, the sampler
    GPT.generate takes (None: finegpt's), and one line per part saying whose code runs."""

    parts: dict
    hooks: object
    sampler: object = None
    lines: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return "\n".join(self.lines)


def _same_names(make_model, config) -> str | None:
    """Why a student model's weights would not load into finegpt's GPT (05 samples with it), or None.
    Checked on a tiny model with config's bias setting: the names do not depend on the sizes."""
    from finegpt.config import ModelConfig
    from finegpt.model import GPT

    tiny = ModelConfig(n_layer=1, n_head=2, n_embd=16, block_size=8, vocab_size=64, bias=config.bias)
    mine, ours = set(make_model(tiny).state_dict()), set(GPT(tiny).state_dict())
    if mine == ours:
        return None
    extra, missing = sorted(mine - ours)[:3], sorted(ours - mine)[:3]
    return f"its weights are named differently from nanoGPT's (extra {extra}, missing {missing})"


def handed_in(paths, mode: str, config=None, only=None) -> Mine:
    """The student's parts found in the lab folder. The model and the optimizer step are used in cpu and
    smoke mode only (full mode needs finegpt's fused attention and mixed-precision step); the schedule and
    the filters in every mode. config: a ModelConfig to check the model's weight names with; only: the
    parts to say a line about (default all)."""
    from finegpt.train.hooks import Hooks

    parts = {p: load(p, paths) for p in PARTS}
    parts = {p: v for p, v in parts.items() if v is not None}
    lines, make_model, step = [], None, None
    model_parts = {p: parts[p] for p in MODEL_PARTS if p in parts}
    if model_parts and mode != "full":
        make_model = lambda cfg: student_gpt(cfg, **model_parts)  # noqa: E731
        why = _same_names(make_model, config) if config is not None else None
        if why:
            lines.append(f"model: finegpt's GPT, not yours: {why}")
            make_model, model_parts = None, {}
    if "step" in parts and mode != "full":
        step = step_hook(parts["step"])
    used = {"lr": "lr" in parts, "step": step is not None, "top_k": "top_k" in parts, "top_p": "top_p" in parts}
    used |= {p: make_model is not None and p in model_parts for p in MODEL_PARTS}
    for part, (where, what, _) in PARTS.items():
        if only is not None and part not in only:
            continue
        if used[part]:
            lines.append(f"{what}: yours ({parts[part].__name__}, handed in from notebook {where})")
        elif part in parts:
            lines.append(f"{what}: finegpt's in {mode} mode (yours is used in cpu and smoke mode)")
        else:
            lines.append(f"{what}: finegpt's (pass exercise in notebook {where} to use yours)")
    get_lr = parts.get("lr")
    hooks = Hooks(make_model=make_model, get_lr=get_lr, step=step)
    sample = sampler(parts.get("top_k"), parts.get("top_p")) if {"top_k", "top_p"} & set(parts) else None
    return Mine(parts, hooks, sample, lines)
