"""A student's code, once it passes its check, is what the later notebooks run: 02's attention, MLP and Block
build the model 04 trains (smoke and cpu mode), 04's schedule and step drive its loop, 05's filters its
sampler (finegpt.lab.student). Proved by handing in implementations that differ from finegpt's but are
correct, then training with finegpt's own versions made to fail."""

import math
from dataclasses import replace

import pytest
import torch
import torch.nn as nn
from torch.nn import functional as F

from finegpt import lab
from finegpt.data import prepare
from finegpt.exercises import check_block, check_lr_schedule, check_mlp, check_optimizer_step, check_top_k
from finegpt.exercises.course import check_attention_module
from finegpt.lab import student
from finegpt.model import MLP, CausalSelfAttention, LayerNorm  # as 02 imports them for its Block
from finegpt.train import train

# ---- a student's answers: correct, and written differently from finegpt's -------------------------------


def explicit_attention(q, k, v):  # (B, H, T, hs) each -> (B, H, T, hs): softmax by hand, no fused kernel
    T = q.size(-2)
    scores = q @ k.transpose(-2, -1) / math.sqrt(k.size(-1))
    scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool, device=q.device).triu(1), float("-inf"))
    return scores.softmax(dim=-1) @ v


class MyCausalSelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.n_head = config.n_head

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in self.c_attn(x).split(C, 2))
        return self.c_proj(explicit_attention(q, k, v).transpose(1, 2).reshape(B, T, C))


class MyMLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x)))


class MyBlock(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x):
        h = x + self.attn(self.ln_1(x))
        return h + self.mlp(self.ln_2(h))


def my_lr(it, cfg):
    if not cfg.decay_lr:
        return cfg.learning_rate
    if it < cfg.warmup_iters:
        return cfg.learning_rate * (it + 1) / (cfg.warmup_iters + 1)
    if it > cfg.lr_decay_iters:
        return cfg.min_lr
    r = (it - cfg.warmup_iters) / max(1, cfg.lr_decay_iters - cfg.warmup_iters)
    return cfg.min_lr + 0.5 * (1 + math.cos(math.pi * r)) * (cfg.learning_rate - cfg.min_lr)


def my_step(model, optimizer, get_batch, gradient_accumulation_steps, grad_clip):
    total = 0.0
    for k in range(gradient_accumulation_steps):
        x, y = get_batch(k)
        _, loss = model(x, y)
        (loss / gradient_accumulation_steps).backward()
        total += loss.item()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return total / gradient_accumulation_steps


def my_top_k(logits, k):
    kth = logits.topk(min(k, logits.size(-1)), dim=-1).values[:, -1:]
    return torch.where(logits < kth, torch.full_like(logits, float("-inf")), logits)


# ---- the lab ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    p = lab.LabPaths(tmp_path_factory.mktemp("lab") / "smoke", "smoke")
    prepare(source="shakespeare", out=str(p.shakespeare), tokenizer="bytes", tokens=60_000, val_tokens=20_000,
            progress=False)  # fmt: skip
    return p


def configs(p):
    model_cfg, train_cfg = lab.run_configs(lab.settings("smoke", env={}), p)
    return model_cfg, replace(train_cfg, max_iters=6, lr_decay_iters=6, eval_interval=3, eval_iters=1)


def test_passing_answers_are_handed_in_and_failing_ones_withdrawn(smoke, capsys):
    student.hand_in("mlp", MyMLP, check_mlp, smoke)
    assert student.is_handed_in("mlp", smoke)
    out = capsys.readouterr().out
    assert out.startswith("✓ MLP") and "handed in: notebook 04 will use your MyMLP as its MLP" in out
    saved = (student.folder(smoke) / "mlp.py").read_text()
    assert "class MyMLP(nn.Module):" in saved and "F.gelu(self.c_fc(x))" in saved

    class Relu(MyMLP):
        def forward(self, x):
            return self.c_proj(F.relu(self.c_fc(x)))

    student.hand_in("mlp", Relu, check_mlp, smoke)
    assert not student.is_handed_in("mlp", smoke)
    assert "(your earlier one is withdrawn): notebook 04 uses finegpt's MLP" in capsys.readouterr().out
    assert not (student.folder(smoke) / "mlp.py").exists()
    assert "MLP: finegpt's (pass exercise in notebook 02 to use yours)" in student.handed_in(smoke, "smoke").lines


def test_04_trains_the_students_model_schedule_and_step_not_finegpts(smoke, monkeypatch, capsys):
    model_cfg, train_cfg = configs(smoke)
    student.hand_in("attention", MyCausalSelfAttention, check_attention_module, smoke, needs=[explicit_attention])
    student.hand_in("mlp", MyMLP, check_mlp, smoke)
    student.hand_in("block", MyBlock, check_block, smoke)
    student.hand_in("lr", my_lr, check_lr_schedule, smoke)
    student.hand_in("step", my_step, check_optimizer_step, smoke)
    parts = ["attention", "mlp", "block", "lr", "step"]
    assert all(student.is_handed_in(p, smoke) for p in parts), capsys.readouterr().out
    mine = student.handed_in(smoke, "smoke", config=model_cfg)
    assert "CausalSelfAttention: yours (MyCausalSelfAttention, handed in from notebook 02)" in mine.lines
    assert "optimizer step: yours (my_step, handed in from notebook 04)" in mine.lines

    # finegpt's fused attention, schedule and step all fail: the run can only succeed on the student's code
    def refuse(*a, **k):
        raise AssertionError("finegpt's own code ran")

    monkeypatch.setattr(F, "scaled_dot_product_attention", refuse)
    monkeypatch.setattr("finegpt.train.loop.get_lr", refuse)
    monkeypatch.setattr("finegpt.step.forward_backward", refuse)
    monkeypatch.setattr("finegpt.step.optimizer_step", refuse)
    result = train(model_cfg, train_cfg, overwrite=True, hooks=mine.hooks)
    monkeypatch.undo()

    model = result["model"]
    block = model.transformer.h[0]
    assert [type(block).__name__, type(block.attn).__name__, type(block.mlp).__name__] == [
        "MyBlock", "MyCausalSelfAttention", "MyMLP"
    ]  # fmt: skip
    saved = str(student.folder(smoke) / "attention.py")
    assert type(block.attn).__mro__[1].forward.__code__.co_filename == saved  # rebuilt from the handed-in source
    assert math.isfinite(result["final_val_loss"]) and result["iter_num"] == 6

    # 05 samples with finegpt's GPT: the student's weights load into it, both give the same logits, and the
    # student's model writes (without a KV cache) the same text finegpt's GPT writes with the same weights
    from finegpt.data import get_tokenizer
    from finegpt.sample import generate_text, load_for_sampling

    ours, _, _ = load_for_sampling(smoke.run, device="cpu")
    idx = torch.randint(0, 256, (2, 16))
    with torch.no_grad():
        assert torch.allclose(ours(idx)[0], model.eval()(idx)[0], atol=1e-5)
    tok = get_tokenizer("bytes")
    assert generate_text(model, tok, "ROMEO:", 30) == generate_text(ours, tok, "ROMEO:", 30)


def test_full_mode_trains_finegpts_model_and_step_but_keeps_the_schedule(smoke, capsys):
    student.hand_in("step", my_step, check_optimizer_step, smoke)
    student.hand_in("lr", my_lr, check_lr_schedule, smoke)
    mine = student.handed_in(smoke, "full")
    assert mine.hooks.make_model is None and mine.hooks.step is None and mine.hooks.get_lr is not None
    assert "optimizer step: finegpt's in full mode (yours is used in cpu and smoke mode)" in mine.lines


def test_05s_sampler_uses_the_students_filter(smoke, monkeypatch):
    from finegpt.config import ModelConfig
    from finegpt.model import GPT

    student.hand_in("top_k", my_top_k, check_top_k, smoke)
    assert student.is_handed_in("top_k", smoke)
    mine = student.handed_in(smoke, "cpu", only=["top_k", "top_p"])
    assert mine.lines == ["top-k filter: yours (my_top_k, handed in from notebook 05)",
                          "top-p filter: finegpt's (pass exercise in notebook 05 to use yours)"]  # fmt: skip
    monkeypatch.setattr("finegpt.model.top_k_logits", lambda *a: (_ for _ in ()).throw(AssertionError("finegpt's")))
    torch.manual_seed(0)
    model = GPT(ModelConfig(n_layer=1, n_head=2, n_embd=16, block_size=16, vocab_size=64)).eval()
    g = torch.Generator().manual_seed(0)
    out = model.generate(torch.zeros(1, 1, dtype=torch.long), 5, top_k=3, generator=g, sampler=mine.sampler)
    assert out.shape == (1, 6)
