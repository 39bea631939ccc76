"""The chunked loss (exact, predicted, offered by the CLI), the moments inside backward the memory model names
(the tied embedding's gradient, math attention's softmax backward, checkpointing's recompute), the meter
measure() reads on CPU, and a fixed-seed sample of bench/memory_search.py's corners."""

import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from finegpt.cli import main
from finegpt.config import ModelConfig
from finegpt.errors import FinegptError
from finegpt.memory import RunConfig, estimate, loss_chunk, measure
from finegpt.memory import activations as a
from finegpt.memory import terms as t
from finegpt.memory.measurement import LiveBytes
from finegpt.memory.profiled import ProfiledBytes
from finegpt.model import GPT

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import memory_search  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _error(cfg: ModelConfig, run: RunConfig, phase: str = "train") -> float:
    measured = measure(cfg, run, evals=phase != "train")[phase]
    return (estimate(cfg, run).peaks[phase] - measured) / measured


# ---- the chunked loss -------------------------------------------------------------------------------


def test_chunked_loss_equals_the_full_loss_and_its_gradients_in_fp32():
    torch.manual_seed(0)
    model = GPT(ModelConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=300))
    x, y = torch.randint(300, (3, 16)), torch.randint(300, (3, 16))
    y[0, :5] = -1  # ignored targets count in neither the sum nor the mean
    logits, full = model(x, y)
    full.backward()
    expected = {k: p.grad.clone() for k, p in model.named_parameters()}
    for chunks in (1, 5, 7, 48):  # 48 tokens: chunks of 48, 10 (the last 8), 7 (the last 6), 1
        model.zero_grad(set_to_none=True)
        model.loss_chunks = chunks
        none, loss = model(x, y)
        loss.backward()
        assert none is None and logits.shape == (3, 16, 300)
        assert abs(loss.item() - full.item()) <= 1e-5 * abs(full.item())
        for k, p in model.named_parameters():
            assert (p.grad - expected[k]).abs().max() <= 1e-5 * expected[k].abs().max(), (chunks, k)


def test_chunked_loss_without_grad_is_the_eval_loss():
    torch.manual_seed(0)
    model = GPT(ModelConfig(n_layer=1, n_head=2, n_embd=16, block_size=8, vocab_size=64)).eval()
    x, y = torch.randint(64, (2, 8)), torch.randint(64, (2, 8))
    with torch.no_grad():
        _, full = model(x, y)
        model.loss_chunks = 3
        _, chunked = model(x, y)
    assert torch.allclose(full, chunked, rtol=1e-6)


@pytest.mark.parametrize("dtype", ["fp32", "bf16", "pure_bf16"])
def test_chunked_loss_peak_is_predicted_within_one_percent(dtype):
    cfg = ModelConfig(n_layer=2, n_head=4, n_embd=64, block_size=64, vocab_size=8192)
    run = RunConfig(batch_size=4, gradient_accumulation_steps=2, dtype=dtype, loss_chunks=4, device="cpu")
    measured = measure(cfg, run)
    e = estimate(cfg, run)
    for phase in ("train", "eval", "first_eval"):
        assert abs(e.peaks[phase] - measured[phase]) <= 0.01 * measured[phase], phase
    unchunked = measure(cfg, replace(run, loss_chunks=0))
    assert measured["train"] < 0.6 * unchunked["train"]  # the logits were most of the step


def test_loss_chunks_is_a_training_setting_and_validated():
    from finegpt.config import TrainConfig
    from finegpt.memory import run_config

    assert run_config(TrainConfig(loss_chunks=8)).loss_chunks == 8
    with pytest.raises(FinegptError, match=r"^loss_chunks=-1: must be an integer >= 0"):
        TrainConfig(loss_chunks=-1)
    with pytest.raises(FinegptError, match=r"^loss_chunks=True: must be an integer >= 0"):
        RunConfig(loss_chunks=True)


def test_cli_offers_chunking_when_the_logits_decide_and_the_guide_then_fits_a_4090_eager(capsys):
    guide = str(Path(__file__).resolve().parents[1] / "configs" / "guide_24gb.py")
    assert main(["memory", guide, "--gpu", "4090", "--compile=False"]) == 0
    out = capsys.readouterr().out
    assert "out of memory" in out and "(largest term: logits + cross-entropy)" in out
    assert "hint: the logits decide it: --loss_chunks=8" in out
    assert main(["memory", guide, "--gpu", "4090", "--compile=False", "--loss_chunks=8"]) == 0
    out = capsys.readouterr().out
    verdict = next(line for line in out.splitlines() if line.startswith("RTX 4090"))
    assert ": fits: needs" in verdict and "hint:" not in out
    assert "CPU-calibrated, GPU pending (bench/gpu_check.py): loss chunk (backward, recomputed)" in out


def test_a_cuda_peak_inside_math_attention_backward_names_its_cpu_calibrated_terms():
    cfg = ModelConfig(n_layer=12, n_head=12, n_embd=768, block_size=1024, vocab_size=50304)
    run = RunConfig(batch_size=4, dtype="bf16", attention="math", device="cuda", loss_chunks=8)
    (note,) = estimate(cfg, run).notes
    assert note.startswith("CPU-calibrated, GPU pending (bench/gpu_check.py): softmax backward (math attention), ")
    assert "math-attention backward gradients (v, output, residual)" in note
    assert estimate(cfg, replace(run, device="cpu")).notes == []  # measured where it runs


def test_widgets_and_solver_know_the_knob():
    from finegpt import widgets
    from finegpt.memory import get_gpu, max_micro_batch

    guide = ModelConfig(n_layer=10, n_head=10, n_embd=640, block_size=1024)
    run = RunConfig(batch_size=32, dtype="bf16", gpu="4090")
    assert max_micro_batch(guide, replace(run, loss_chunks=8), get_gpu("4090")) > 2 * max_micro_batch(
        guide, run, get_gpu("4090")
    )
    view = widgets.memory_view(n_layer=10, n_head=10, n_embd=640, batch_size=32, gpu="4090", dtype="bf16")
    chunked = widgets.memory_view(
        n_layer=10, n_head=10, n_embd=640, batch_size=32, gpu="4090", dtype="bf16", loss_chunks=8
    )
    assert (view.verdict, chunked.verdict) == ("out of memory", "fits")


# ---- the moments inside backward ------------------------------------------------------------------

WIDE = ModelConfig(n_layer=1, n_head=4, n_embd=256, block_size=64, vocab_size=50304)  # 1 layer, GPT-2's vocab
MISSED = {  # the corners a hand-picked grid missed, each peaking at a moment of its own
    "tied embedding gradient, bf16": (WIDE, RunConfig(batch_size=2, dtype="bf16", device="cpu")),
    "tied embedding gradient, fp32 (summed out of place)": (WIDE, RunConfig(batch_size=2, dtype="fp32", device="cpu")),
    "math attention T=1024": (
        ModelConfig(n_layer=2, n_head=4, n_embd=64, block_size=1024, vocab_size=512),
        RunConfig(batch_size=1, dtype="fp32", attention="math", device="cpu"),
    ),
    "checkpointing fp32": (
        ModelConfig(n_layer=2, n_head=4, n_embd=128, block_size=64, vocab_size=512),
        RunConfig(batch_size=4, dtype="fp32", activation_checkpointing=True, device="cpu"),
    ),
}
MOMENT_TERMS = {
    "tied embedding gradient, bf16": "embedding gradient (dense, tied)",
    "tied embedding gradient, fp32 (summed out of place)": "embedding gradient (dense, tied)",
    "math attention T=1024": "softmax backward (math attention)",
    "checkpointing fp32": "recompute transients (MLP backward)",
}


@pytest.mark.parametrize("name", MISSED)
def test_each_missed_moment_is_a_named_term_and_the_peak_is_within_one_percent(name):
    cfg, run = MISSED[name]
    assert MOMENT_TERMS[name] in estimate(cfg, run).phase_terms["train"]
    assert abs(_error(cfg, run)) <= 0.01


def test_cpu_measurement_reads_the_allocator_and_a_dispatch_mode_would_read_one_vocab_gradient_more():
    cfg, run = MISSED["tied embedding gradient, bf16"]
    default = measure(cfg, run, evals=False)["train"]
    assert default == measure(cfg, run, tracker=ProfiledBytes(), evals=False)["train"]
    # under a TorchDispatchMode autograd sums the tied weight's two gradients out of place: + V*C fp32
    extra = measure(cfg, run, tracker=LiveBytes(), evals=False)["train"] - default
    assert abs(extra - 50304 * 256 * 4) <= 0.01 * 50304 * 256 * 4


SEARCH_FOUND = {  # configs bench/memory_search.py drew and missed, each now a named term (one thread)
    "CPU flash attention's eval forward: its fp32 logsumexp beside its output": (
        ModelConfig(n_layer=4, n_head=8, n_embd=64, block_size=1024, vocab_size=256),
        RunConfig(batch_size=2, dtype="bf16", gradient_accumulation_steps=2, loss_chunks=8, device="cpu"),
        "eval forward (no grad)",
    ),
    "CPU flash attention, bf16 T=512 (16-bit score copies, matmul scratch)": (
        ModelConfig(n_layer=4, n_head=2, n_embd=32, block_size=512, vocab_size=64),
        RunConfig(batch_size=1, dtype="bf16", loss_chunks=8, device="cpu"),
        "CPU flash-attention workspace",
    ),
    "CPU flash attention with dropout: the math fallback's T x T gradient": (
        ModelConfig(n_layer=2, n_head=2, n_embd=64, block_size=512, vocab_size=512, dropout=0.1),
        RunConfig(batch_size=1, dtype="fp32", device="cpu"),
        "softmax backward (math attention)",
    ),
    "math attention with dropout: one T x T gradient at a time": (
        ModelConfig(n_layer=2, n_head=2, n_embd=64, block_size=512, vocab_size=64, dropout=0.1),
        RunConfig(batch_size=1, dtype="bf16", attention="math", device="cpu"),
        "math-attention backward gradients (v, output, residual)",
    ),
    "backward's last matmul, every gradient made (fp32, chunked loss)": (
        ModelConfig(n_layer=2, n_head=1, n_embd=128, block_size=64, vocab_size=64, bias=False),
        RunConfig(batch_size=1, dtype="fp32", loss_chunks=8, device="cpu"),
        "gradients + the first block's c_attn backward",
    ),
    "chunked loss: the 2nd chunk's sum, its inputs' gradients and the checkpoints' RNG states": (
        ModelConfig(n_layer=2, n_head=1, n_embd=32, block_size=64, vocab_size=256),
        RunConfig(batch_size=2, dtype="fp32", loss_chunks=8, device="cpu"),
        "loss chunk (backward, recomputed)",
    ),
    "checkpointing: a recomputed block's math attention backward": (
        ModelConfig(n_layer=4, n_head=2, n_embd=32, block_size=128, vocab_size=512),
        RunConfig(
            batch_size=4, dtype="fp32", attention="math", activation_checkpointing=True, loss_chunks=2, device="cpu"
        ),
        "attention backward (recomputed block)",
    ),
    "checkpointing, bf16 flash with dropout: the recomputed MLP's 16-bit matmul scratch": (
        ModelConfig(n_layer=2, n_head=1, n_embd=32, block_size=128, vocab_size=64, dropout=0.1, bias=False),
        RunConfig(
            batch_size=4,
            gradient_accumulation_steps=2,
            dtype="bf16",
            activation_checkpointing=True,
            loss_chunks=8,
            device="cpu",
        ),
        "recompute transients (MLP backward)",
    ),
    "pure bf16, wide: c_fc's backward with both weight gradients": (
        ModelConfig(n_layer=1, n_head=2, n_embd=256, block_size=128, vocab_size=256, bias=False),
        RunConfig(
            batch_size=1,
            dtype="pure_bf16",
            attention="math",
            activation_checkpointing=True,
            loss_chunks=8,
            device="cpu",
        ),
        "recompute transients (MLP backward)",
    ),
    "eval's MLP: autocast copies made so far and c_proj's packed weight": (
        ModelConfig(n_layer=2, n_head=1, n_embd=128, block_size=32, vocab_size=64),
        RunConfig(batch_size=8, dtype="bf16", device="cpu"),
        "autocast copies kept (last MLP backward)",
    ),
    "chunked loss, autocast, chunks under 32 tokens: the weight gradient's V x C matmul copy": (
        ModelConfig(n_layer=2, n_head=1, n_embd=32, block_size=16, vocab_size=50304, dropout=0.1),
        RunConfig(batch_size=1, dtype="bf16", loss_chunks=4, device="cpu"),
        "loss chunk (backward, recomputed)",
    ),
    "the full loss, pure bf16 over 16 tokens: the LM head gradient's matmul copy": (
        ModelConfig(n_layer=4, n_head=2, n_embd=32, block_size=16, vocab_size=50304, bias=False),
        RunConfig(batch_size=1, dtype="pure_bf16", attention="math", device="cpu"),
        "LM head gradient matmul copy (CPU 16-bit)",
    ),
    "eval, pure bf16 over 16 tokens: c_proj's matmul packs one 32-column panel of its weight": (
        ModelConfig(n_layer=1, n_head=2, n_embd=384, block_size=16, vocab_size=64),
        RunConfig(
            batch_size=1,
            gradient_accumulation_steps=2,
            dtype="pure_bf16",
            attention="math",
            loss_chunks=2,
            device="cpu",
        ),
        "eval forward (no grad)",
    ),
    "eval, chunked loss, pure bf16, C=32: the LM head's matmul packs its V x C weight": (
        ModelConfig(n_layer=2, n_head=2, n_embd=32, block_size=64, vocab_size=2048, dropout=0.1),
        RunConfig(
            batch_size=3,
            gradient_accumulation_steps=2,
            dtype="pure_bf16",
            attention="math",
            loss_chunks=4,
            device="cpu",
        ),
        "eval forward (no grad)",
    ),
    "chunked loss, pure bf16, chunks of 16 tokens: the LM head's input gradient packs its weight": (
        ModelConfig(n_layer=2, n_head=4, n_embd=64, block_size=128, vocab_size=2048),
        RunConfig(batch_size=1, dtype="pure_bf16", attention="math", loss_chunks=8, device="cpu"),
        "loss chunk (backward, recomputed)",
    ),
    "CPU flash dropout fallback, fp32, H=1: views keep c_attn's output": (
        ModelConfig(n_layer=2, n_head=1, n_embd=32, block_size=128, vocab_size=64, dropout=0.1),
        RunConfig(batch_size=3, gradient_accumulation_steps=2, dtype="fp32", loss_chunks=4, device="cpu"),
        "activations (all layers)",
    ),
    "checkpointing: the first block recomputed, at backward's last matmul, beside the embeddings' dropout mask": (
        ModelConfig(n_layer=1, n_head=4, n_embd=256, block_size=16, vocab_size=64, dropout=0.1),
        RunConfig(batch_size=4, dtype="fp32", activation_checkpointing=True, device="cpu"),
        "gradients + the first block's c_attn backward",
    ),
    "checkpointing, autocast: the recomputed attention's backward after the MLP's copies are freed": (
        ModelConfig(n_layer=1, n_head=1, n_embd=384, block_size=128, vocab_size=64),
        RunConfig(batch_size=1, dtype="bf16", attention="math", activation_checkpointing=True, device="cpu"),
        "autocast copies (recomputed attention)",
    ),
    "checkpointing on CPU: each checkpointed block's saved RNG state": (
        ModelConfig(n_layer=6, n_head=1, n_embd=16, block_size=64, vocab_size=256),
        RunConfig(
            batch_size=2, gradient_accumulation_steps=2, dtype="fp32", activation_checkpointing=True, device="cpu"
        ),
        "activations (all layers)",
    ),
    "eager autocast: the last weight gradient's 16-bit copy beside its fp32 cast, every gradient made": (
        ModelConfig(n_layer=1, n_head=1, n_embd=384, block_size=16, vocab_size=64),
        RunConfig(batch_size=1, dtype="bf16", attention="math", device="cpu"),
        "gradients + the first block's c_attn backward",
    ),
    "eager autocast, few tokens: the first block's MLP backward after the blocks above": (
        ModelConfig(n_layer=2, n_head=4, n_embd=128, block_size=32, vocab_size=256),
        RunConfig(batch_size=2, dtype="bf16", attention="math", device="cpu"),
        "gradients + the first block's MLP backward",
    ),
    "eager autocast checkpointing: c_proj's weight gradient leaves its matmul in 16 bits": (
        ModelConfig(n_layer=1, n_head=1, n_embd=128, block_size=16, vocab_size=64),
        RunConfig(batch_size=8, dtype="bf16", attention="math", activation_checkpointing=True, device="cpu"),
        "recompute transients (MLP backward)",
    ),
    "eager checkpointing, math attention: the recompute's masked scores bound while softmax and dropout run": (
        ModelConfig(n_layer=4, n_head=2, n_embd=64, block_size=1024, vocab_size=2048, dropout=0.1, bias=False),
        RunConfig(
            batch_size=1, dtype="bf16", attention="math", activation_checkpointing=True, loss_chunks=4, device="cpu"
        ),
        "attention weights (recompute, math)",
    ),
    "checkpointing on CPU: every checkpoint's saved RNG state beside the top block's recompute": (
        ModelConfig(n_layer=4, n_head=1, n_embd=32, block_size=16, vocab_size=256),
        RunConfig(
            batch_size=2,
            gradient_accumulation_steps=2,
            dtype="fp32",
            activation_checkpointing=True,
            loss_chunks=4,
            device="cpu",
        ),
        "checkpoints + recomputed block (worst block)",
    ),
    "CPU 16-bit math attention with dropout: the bmm backward's contiguous operand copies": (
        ModelConfig(n_layer=3, n_head=4, n_embd=64, block_size=512, vocab_size=256, dropout=0.1),
        RunConfig(
            batch_size=1,
            dtype="pure_bf16",
            attention="math",
            activation_checkpointing=True,
            loss_chunks=2,
            device="cpu",
        ),
        "attention backward (recomputed block)",
    ),
    # two threads, as the search measures: oneDNN's 16-bit matmul scratch measured per shape (cpu_scratch.py)
    "eval, bf16 over 256 tokens: c_proj's matmul scratch measured on this CPU (2 threads)": (
        ModelConfig(n_layer=3, n_head=2, n_embd=96, block_size=256, vocab_size=256, dropout=0.1, bias=False),
        RunConfig(batch_size=1, dtype="bf16", loss_chunks=8, device="cpu", cpu_threads=2),
        "eval forward (no grad)",
    ),
    "eval, pure bf16 over 64 tokens: c_proj's matmul scratch measured on this CPU (2 threads)": (
        ModelConfig(n_layer=1, n_head=4, n_embd=256, block_size=32, vocab_size=64),
        RunConfig(batch_size=2, dtype="pure_bf16", loss_chunks=8, device="cpu", cpu_threads=2),
        "eval forward (no grad)",
    ),
    "autocast MLP backward: 16-bit weight gradients, c_fc's input gradient's measured scratch (2 threads)": (
        ModelConfig(n_layer=1, n_head=2, n_embd=384, block_size=64, vocab_size=64, dropout=0.1),
        RunConfig(batch_size=4, dtype="bf16", attention="math", loss_chunks=4, device="cpu", cpu_threads=2),
        "MLP backward transients (last block)",
    ),
    "chunked loss over 128 tokens: the LM head's weight gradient's measured scratch (2 threads)": (
        ModelConfig(n_layer=1, n_head=1, n_embd=128, block_size=512, vocab_size=2048),
        RunConfig(
            batch_size=1,
            gradient_accumulation_steps=2,
            dtype="pure_bf16",
            attention="math",
            loss_chunks=4,
            device="cpu",
            cpu_threads=2,
        ),
        "loss chunk (backward, recomputed)",
    ),
    "chunked loss, tiny head: the chunk's own RNG state alive through its backward (2 threads)": (
        ModelConfig(n_layer=2, n_head=1, n_embd=32, block_size=16, vocab_size=64),
        RunConfig(
            batch_size=4, gradient_accumulation_steps=2, dtype="pure_bf16", loss_chunks=8, device="cpu", cpu_threads=2
        ),
        "loss chunk (backward, recomputed)",
    ),
    "CPU flash with dropout, pure bf16: the forward at the last block's math fallback (2 threads)": (
        ModelConfig(n_layer=4, n_head=1, n_embd=32, block_size=512, vocab_size=64, dropout=0.1, bias=False),
        RunConfig(batch_size=1, gradient_accumulation_steps=2, dtype="pure_bf16", device="cpu", cpu_threads=2),
        "attention forward (CPU flash fallback, last block)",
    ),
    "CPU flash with dropout, pure bf16, B and H > 1: the fallback's operand copies (2 threads)": (
        ModelConfig(n_layer=2, n_head=2, n_embd=64, block_size=256, vocab_size=64, dropout=0.1),
        RunConfig(batch_size=2, dtype="pure_bf16", device="cpu", cpu_threads=2),
        "attention forward (CPU flash fallback, last block)",
    ),
    "CPU flash with dropout, bf16 autocast: ln_1's fp32 output beside the fallback (2 threads)": (
        ModelConfig(n_layer=4, n_head=1, n_embd=32, block_size=512, vocab_size=64, dropout=0.1),
        RunConfig(batch_size=1, gradient_accumulation_steps=2, dtype="bf16", device="cpu", cpu_threads=2),
        "attention forward (CPU flash fallback, last block)",
    ),
    "full loss over 64 tokens: the LM head's input gradient, its measured scratch (2 threads)": (
        ModelConfig(n_layer=1, n_head=2, n_embd=128, block_size=64, vocab_size=2048, bias=False),
        RunConfig(batch_size=1, gradient_accumulation_steps=2, dtype="pure_bf16", device="cpu", cpu_threads=2),
        "LM head gradient matmul copy (CPU 16-bit)",
    ),
    "checkpointing, math: the recomputed block's causal mask and its checkpoint's RNG state (2 threads)": (
        ModelConfig(n_layer=2, n_head=1, n_embd=32, block_size=16, vocab_size=256),
        RunConfig(
            batch_size=3,
            dtype="pure_bf16",
            attention="math",
            activation_checkpointing=True,
            device="cpu",
            cpu_threads=2,
        ),
        "checkpoints + recomputed block (worst block)",
    ),
    "checkpointing, bf16: the recomputed block's 16-bit copies, lm_head's freed by its backward (2 threads)": (
        ModelConfig(n_layer=1, n_head=2, n_embd=256, block_size=32, vocab_size=2048, bias=False),
        RunConfig(
            batch_size=1,
            gradient_accumulation_steps=2,
            dtype="bf16",
            attention="math",
            activation_checkpointing=True,
            loss_chunks=4,
            device="cpu",
            cpu_threads=2,
        ),
        "autocast copies (recomputed block)",
    ),
    "eval, pure bf16, full loss: the LM head's matmul scratch beside two batches' logits (2 threads)": (
        ModelConfig(n_layer=4, n_head=2, n_embd=32, block_size=32, vocab_size=256),
        RunConfig(
            batch_size=2,
            dtype="pure_bf16",
            attention="math",
            activation_checkpointing=True,
            device="cpu",
            cpu_threads=2,
        ),
        "eval forward (no grad)",
    ),
    "checkpointing, CPU flash with dropout: the recomputed block's fp32 math fallback before its MLP": (
        ModelConfig(n_layer=6, n_head=2, n_embd=16, block_size=128, vocab_size=256, dropout=0.1),
        RunConfig(
            batch_size=2, dtype="bf16", attention="flash", activation_checkpointing=True, device="cpu", cpu_threads=2
        ),
        "attention forward (CPU flash fallback, recomputed block)",
    ),
    "checkpointing, chunked loss: lm_head's 16-bit copy is freed inside each chunk (was +4.23 %)": (
        ModelConfig(n_layer=3, n_head=8, n_embd=96, block_size=128, vocab_size=2048),
        RunConfig(
            batch_size=3, dtype="bf16", attention="math", activation_checkpointing=True, loss_chunks=8, device="cpu"
        ),
        "autocast copies (recomputed attention)",
    ),
}


def test_checkpointing_on_cpu_keeps_one_rng_state_per_block():
    cfg = ModelConfig(n_layer=6, n_head=1, n_embd=16, block_size=64, vocab_size=256)
    ckpt = dict(dtype="fp32", activation_checkpointing=True)
    cpu, cuda = RunConfig(device="cpu", **ckpt), RunConfig(device="cuda", **ckpt)
    n = cpu.batch_size * cfg.block_size
    assert a.per_layer_fixed_bytes(cfg, cpu) == torch.get_rng_state().numel() == 5056
    assert a.activation_bytes(cfg, cpu) == 6 * (n * 16 * 4 + 5056)
    assert a.activation_bytes(cfg, cuda) == 6 * n * 16 * 4  # on CUDA the saved CPU state is host memory


@pytest.mark.parametrize("name", SEARCH_FOUND)
def test_each_moment_the_search_found_is_a_named_term_within_the_bound(name):
    cfg, run, term = SEARCH_FOUND[name]
    torch.set_num_threads(run.cpu_threads)  # the one_thread fixture puts it back
    assert estimate(cfg, run).terms[term] > 0
    measured, predicted = measure(cfg, run), estimate(cfg, run).peaks
    for phase in ("train", "eval", "first_eval"):
        error = (predicted[phase] - measured[phase]) / measured[phase]
        assert -0.01 <= error <= 0.03, (phase, error)


def test_chunked_loss_with_a_small_width_peaks_at_backwards_first_chunk_beside_every_other_rng_state():
    # C 16: the RNG state each checkpointed chunk saved (5056 B) outweighs two chunks' input gradients, so the
    # last chunk's backward (the first to run, every other chunk's state still saved) is the loss's moment
    cfg = ModelConfig(n_layer=6, n_head=1, n_embd=16, block_size=16, vocab_size=64, dropout=0.1)
    run = RunConfig(batch_size=1, dtype="bf16", loss_chunks=8, device="cpu", cpu_threads=2)
    torch.set_num_threads(2)  # the one_thread fixture puts it back
    assert max(loss_chunk.chunk_input_grads_and_rng_bytes(cfg, run)) == 7 * 5056
    measured, predicted = measure(cfg, run, evals=False)["train"], estimate(cfg, run).peaks["train"]
    assert "loss chunk (backward, recomputed)" in estimate(cfg, run).phase_terms["train"]
    assert -0.01 <= (predicted - measured) / measured <= 0.03


def test_cpu_bf16_matmul_scratch_matches_the_profiled_bytes():
    # bench/cpu_mm_scratch.py's rows: (rows, K, N, threads) -> forward x @ W^T's scratch bytes
    for (rows, K, N, threads), measured in {
        (16, 1536, 384, 2): 202368,
        (32, 1024, 256, 1): 70656,
        (16, 64, 16, 2): 6144,
        (24, 96, 2048, 2): 22144,
        (8, 16, 16, 2): 0,  # 8 * 16 * 16 <= 4096: PyTorch's own kernel
    }.items():
        assert t.cpu_bf16_panel_scratch_bytes(rows, K, N, threads) == measured
    # grad (rows x inner) @ W (inner x out), out <= 64: W's 32-column panels, at least one a thread
    assert t.cpu_bf16_narrow_grad_input_scratch_bytes(16, 2048, 64, 1) - 267264 in range(0, 6 * 1024)
    assert t.cpu_bf16_narrow_grad_input_scratch_bytes(16, 8192, 32, 2) - 1054336 in range(0, 6 * 1024)
    # out 33 to 64 and inner above 8192: the inner dimension blocked, 1 MiB of panels counted (1,320,704 measured)
    assert t.cpu_bf16_narrow_grad_input_scratch_bytes(32, 50304, 64, 2) == 2 * 8192 * 64 + 5760


def test_cpu_bf16_weight_gradient_scratch_follows_rows_tokens_cols_and_threads():
    # bench/cpu_mm_scratch.py --mlp's rows: grad^T (rows x tokens) @ x (tokens x cols) -> scratch bytes
    for (rows, tokens, cols, threads), measured in {
        (16, 48, 64, 2): 40064,  # c_proj's shape, C 16 over 48 tokens: every row a thread, odd tokens
        (16, 48, 64, 1): 20352,
        (16, 64, 64, 2): 30464,
        (16, 16, 64, 1): 10368,  # tokens count from 32
        (16, 512, 64, 1): 88192,  # from 512 tokens, 64 bytes a row more
        (96, 64, 384, 1): 29824,  # one thread: 96 rows as 128
        (128, 128, 512, 2): 108288,
        (128, 64, 32, 2): 42752,  # c_fc's shape: the threads share the rows
        (512, 128, 128, 2): 173824,  # in blocks of 128 rows
        (16, 16, 16, 2): 0,  # 16 * 16 * 16 <= 4096: PyTorch's own kernel
    }.items():
        assert t.cpu_bf16_mm_wgrad_scratch_bytes(rows, tokens, cols, threads) == measured
    # c_fc's shape at C 16, 2 threads: an upper bound (30,464 and 35,968 measured)
    assert t.cpu_bf16_mm_wgrad_scratch_bytes(64, 64, 16, 2) - 30464 in range(0, 8 * 1024 + 1)
    assert t.cpu_bf16_mm_wgrad_scratch_bytes(64, 48, 16, 2) - 35968 in range(0, 8 * 1024 + 1)


def test_cpu_flash_workspace_counts_the_16_bit_copies_and_the_forward_copies():
    cfg = ModelConfig(n_layer=1, n_head=2, n_embd=32, block_size=512, vocab_size=64)
    fp32, bf16 = RunConfig(dtype="fp32", device="cpu"), RunConfig(dtype="bf16", device="cpu")
    qS, kvS = 64, 512  # T = 512: q blocks of 64 rows, kv blocks of 512
    assert t.cpu_flash_workspace_bytes(cfg, fp32) == 4 * (2 * qS * kvS + qS)
    assert t.cpu_flash_workspace_bytes(cfg, bf16) == 4 * (2 * qS * kvS + qS) + 2 * 2 * qS * kvS + 46208
    assert t.cpu_flash_forward_copies_bytes(cfg, bf16, 512) == 2 * 512 * 32 * 2 + 512 * 16 * 2
    assert t.cpu_flash_forward_copies_bytes(cfg, fp32, 512) == 0
    dropout = ModelConfig(n_layer=1, n_head=2, n_embd=32, block_size=512, vocab_size=64, dropout=0.1)
    assert t.cpu_flash_workspace_bytes(dropout, fp32) == 0  # training runs the math fallback
    assert t.cpu_flash_workspace_bytes(dropout, fp32, backward=False) > 0  # eval has no dropout: flash


# ---- the search ----------------------------------------------------------------------------------


def test_a_fixed_seed_sample_of_the_search_never_under_predicts():
    """12 small eager configs drawn as bench/memory_search.py draws them: none under-predicted by more than
    1 % (the direction that lets a run go out of memory after a "fits"), none over by more than 3 %, in every
    phase: the search's target."""
    rows = memory_search.search(seed=2024, n=12, cap_bytes=24 * 2**20, compiled_share=0.0, log=lambda line: None)
    errors = [e for r in rows for e in r["errors"].values()]
    assert len(rows) == 12 and min(errors) >= -0.01 and max(errors) <= 0.03, "\n".join(memory_search.table(rows))
