"""torch.compile in the memory model: a compiled CPU step measured through the allocator matches the
compiled terms; the calibration file drives them; overheads are ranges and the verdict has three ways."""

import json
from dataclasses import replace

import pytest
import torch

from finegpt.cli import main
from finegpt.config import ModelConfig, config_file_settings
from finegpt.memory import GIB, RunConfig, bar_segments, custom_gpu, estimate
from finegpt.memory import calibration as cal
from finegpt.memory.calibrate import fit_compiled, write
from finegpt.memory.measurement import LiveBytes, measure
from finegpt.memory.profiled import ProfiledBytes

# one layer, 32 wide, but GPT-2's padded vocab: the logits dominate, as in the guide's configs
LOGITS_HEAVY = ModelConfig(n_layer=1, n_head=2, n_embd=32, block_size=32, vocab_size=50304)
TINY = ModelConfig(n_layer=2, n_head=2, n_embd=32, block_size=32, vocab_size=512)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _steps(tracker, cfg, run, eval_too=True):
    """measure()'s sequence (the iter-0 eval, a step, a measured step, an eval) under any tracker."""
    return measure(cfg, run, tracker=tracker, evals=eval_too)


@pytest.mark.parametrize("run_kw", [dict(dtype="fp32"), dict(dtype="bf16", attention="math")])
def test_profiler_tracker_agrees_with_the_dispatch_tracker_on_eager_steps(run_kw):
    run = RunConfig(batch_size=4, device="cpu", **run_kw)
    live, profiled = _steps(LiveBytes(), TINY, run), _steps(ProfiledBytes(), TINY, run)
    for phase in ("train", "optimizer", "eval", "first_eval"):
        assert abs(profiled[phase] - live[phase]) <= 64, phase  # intra-op scratch the profiler also sees


def test_a_compiled_cpu_step_matches_the_compiled_terms_within_5_percent():
    """Inductor on CPU at vocab 50304, bf16: the compiled step keeps 3 V-wide bf16 tensors at the start of
    backward where eager keeps 14 bytes per logit. The training step only (the eval phases are in
    bench/memory_validation.py's grid): one cold compile, about a minute."""
    run = RunConfig(batch_size=8, dtype="bf16", device="cpu", compile=True)
    measured, predicted = _steps(ProfiledBytes(), LOGITS_HEAVY, run, eval_too=False), estimate(LOGITS_HEAVY, run)
    for phase in ("train", "optimizer"):
        assert predicted.peaks[phase] == pytest.approx(measured[phase], rel=0.05), phase
    eager = estimate(LOGITS_HEAVY, replace(run, compile=False))
    assert measured["train"] < 0.55 * eager.peaks["train"]  # the fused loss keeps no fp32 logits
    assert predicted.terms["logits + cross-entropy"] == 3 * 8 * 32 * 50304 * 2


def test_fitting_the_compiled_coefficients_recovers_what_the_measurements_say():
    run = RunConfig(batch_size=8, dtype="bf16", device="cpu", compile=True)
    r, logits_bytes = estimate(LOGITS_HEAVY, run), 8 * 32 * 50304 * 2
    measured = {"train": r.peaks["train"] + logits_bytes // 2, "eval": r.peaks["eval"]}  # half a copy more
    assert fit_compiled([(LOGITS_HEAVY, run, measured)]) == {"logits_train_copies": 3.5, "logits_eval_copies": 2.0}


def test_the_calibration_file_loads_and_changing_it_changes_the_estimate(tmp_path):
    shipped = cal.load()
    assert shipped["compiled_cpu"]["status"] == cal.CPU_MEASURED and shipped["compiled"]["status"].startswith("GPU")
    pending = {**shipped, "compiled": {}, "overheads": {}}  # as before any GPU measured the compiled step
    run = RunConfig(batch_size=8, dtype="bf16", compile=True, gpu="4090")
    with cal.use(pending):
        before = estimate(LOGITS_HEAVY, run)
    assert (
        before.compiled_status == cal.CPU_ONLY and before.overheads["compiled terms (CPU-inductor calibrated)"][1] > 0
    )
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(pending))
    write({"compiled": {"logits_train_copies": 4.0, "status": "GPU-measured"}, "overheads": {}}, path)
    with cal.use(path):
        after, on_cpu = estimate(LOGITS_HEAVY, run), estimate(LOGITS_HEAVY, replace(run, device="cpu"))
    assert after.peaks["train"] - before.peaks["train"] == 8 * 32 * 50304 * 2  # one more bf16 logits copy
    assert (
        after.compiled_status == "GPU-measured" and after.overheads["compiled terms (CPU-inductor calibrated)"][1] == 0
    )
    # a CPU run keeps CPU inductor's coefficients: the GPU's do not describe it
    assert on_cpu.terms["logits + cross-entropy"] == 3 * 8 * 32 * 50304 * 2
    assert on_cpu.compiled_status == cal.CPU_MEASURED
    with cal.use(pending):
        assert estimate(LOGITS_HEAVY, run).peaks == before.peaks  # use() put the other file back


def test_a_measured_overhead_widens_its_cited_range():
    run = RunConfig(batch_size=8, dtype="bf16", gpu="4090")
    cited = estimate(LOGITS_HEAVY, run).overheads["CUDA context"]
    with cal.use({"compiled": {}, "overheads": {"cuda_context_gib_eager": 1.25}, "mfu": {}}):
        measured = estimate(LOGITS_HEAVY, run).overheads["CUDA context"]
    assert cited == (int(0.3 * GIB), int(0.8 * GIB)) and measured == (cited[0], int(1.25 * GIB))


def test_the_verdict_has_three_ways_and_names_what_decides_it():
    cfg, run = ModelConfig(n_layer=10, n_head=10, n_embd=640, bias=False), RunConfig(batch_size=32, dtype="bf16")
    low, high = estimate(cfg, run).nvidia_smi_range
    verdicts = {
        name: estimate(cfg, replace(run, gpu=f"custom:{gib}")).verdict
        for name, gib in (("fits", high / GIB + 0.1), ("tight", (low + high) / 2 / GIB), ("oom", low / GIB - 0.1))
    }
    assert verdicts["fits"].status == "fits" and verdicts["fits"].deciding == "logits + cross-entropy"
    assert verdicts["tight"].label == "tight (inside the uncertainty)"
    assert verdicts["tight"].deciding == "allocator reserve"  # the widest range: 5-20 % of 30 GiB
    assert verdicts["oom"].status == "out of memory" and "needs" in str(verdicts["oom"])


@pytest.mark.parametrize("gib", [10, 20, 30, 40])
def test_the_bar_and_the_verdict_agree(gib):
    report = estimate(
        ModelConfig(n_layer=10, n_head=10, n_embd=640, bias=False),
        RunConfig(batch_size=32, dtype="bf16", compile=True, gpu=custom_gpu(gib)),
    )
    segments = bar_segments(report)
    solid = sum(v for _, v, kind in segments if kind != "uncertain")
    end = sum(v for _, v, _ in segments)
    expected = "fits" if end <= report.memory_bytes else "out of memory" if solid > report.memory_bytes else "tight"
    assert report.verdict.status == expected
    assert [k for _, _, k in segments] == sorted(
        [k for _, _, k in segments], key=["allocated", "overhead", "uncertain"].index
    )


def test_config_files_compile_unless_they_say_otherwise_and_say_so(tmp_path, capsys):
    plain, eager = tmp_path / "plain.py", tmp_path / "eager.py"
    plain.write_text("n_layer = 2\n")
    eager.write_text("n_layer = 2\ncompile = False\n")
    values, notes = config_file_settings(plain)
    assert values["compile"] is True and "nanoGPT's train.py default" in notes[0]
    assert config_file_settings(eager) == ({"n_layer": 2, "compile": False}, [])
    assert config_file_settings(plain, {"compile": False}) == ({"compile": False, "n_layer": 2}, [])
    assert main(["memory", str(plain), "--gpu", "4090"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("note: compile=True") and "compile=True" in out.splitlines()[1]


def test_a_resumed_run_keeps_its_saved_compile_over_the_config_files_default(tmp_path):
    from finegpt.config import TrainConfig, config_dict
    from finegpt.train.checkpoint import save_checkpoint
    from finegpt.train.launch import resolve_settings

    out, plain = tmp_path / "out", tmp_path / "plain.py"
    plain.write_text(f"out_dir = {str(out)!r}\n")
    saved = config_dict(TINY, TrainConfig(out_dir=str(out), compile=False))
    save_checkpoint({"model": {}, "iter_num": 3, "config": saved}, out, keep=1)
    values, ckpt, notes = resolve_settings(str(plain), [], resume=True)
    assert values["compile"] is False and notes == [] and ckpt["iter_num"] == 3  # the run goes on as it ran
    values, _, notes = resolve_settings(str(plain), [], resume=False)
    assert values["compile"] is True and notes[0].startswith("note: compile=True")  # a new run: the default


# ---- the compiled no-grad forward (CPU inductor's eval graph) --------------------------------------


def _first_eval(cfg: ModelConfig, run: RunConfig) -> int:
    """measure()'s iteration-0 eval alone: the eval graph compiled first, then two eval batches measured."""
    import torch

    from finegpt import step
    from finegpt.memory.measurement import EVAL_ITERS, RandomBatches, build

    torch.manual_seed(0)
    with ProfiledBytes() as tracker:
        parts = build(cfg, run, torch.device("cpu"))
        batches = RandomBatches(cfg, run.eval_micro_batch)
        step.eval_loss(parts, batches, 1)  # compiling is not the step
        tracker.reset_peak()
        step.eval_loss(parts, batches, EVAL_ITERS)
        return tracker.peak_bytes


@pytest.mark.parametrize(
    "cfg, run_kw, term",
    [  # configs of bench/memory_search.py's corners that it found under-predicted by 11-39 %
        (  # one block: the scores, the fp32 exp and the softmax, T x T each
            ModelConfig(n_layer=1, n_head=8, n_embd=128, block_size=256, vocab_size=8192, bias=False),
            dict(batch_size=4, dtype="pure_bf16", attention="math", loss_chunks=4),
            "compiled_eval_softmax_token_bytes",
        ),
        (  # six pure bf16 blocks: the residual and the copies beside the T x T tensors
            ModelConfig(n_layer=6, n_head=2, n_embd=16, block_size=128, vocab_size=2048),
            dict(batch_size=4, dtype="pure_bf16", attention="math", loss_chunks=8),
            "compiled_eval_softmax_token_bytes",
        ),
        (  # fp32: the softmax overwrites the scores in place, one T x T tensor
            ModelConfig(n_layer=4, n_head=2, n_embd=32, block_size=128, vocab_size=512),
            dict(batch_size=4, dtype="fp32", attention="math", loss_chunks=2),
            "compiled_eval_softmax_token_bytes",
        ),
        (  # fp32, four blocks: the split beside the last block's scores buffer, kept in inductor's pool
            ModelConfig(n_layer=4, n_head=4, n_embd=32, block_size=64, vocab_size=256, bias=False),
            dict(batch_size=8, dtype="fp32", attention="math", loss_chunks=4),
            "compiled_eval_math_token_bytes",
        ),
        (  # one head: q, k, v are views of c_attn's output, kept through the softmax
            ModelConfig(n_layer=4, n_head=1, n_embd=32, block_size=512, vocab_size=64),
            dict(batch_size=4, dtype="bf16", attention="math", loss_chunks=4, gradient_accumulation_steps=2),
            "compiled_eval_math_token_bytes",
        ),
        (  # c_proj's matmul: its input (c_fc's output) is alive beside its output and three residual pieces
            ModelConfig(n_layer=4, n_head=1, n_embd=64, block_size=32, vocab_size=64, bias=False),
            dict(batch_size=1, dtype="bf16", attention="math", loss_chunks=4),
            "compiled_eval_mlp_token_bytes",
        ),
        (  # one block of flash at T = 1024: ln_1's output waits for reuse; the kernel's per-thread kv blocks
            ModelConfig(n_layer=1, n_head=1, n_embd=128, block_size=1024, vocab_size=512, bias=False),
            dict(batch_size=1, dtype="bf16", attention="flash"),
            "cpu_flash_packed_kv_block_bytes",
        ),
        (  # autocast, two sequences: v's copy fused into the softmax's kernel keeps qkv to it
            ModelConfig(n_layer=4, n_head=4, n_embd=64, block_size=64, vocab_size=256),
            dict(batch_size=2, dtype="bf16", attention="math"),
            "compiled_eval_math_token_bytes",
        ),
        (  # the LM head's bf16 mm over 32 rows: the panels and accumulator of the eager kernel
            ModelConfig(n_layer=4, n_head=4, n_embd=32, block_size=16, vocab_size=512),
            dict(batch_size=2, dtype="pure_bf16", attention="flash"),
            "compiled_head_pack_bytes",
        ),
        (  # the LM head's bf16 mm over 96 rows: a panel of its weight a thread
            ModelConfig(n_layer=1, n_head=1, n_embd=128, block_size=32, vocab_size=2048),
            dict(batch_size=3, dtype="pure_bf16", attention="math"),
            "compiled_head_pack_bytes",
        ),
        (  # the LM head's bf16 mm packs its V x C weight (192 tokens, C = 32)
            ModelConfig(n_layer=4, n_head=2, n_embd=32, block_size=64, vocab_size=8192, bias=False),
            dict(batch_size=3, dtype="bf16", attention="flash"),
            "compiled_head_pack_bytes",
        ),
        (  # six blocks of flash attention: the previous block's c_fc output waits in inductor's pool
            ModelConfig(n_layer=6, n_head=1, n_embd=16, block_size=32, vocab_size=256),
            dict(batch_size=4, dtype="fp32", attention="flash", loss_chunks=4),
            "pooled_mlp_hidden_token_bytes",
        ),
        (  # 16-bit flash at T = 256: the kernel packs k and v (2aC per token) beside its fp32 logsumexp
            ModelConfig(n_layer=2, n_head=8, n_embd=128, block_size=256, vocab_size=2048),
            dict(batch_size=3, dtype="pure_bf16", attention="flash", loss_chunks=8),
            "cpu_flash_logsumexp_token_bytes",
        ),
        (  # c_proj's bf16 addmm over 256 rows: oneDNN packs its 4C x C weight, as in the eager step
            ModelConfig(n_layer=1, n_head=8, n_embd=256, block_size=64, vocab_size=512),
            dict(batch_size=4, dtype="bf16", attention="flash", gradient_accumulation_steps=2),
            "compiled_mlp_pack_bytes",
        ),
        (  # one head, fp32: softmax @ v's output beside c_attn's output, whose views q, k, v are
            ModelConfig(n_layer=4, n_head=1, n_embd=64, block_size=256, vocab_size=256, dropout=0.1, bias=False),
            dict(batch_size=2, dtype="fp32", attention="math"),
            "compiled_eval_math_token_bytes",
        ),
        (  # pure bf16, two heads: k's copy is kept as the buffer for softmax @ v, beside v's copy
            ModelConfig(n_layer=2, n_head=2, n_embd=64, block_size=64, vocab_size=64, dropout=0.1),
            dict(batch_size=8, dtype="pure_bf16", attention="math", gradient_accumulation_steps=2),
            "compiled_eval_math_token_bytes",
        ),
        (  # fp32, one head: the first block's scores and qkv wait in inductor's pool through its MLP
            ModelConfig(n_layer=2, n_head=1, n_embd=32, block_size=512, vocab_size=256),
            dict(batch_size=2, dtype="fp32", attention="math"),
            "pooled_scores_mlp_token_bytes",
        ),
        (  # fp32, four heads (q, k, v copied out): the first block's scores wait, 10.75 % missed without
            ModelConfig(n_layer=2, n_head=4, n_embd=64, block_size=128, vocab_size=256),
            dict(batch_size=2, dtype="fp32", attention="math"),
            "pooled_scores_mlp_token_bytes",
        ),
        (  # fp32, four blocks: the scores wait through every block; the third's MLP, with 5 residual pieces
            ModelConfig(n_layer=4, n_head=1, n_embd=32, block_size=512, vocab_size=256),
            dict(batch_size=2, dtype="fp32", attention="math"),
            "pooled_scores_mlp_token_bytes",
        ),
        (  # fp32, one sequence, one head: the softmax is not written over the scores; both wait, 26.8 % missed
            ModelConfig(n_layer=6, n_head=1, n_embd=16, block_size=1024, vocab_size=64),
            dict(batch_size=1, dtype="fp32", attention="math", loss_chunks=4),
            "unfused_softmax_input_token_bytes",
        ),
        (  # pure bf16, 256 eval tokens: v's copy fused into the softmax's kernel keeps qkv and q's copy to it
            ModelConfig(n_layer=2, n_head=8, n_embd=64, block_size=64, vocab_size=2048),
            dict(batch_size=4, dtype="pure_bf16", attention="math", gradient_accumulation_steps=2),
            "compiled_eval_math_token_bytes",
        ),
        (  # one block, one head: ln_1's output is freed, softmax @ v's output made after the softmax
            ModelConfig(n_layer=1, n_head=1, n_embd=128, block_size=512, vocab_size=256, dropout=0.1),
            dict(batch_size=8, dtype="pure_bf16", attention="math", gradient_accumulation_steps=2, loss_chunks=8),
            "compiled_eval_math_token_bytes",
        ),
        (  # autocast flash, the 2nd block: the first block's MLP output waits beside the kernel's buffers
            ModelConfig(n_layer=2, n_head=1, n_embd=64, block_size=64, vocab_size=64),
            dict(batch_size=4, dtype="bf16", attention="flash", loss_chunks=8),
            "compiled_eval_attention_token_bytes",
        ),
        (  # autocast, C = 16: c_fc's bf16 addmm packs its weight; the first block's attention copies kept
            ModelConfig(n_layer=6, n_head=2, n_embd=16, block_size=32, vocab_size=64),
            dict(batch_size=2, dtype="bf16", attention="flash", gradient_accumulation_steps=2, loss_chunks=8),
            "c_fc_pack_bytes",
        ),
        (  # pure bf16, one block, two heads: k's copy is freed after the scores; v's copy alone at the softmax
            ModelConfig(n_layer=1, n_head=2, n_embd=128, block_size=256, vocab_size=64),
            dict(batch_size=4, dtype="pure_bf16", attention="math", gradient_accumulation_steps=2, loss_chunks=8),
            "compiled_eval_math_token_bytes",
        ),
        (  # autocast flash, one block: c_attn's weight copy is freed before the kernel runs
            ModelConfig(n_layer=1, n_head=2, n_embd=128, block_size=256, vocab_size=64, dropout=0.1),
            dict(batch_size=2, dtype="bf16", attention="flash", loss_chunks=2),
            "cpu_flash_packed_kv_token_bytes",
        ),
        (  # pure bf16, one sequence, one head: no stored exp; the scores and softmax wait through the MLP
            ModelConfig(n_layer=4, n_head=1, n_embd=32, block_size=512, vocab_size=64, bias=False),
            dict(batch_size=1, dtype="pure_bf16", attention="math", loss_chunks=2),
            "pooled_unstored_scores_token_bytes",
        ),
    ],
)
def test_the_compiled_eval_forward_is_predicted_from_its_generated_code(cfg, run_kw, term):
    from finegpt.memory import eval_forward

    run = RunConfig(device="cpu", compile=True, cpu_threads=1, **run_kw)
    assert getattr(eval_forward, term)(cfg, run) > 0
    measured, predicted = _first_eval(cfg, run), estimate(cfg, run).peaks["first_eval"]
    assert -0.01 <= (predicted - measured) / measured <= 0.05, (predicted, measured)


def test_inductor_pools_the_scores_only_where_its_own_peak_estimate_has_room():
    from finegpt.memory.eval_forward import pooled_scores_mlp_token_bytes

    def pooled(L, H, C, T, B=2, dtype="fp32"):
        cfg = ModelConfig(n_layer=L, n_head=H, n_embd=C, block_size=T, vocab_size=256)
        run = RunConfig(device="cpu", compile=True, batch_size=B, dtype=dtype, attention="math")
        return pooled_scores_mlp_token_bytes(cfg, run)

    # 2L/32/1h T=512: the first block's MLP (4aC + 2aC) + its scores (4HT) + qkv (3aC), per token
    assert pooled(2, 1, 32, 512) == 4 * 128 + 2 * 128 + 4 * 512 + 3 * 128
    assert pooled(2, 1, 32, 128) == 0  # the MLP outweighs the scores: inductor frees them
    assert pooled(2, 1, 64, 512) == 0  # measured exact without it (+0.07 %)
    assert pooled(1, 1, 32, 512) == 0  # no next block to wait for
    assert pooled(2, 1, 32, 512, dtype="bf16") == 0  # 16-bit softmaxes keep their input anyway
    assert pooled(2, 1, 32, 512, B=1) == pooled(2, 1, 32, 512) + 4 * 512  # one sequence: both T x T wait


@pytest.mark.parametrize(
    "cfg, run_kw, term",
    [  # training steps of bench/memory_search.py's corners that it found mispredicted by 2-40 %
        (  # one block recomputed in the backward graph: its attention's T x T tensors
            ModelConfig(n_layer=1, n_head=8, n_embd=128, block_size=256, vocab_size=8192, bias=False),
            dict(batch_size=4, dtype="pure_bf16", attention="math", loss_chunks=4, activation_checkpointing=True),
            "compiled_recomputed_softmax_bytes",
        ),
        (  # the logits' gradient waits for the tied sum at the end of backward
            ModelConfig(n_layer=2, n_head=1, n_embd=64, block_size=32, vocab_size=8192),
            dict(batch_size=4, dtype="fp32", attention="flash", activation_checkpointing=True),
            "compiled_ckpt_logits_grad_bytes",
        ),
        (  # dropout on math attention's weights: its bool mask and the dropped weights are saved
            ModelConfig(n_layer=2, n_head=2, n_embd=32, block_size=128, vocab_size=256, dropout=0.1),
            dict(batch_size=3, dtype="bf16", attention="math", loss_chunks=8),
            "attention_act_bytes",
        ),
        (  # pure bf16, flash with dropout recomputed in the backward graph: its fp32 math decomposition
            ModelConfig(n_layer=1, n_head=4, n_embd=128, block_size=64, vocab_size=256, dropout=0.1, bias=False),
            dict(batch_size=2, dtype="pure_bf16", attention="flash", activation_checkpointing=True),
            "compiled_recomputed_dropout_attention_bytes",
        ),
        (  # autocast, checkpointed: the LM head's 16-bit weight gradient is the graph's first matmul, with
            # the logits' gradient and (n = C) the embedding's fp32 dense gradient beside it
            ModelConfig(n_layer=4, n_head=4, n_embd=32, block_size=32, vocab_size=50304, bias=False),
            dict(batch_size=1, dtype="bf16", attention="flash", activation_checkpointing=True),
            "compiled_head_grad_mm_bytes",
        ),
        (  # autocast CPU flash, checkpointed: the top block's flash-attention backward in the backward graph
            ModelConfig(n_layer=2, n_head=4, n_embd=32, block_size=128, vocab_size=256, bias=False),
            dict(batch_size=2, dtype="bf16", attention="flash", activation_checkpointing=True, loss_chunks=2),
            "compiled_recomputed_flash_backward_bytes",
        ),
        (  # fp32 CPU flash, checkpointed: the top block's MLP backward in the backward graph, every buffer fp32
            ModelConfig(n_layer=2, n_head=2, n_embd=64, block_size=256, vocab_size=2048),
            dict(batch_size=8, dtype="fp32", attention="flash", activation_checkpointing=True, loss_chunks=8),
            "compiled_recomputed_flash_backward_bytes",
        ),
        (  # checkpointed, 2 micro-steps: the graph's new gradients beside .grad, the first checkpoint to the end
            ModelConfig(n_layer=1, n_head=1, n_embd=256, block_size=32, vocab_size=256, bias=False),
            dict(
                batch_size=2,
                dtype="bf16",
                attention="math",
                activation_checkpointing=True,
                gradient_accumulation_steps=2,
            ),
            "compiled_first_checkpoint_bytes",
        ),
        (  # pure bf16: the embedding's dense gradient is accumulated in fp32
            ModelConfig(n_layer=1, n_head=2, n_embd=128, block_size=16, vocab_size=16384),
            dict(batch_size=8, dtype="pure_bf16", attention="flash"),
            "embedding_grad_bytes",
        ),
        (  # the chunked loss runs eager in a compiled step: oneDNN's copy of the LM head's gradient
            ModelConfig(n_layer=6, n_head=2, n_embd=16, block_size=64, vocab_size=50304, bias=False),
            dict(batch_size=1, dtype="pure_bf16", attention="math", loss_chunks=8),
            "loss_chunk_backward_bytes",
        ),
        (  # one chunk: the eager loss's LM head gradient is a view, summed with the graph's out of place
            ModelConfig(n_layer=1, n_head=1, n_embd=64, block_size=16, vocab_size=50304),
            dict(batch_size=1, dtype="fp32", attention="flash", loss_chunks=1),
            "embedding_grad_bytes",
        ),
        (  # the 2nd micro-step: the graph's new gradients beside the held ones, until autograd adds them in
            ModelConfig(n_layer=1, n_head=1, n_embd=384, block_size=128, vocab_size=256, dropout=0.1),
            dict(batch_size=1, dtype="fp32", attention="math", gradient_accumulation_steps=2, loss_chunks=2),
            "compiled_micro_step_grad_bytes",
        ),
        (  # no autocast: the logits' gradient waits for the tied sum; flash with dropout's fp32 decomposition
            ModelConfig(n_layer=1, n_head=8, n_embd=384, block_size=128, vocab_size=2048, dropout=0.1),
            dict(batch_size=4, dtype="pure_bf16", attention="flash"),
            "compiled_logits_grad_bytes",
        ),
        (  # fp32 math with dropout recomputed: the fp32 exp, the dropout's uniform draws and the dropped weights
            ModelConfig(n_layer=6, n_head=2, n_embd=16, block_size=128, vocab_size=256, dropout=0.1),
            dict(batch_size=4, dtype="fp32", attention="math", activation_checkpointing=True),
            "compiled_recomputed_dropout_attention_bytes",
        ),
        (  # fp32 math recomputed: its softmax backward, the attention weights' gradient beside the softmax
            ModelConfig(n_layer=6, n_head=2, n_embd=16, block_size=256, vocab_size=64),
            dict(batch_size=2, dtype="fp32", attention="math", activation_checkpointing=True, loss_chunks=4),
            "compiled_recomputed_softmax_backward_bytes",
        ),
        (  # autocast flash with dropout, one block: its fp32 decomposition recomputed, the scores at its kernel
            ModelConfig(n_layer=1, n_head=2, n_embd=64, block_size=512, vocab_size=256, dropout=0.1),
            dict(batch_size=1, dtype="bf16", attention="flash", activation_checkpointing=True),
            "compiled_fused_dropout_softmax_bytes",
        ),
        (  # pure bf16 flash, four blocks: the next-to-last block's three MLP buffers in inductor's pool
            ModelConfig(n_layer=4, n_head=8, n_embd=64, block_size=2048, vocab_size=2048),
            dict(
                batch_size=1,
                dtype="pure_bf16",
                attention="flash",
                activation_checkpointing=True,
                gradient_accumulation_steps=2,
                loss_chunks=8,
            ),
            "compiled_recomputed_flash_backward_bytes",
        ),
        (  # autocast, checkpointed: the recomputed block's MLP weight gradients in the backward graph, with
            # oneDNN's scratch for each (cpu_bf16_mm_wgrad_scratch_bytes)
            ModelConfig(n_layer=6, n_head=1, n_embd=16, block_size=32, vocab_size=256, dropout=0.1, bias=False),
            dict(batch_size=2, dtype="bf16", attention="math", activation_checkpointing=True),
            "recompute_transient_bytes",
        ),
        (  # two blocks: the bottom block's recomputed softmax beside the top block's gradients and, in inductor's
            # pool, its MLP hidden gradient
            ModelConfig(n_layer=2, n_head=4, n_embd=64, block_size=128, vocab_size=64, bias=False),
            dict(
                batch_size=1,
                dtype="pure_bf16",
                attention="math",
                activation_checkpointing=True,
                loss_chunks=4,
            ),
            "compiled_bottom_softmax_bytes",
        ),
        (  # ... with B = 2 the q, k, v copies leave inductor's pool no room for the MLP hidden gradient (+6 %
            # with it)
            ModelConfig(n_layer=2, n_head=4, n_embd=64, block_size=128, vocab_size=64, bias=False),
            dict(
                batch_size=2,
                dtype="pure_bf16",
                attention="math",
                activation_checkpointing=True,
                loss_chunks=4,
            ),
            "compiled_bottom_softmax_bytes",
        ),
        (  # fp32 flash with dropout, two blocks: the next block's scores made before the top block's backward,
            # the top block's scores buffer pooled for the next block's exp (over-predicted by 12 % without)
            ModelConfig(n_layer=2, n_head=2, n_embd=64, block_size=256, vocab_size=256, dropout=0.1, bias=False),
            dict(batch_size=3, dtype="fp32", attention="flash", activation_checkpointing=True),
            "compiled_next_block_scores_bytes",
        ),
        (  # pure bf16 flash with dropout, three blocks: a middle block's MLP backward beside the block above's
            # T x T buffers, kept in inductor's pool for the next block's (under-predicted by 6 % without)
            ModelConfig(n_layer=3, n_head=4, n_embd=96, block_size=128, vocab_size=256, dropout=0.1),
            dict(batch_size=2, dtype="pure_bf16", attention="flash", activation_checkpointing=True, loss_chunks=2),
            "compiled_pooled_block_above_bytes",
        ),
        (  # checkpointed with the chunked loss, 2 micro-steps: the graph's new block gradients beside .grad
            ModelConfig(n_layer=2, n_head=4, n_embd=64, block_size=32, vocab_size=8192),
            dict(
                batch_size=2,
                dtype="pure_bf16",
                attention="flash",
                activation_checkpointing=True,
                gradient_accumulation_steps=2,
                loss_chunks=4,
            ),
            "compiled_micro_step_grad_bytes",
        ),
        (  # autocast, 2 micro-steps: the graph's last kernel casts c_attn's 16-bit weight gradient to fp32
            ModelConfig(n_layer=1, n_head=4, n_embd=256, block_size=32, vocab_size=256),
            dict(batch_size=2, dtype="bf16", attention="math", gradient_accumulation_steps=2),
            "compiled_c_attn_grad_copy_bytes",
        ),
        (  # pure bf16, not checkpointed: the last block's c_proj weight gradient with oneDNN's scratch
            ModelConfig(n_layer=2, n_head=4, n_embd=64, block_size=64, vocab_size=64),
            dict(batch_size=2, dtype="pure_bf16", attention="flash", loss_chunks=8),
            "mlp_backward_bytes",
        ),
        (  # pure bf16: the graph's last kernel reads the embeddings' outputs and ln_f's output waits for the
            # final addmm into the tied sum
            ModelConfig(n_layer=1, n_head=1, n_embd=128, block_size=32, vocab_size=2048),
            dict(batch_size=3, dtype="pure_bf16", attention="math"),
            "compiled_last_kernel_saved_bytes",
        ),
        (  # flash at T = 1024 in the backward graph: the kernel's q, k, v gradients, the last MLP's hidden
            # gradient kept for the next block's
            ModelConfig(n_layer=6, n_head=1, n_embd=16, block_size=1024, vocab_size=256),
            dict(batch_size=4, dtype="pure_bf16", attention="flash", gradient_accumulation_steps=2, loss_chunks=4),
            "flash_backward_grad_bytes",
        ),
        (  # dropout compiled: inductor saves each residual dropout's mask as a bool, fp32 or not
            ModelConfig(n_layer=4, n_head=1, n_embd=64, block_size=256, vocab_size=256, dropout=0.1, bias=False),
            dict(batch_size=2, dtype="fp32", attention="math"),
            "dropout_act_bytes",
        ),
        (  # the chunked loss: ln_f's backward has freed its input and output before the last MLP's backward
            ModelConfig(n_layer=1, n_head=4, n_embd=256, block_size=1024, vocab_size=512),
            dict(batch_size=1, dtype="pure_bf16", attention="flash", loss_chunks=4),
            "mlp_backward_bytes",
        ),
        (  # fp32 flash with dropout at B = 1: c_attn's output and the scaled q and k saved as they are
            ModelConfig(n_layer=3, n_head=4, n_embd=96, block_size=128, vocab_size=2048, dropout=0.1),
            dict(batch_size=1, dtype="fp32", attention="flash", gradient_accumulation_steps=2, loss_chunks=8),
            "attention_act_bytes",
        ),
        (  # the last block's softmax in forward: c_attn's output, the running residual, the embeddings' mask
            ModelConfig(n_layer=3, n_head=8, n_embd=96, block_size=128, vocab_size=256, dropout=0.1),
            dict(batch_size=3, dtype="bf16", attention="math"),
            "compiled_forward_softmax_beside_bytes",
        ),
    ],
)
def test_a_compiled_training_step_is_predicted_from_its_generated_code(cfg, run_kw, term):
    from finegpt.memory import activations, compiled_backward, eval_forward, loss_chunk, moments, recompute

    run = RunConfig(device="cpu", compile=True, cpu_threads=1, **run_kw)
    modules = (moments, loss_chunk, compiled_backward, recompute, activations, eval_forward)
    term_bytes = next(getattr(m, term) for m in modules if hasattr(m, term))
    assert term_bytes(cfg, run) > 0
    measured, predicted = _steps(ProfiledBytes(), cfg, run, eval_too=False), estimate(cfg, run)
    for phase in ("train", "optimizer"):
        error = (predicted.peaks[phase] - measured[phase]) / measured[phase]
        assert -0.01 <= error <= 0.05, (phase, predicted.peaks[phase], measured[phase])


@pytest.mark.parametrize(
    "cfg, run_kw",
    [  # autocast, one block, the chunked loss: the last MLP's backward, c_proj's weight gradient in 16 bits
        (
            ModelConfig(n_layer=1, n_head=8, n_embd=384, block_size=64, vocab_size=64),
            dict(batch_size=8, dtype="bf16", attention="math", loss_chunks=8),
        ),
        (
            ModelConfig(n_layer=1, n_head=2, n_embd=128, block_size=256, vocab_size=64, dropout=0.1),
            dict(batch_size=2, dtype="bf16", attention="flash", loss_chunks=2),
        ),
    ],
)
def test_a_compiled_mlp_backward_holds_c_projs_16_bit_weight_gradient(cfg, run_kw):
    from finegpt.memory import moments

    run = RunConfig(device="cpu", compile=True, cpu_threads=2, **run_kw)
    torch.set_num_threads(2)  # as the search measures it (the one_thread fixture puts it back)
    assert moments.mlp_backward_bytes(cfg, run) > 0
    measured, predicted = _steps(ProfiledBytes(), cfg, run, eval_too=False), estimate(cfg, run)
    error = (predicted.peaks["train"] - measured["train"]) / measured["train"]
    assert -0.01 <= error <= 0.05, (predicted.peaks["train"], measured["train"])


def test_the_compiled_forward_peaks_at_the_lm_heads_mm_beside_two_micro_steps_logits():
    # pure bf16, the full loss, acc 2: the forward graph's LM head mm keeps oneDNN's packed weight (75,392 B at
    # 64 rows, C = 16, V = 512, 2 threads) beside its logits and the last micro-step's: -1.46 % without it
    from finegpt.memory import compiled_backward

    cfg = ModelConfig(n_layer=6, n_head=1, n_embd=16, block_size=32, vocab_size=512)
    run = RunConfig(
        device="cpu",
        compile=True,
        cpu_threads=2,
        batch_size=2,
        dtype="pure_bf16",
        attention="math",
        gradient_accumulation_steps=2,
    )
    torch.set_num_threads(2)  # as the search measures it (the one_thread fixture puts it back)
    assert compiled_backward.compiled_head_mm_forward_bytes(cfg, run) == 512 * 64 * 2 + 9856
    measured, predicted = _steps(ProfiledBytes(), cfg, run, eval_too=False), estimate(cfg, run)
    assert "LM head matmul scratch (compiled forward)" in predicted.phase_terms["train"]
    error = (predicted.peaks["train"] - measured["train"]) / measured["train"]
    assert -0.01 <= error <= 0.05, (predicted.peaks["train"], measured["train"])


def test_the_compiled_flash_backward_keeps_one_measured_matmul_scratch_for_all_threads():
    # pure bf16 flash, 2 threads: the kernel's bf16 matmuls share one scratch buffer (59,136 B at T = 256, head
    # size 32), not one a thread (2 x 46,208 B): +5.26 % with the per-thread rule
    from finegpt.memory.state import CPU_MM_SCRATCH

    cfg = ModelConfig(n_layer=2, n_head=1, n_embd=32, block_size=256, vocab_size=512)
    run = RunConfig(
        device="cpu", compile=True, cpu_threads=2, batch_size=1, dtype="pure_bf16", attention="flash", loss_chunks=8
    )
    torch.set_num_threads(2)  # as the search measures it (the one_thread fixture puts it back)
    predicted = estimate(cfg, run)  # measures the kernel's scratch first
    assert CPU_MM_SCRATCH[("flash_backward", 256, 32, 0, 2)] == 59136
    measured = _steps(ProfiledBytes(), cfg, run, eval_too=False)
    error = (predicted.peaks["train"] - measured["train"]) / measured["train"]
    assert -0.01 <= error <= 0.05, (predicted.peaks["train"], measured["train"])


def test_two_recomputed_blocks_fuse_a_softmax_backward_with_the_next_blocks_recompute():
    # pure bf16 flash with dropout, checkpointed, two blocks: inductor fuses the top block's softmax backward
    # with the bottom block's recomputed softmax (recompute.compiled_fused_dropout_softmax_bytes), beside the
    # fp32 zeros the decomposition's safe softmax selects from; without the term this step is under-predicted
    # by ~15 %
    from finegpt.memory import recompute

    cfg = ModelConfig(n_layer=2, n_head=8, n_embd=64, block_size=32, vocab_size=256, dropout=0.1, bias=False)
    run = RunConfig(
        device="cpu",
        compile=True,
        cpu_threads=1,
        batch_size=2,
        dtype="pure_bf16",
        attention="flash",
        activation_checkpointing=True,
    )
    # the next block's scores, exp, draws and dropped weights (3 * 4HT beside the block's four, counted by
    # compiled_recomputed_dropout_attention_bytes), what its scores are made from (1408 B a token), the block's
    # MLP activations and dropout masks freed (1024 + 256 B)
    assert recompute.compiled_fused_dropout_softmax_bytes(cfg, run) == 64 * (12 * 8 * 32 + 9 * 8 - 1024 - 256 + 1408)
    measured, predicted = _steps(ProfiledBytes(), cfg, run, eval_too=False), estimate(cfg, run)
    error = (predicted.peaks["train"] - measured["train"]) / measured["train"]
    assert -0.01 <= error <= 0.05, (predicted.peaks["train"], measured["train"])


def test_cpu_flash_attention_packs_k_and_v_once_a_kv_block_fills_64_rows():
    # measured on the op under the profiler: 16-bit q, k, v at T = 48 are read as they are; from T = 64 the
    # kernel copies k and v (2aC per token) and a kv block a thread; its fp32 logsumexp (4H per token) always
    from finegpt.memory import eval_forward as ef

    short = ModelConfig(n_layer=1, n_head=2, n_embd=64, block_size=48, vocab_size=64)
    long = ModelConfig(n_layer=1, n_head=2, n_embd=64, block_size=64, vocab_size=64)
    bf16 = RunConfig(device="cpu", compile=True, cpu_threads=2, batch_size=1, dtype="bf16", attention="flash")
    fp32 = RunConfig(device="cpu", compile=True, cpu_threads=2, batch_size=1, dtype="fp32", attention="flash")
    assert ef.cpu_flash_packed_kv_token_bytes(short, bf16) == 0
    assert ef.cpu_flash_packed_kv_token_bytes(long, bf16) == 2 * 64 * 2
    assert ef.cpu_flash_packed_kv_block_bytes(long, bf16) == 2 * 2 * 64 * 32
    assert ef.cpu_flash_packed_kv_token_bytes(long, fp32) == 0
    assert ef.cpu_flash_logsumexp_token_bytes(short, fp32) == 4 * 2


def test_the_compiled_lm_head_weight_gradient_keeps_onednns_measured_scratch():
    # autocast, the full loss: the backward graph's aten::mm for the LM head's weight gradient (V x n @ n x C)
    # keeps oneDNN's scratch beside the logits and their gradient; under-predicted by ~4 % without it
    from finegpt.memory import compiled_backward

    cfg = ModelConfig(n_layer=6, n_head=1, n_embd=16, block_size=128, vocab_size=512)
    run = RunConfig(device="cpu", compile=True, cpu_threads=1, batch_size=2, dtype="bf16", attention="flash")
    measured, predicted = _steps(ProfiledBytes(), cfg, run, eval_too=False), estimate(cfg, run)
    assert compiled_backward.compiled_head_grad_scratch_bytes(cfg, run) > 0  # measured by estimate()
    error = (predicted.peaks["train"] - measured["train"]) / measured["train"]
    assert -0.01 <= error <= 0.05, (predicted.peaks["train"], measured["train"])


def test_the_compiled_lm_head_input_gradient_keeps_onednns_measured_scratch():
    # autocast, the full loss, few tokens and a wide vocabulary: the backward graph's aten::mm for the LM head's
    # input gradient (n x V @ V x C) keeps the eager kernel's oneDNN scratch beside the logits, their gradient
    # and the 16-bit weight gradient; under-predicted by ~4 % without it
    from finegpt.memory import loss_chunk

    cfg = ModelConfig(n_layer=6, n_head=1, n_embd=16, block_size=16, vocab_size=2048)
    run = RunConfig(device="cpu", compile=True, cpu_threads=2, batch_size=4, dtype="bf16", attention="flash")
    torch.set_num_threads(2)  # as the search measures it (the one_thread fixture puts it back)
    measured, predicted = _steps(ProfiledBytes(), cfg, run, eval_too=False), estimate(cfg, run)
    assert loss_chunk.head_grad_copy_bytes(cfg, run) > 0  # with the scratch estimate() measured
    assert "LM head gradient matmul copy (CPU 16-bit)" in predicted.phase_terms["train"]
    error = (predicted.peaks["train"] - measured["train"]) / measured["train"]
    assert -0.01 <= error <= 0.05, (predicted.peaks["train"], measured["train"])


@pytest.mark.parametrize(
    "cfg, run_kw, term",
    [  # checkpointed training steps of bench/memory_search.py's corners, mispredicted by -4 ... +14 % at 2 threads
        (  # the chunked loss's LM head gradient waits through the backward graph's recomputed blocks
            ModelConfig(n_layer=3, n_head=4, n_embd=96, block_size=128, vocab_size=2048, dropout=0.1),
            dict(batch_size=2, dtype="fp32", attention="math", loss_chunks=4),
            "lm_head_grad_bytes",
        ),
        (  # pure bf16, the full loss: the graph's last matmul adds the LM head's gradient into the tied sum
            ModelConfig(n_layer=4, n_head=1, n_embd=32, block_size=32, vocab_size=512),
            dict(batch_size=3, dtype="pure_bf16", attention="math"),
            "compiled_tied_sum_addmm_bytes",
        ),
        (  # CPU autocast: the recomputed softmax's fp32 exp has no later buffer of its size to wait for
            ModelConfig(n_layer=1, n_head=4, n_embd=128, block_size=256, vocab_size=256, bias=False),
            dict(batch_size=1, dtype="bf16", attention="math", gradient_accumulation_steps=2, loss_chunks=4),
            "compiled_recomputed_softmax_bytes",
        ),
        (  # pure bf16: neither
            ModelConfig(n_layer=1, n_head=8, n_embd=128, block_size=256, vocab_size=64, bias=False),
            dict(batch_size=3, dtype="pure_bf16", attention="math", gradient_accumulation_steps=2, loss_chunks=8),
            "compiled_recomputed_softmax_bytes",
        ),
        (  # autocast flash with dropout: lm_head's 16-bit copy is freed before the blocks are recomputed
            ModelConfig(n_layer=2, n_head=2, n_embd=128, block_size=32, vocab_size=512, dropout=0.1, bias=False),
            dict(batch_size=8, dtype="bf16", attention="flash"),
            "recomputed_block_copy_bytes",
        ),
    ],
)
def test_a_checkpointed_compiled_step_at_two_threads_is_in_band(cfg, run_kw, term):
    from finegpt.memory import activations, recompute

    run = RunConfig(device="cpu", compile=True, cpu_threads=2, activation_checkpointing=True, **run_kw)
    term_bytes = next(getattr(m, term) for m in (recompute, activations) if hasattr(m, term))
    assert term_bytes(cfg, run) > 0
    torch.set_num_threads(2)  # as the search measures it (the one_thread fixture puts it back)
    measured, predicted = _steps(ProfiledBytes(), cfg, run, eval_too=False), estimate(cfg, run)
    error = (predicted.peaks["train"] - measured["train"]) / measured["train"]
    assert -0.01 <= error <= 0.05, (predicted.peaks["train"], measured["train"])
