"""`estimate(model_cfg, run)`: peak GPU memory from the config alone, as named terms, four peaks, what
nvidia-smi adds as a low-high range, and a three-way verdict naming the term that decides it.

Pure Python, no tensors, well under a millisecond. Entry points: estimate, MemoryReport, Verdict,
eager_and_compiled, bar_segments.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field, replace

from finegpt.config import GIB, ModelConfig
from finegpt.memory import compiled_backward as cb
from finegpt.memory import loss_chunk as lc
from finegpt.memory import moments as m
from finegpt.memory import recompute as rc
from finegpt.memory import terms as t
from finegpt.memory.calibration import compiled_status, eager_logit_bytes
from finegpt.memory.phases import phases as alive_by_phase
from finegpt.run import RunConfig

PHASES = ("train", "optimizer", "eval", "first_eval")
# the terms torch.compile changes: their CPU-inductor calibration is part of the uncertainty
COMPILED_TERMS = (
    "logits + cross-entropy",
    "logits (forward)",
    "activations (all layers)",
    "final norm + embeddings",
    "final norm + embeddings (compiled, at the blocks' backward)",
    "eval forward (no grad)",
)
VERDICT_LABELS = {"fits": "fits", "tight": "tight (inside the uncertainty)", "out of memory": "out of memory"}


@dataclass
class Verdict:
    """fits: even the high end of what nvidia-smi will show is under the card's memory; out of memory:
    even the low end is over; tight: the card sits inside the range, and `deciding` names the widest
    uncertain term. For fits / out of memory, `deciding` is the peak's largest term."""

    status: str  # 'fits' | 'tight' | 'out of memory'
    low_bytes: int
    high_bytes: int
    memory_bytes: int
    deciding: str

    @property
    def label(self) -> str:
        return VERDICT_LABELS[self.status]

    def __str__(self) -> str:
        why = "widest uncertainty" if self.status == "tight" else "largest term"
        return (
            f"{self.label}: needs {self.low_bytes / GIB:.1f}-{self.high_bytes / GIB:.1f} GiB of "
            f"{self.memory_bytes / GIB:.1f} ({why}: {self.deciding})"
        )


@dataclass
class MemoryReport:
    """Bytes per named term, the four peaks (allocated), what nvidia-smi adds, and the verdict."""

    terms: dict[str, int]
    activations_per_layer: dict[str, int]  # one layer's saved activations, by component
    peaks: dict[str, int]  # 'train', 'optimizer', 'eval', 'first_eval' (allocated, per rank)
    phase_terms: dict[str, dict[str, int]]  # for each peak, the terms alive at that moment: they sum to it
    peak_bytes: int
    peak_phase: str
    overheads: dict[str, tuple[int, int]]  # outside the peak: (low, high) bytes each
    compiled: bool = False
    compiled_status: str = ""  # how the compiled terms were calibrated (compile=True only)
    gpu: str | None = None
    memory_bytes: int | None = None  # the card's total as PyTorch reports it
    verdict: Verdict | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def peak_gib(self) -> float:
        return self.peak_bytes / GIB

    @property
    def nvidia_smi_range(self) -> tuple[int, int]:
        return self.peak_bytes + sum(lo for lo, _ in self.overheads.values()), self.peak_bytes + sum(
            hi for _, hi in self.overheads.values()
        )

    @property
    def nvidia_smi_bytes(self) -> int:
        return self.nvidia_smi_range[1]  # the high end: what a plan must leave room for

    @property
    def reserved_bytes(self) -> int:
        return self.peak_bytes + self.overheads["allocator reserve"][1]

    @property
    def fits(self) -> bool | None:
        return None if self.verdict is None else self.verdict.status == "fits"

    def to_dict(self) -> dict:
        out = asdict(self)
        out.update(nvidia_smi_range=list(self.nvidia_smi_range), fits=self.fits)
        if self.verdict is not None:
            out["verdict"]["label"] = self.verdict.label
        return out

    def __str__(self) -> str:
        lines = [f"{'term':<40}{'GiB':>9}"]
        lines += [f"  {name:<38}{b / GIB:>9.3f}" for name, b in self.terms.items() if b]
        lines.append("activations per layer, by component:")
        lines += [f"  {name:<38}{b / GIB:>9.3f}" for name, b in self.activations_per_layer.items() if b]
        lines.append("peaks (allocated):")
        lines += [
            f"  {name:<38}{b / GIB:>9.3f}" + ("  <- peak" if name == self.peak_phase else "")
            for name, b in self.peaks.items()
        ]
        lines.append("outside the peak, low-high:")
        lines += [f"  {name:<38}{lo / GIB:>9.3f} - {hi / GIB:.3f}" for name, (lo, hi) in self.overheads.items() if hi]
        low, high = self.nvidia_smi_range
        lines.append(f"  {'nvidia-smi':<38}{low / GIB:>9.3f} - {high / GIB:.3f}")
        if self.compiled:
            lines.append(f"compile=True: the compiled terms are {self.compiled_status}")
        if self.verdict is not None:
            lines.append(f"{self.gpu} ({self.memory_bytes / GIB:.1f} GiB): {self.verdict}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def _terms(cfg: ModelConfig, run: RunConfig) -> dict[str, int]:
    """Every named term once, in bytes per rank (0 where the run does not have it)."""
    ckpt = run.activation_checkpointing
    math = bool(m.softmax_backward_bytes(cfg, run) or t.cpu_flash_workspace_bytes(cfg, run))  # a moment inside
    return {
        "weights": t.weight_bytes(cfg, run),
        "buffers": t.buffer_bytes(cfg, run),
        "optimizer states": t.optimizer_state_bytes(cfg, run),
        "DDP buckets": t.ddp_bucket_bytes(cfg, run),
        "FSDP gathered weights": t.fsdp_gathered_bytes(cfg, run),
        "gradients (previous micro-step)": t.held_grad_bytes(cfg, run),
        "autocast 16-bit weight copies": t.autocast_copy_bytes(cfg, run),
        "autocast copies kept for backward": t.autocast_copy_bytes(cfg, run, blocks=0) if ckpt else 0,
        "activations (all layers)": t.activation_bytes(cfg, run),
        "final norm + embeddings": t.head_bytes(cfg, run),
        "batch (x, y, positions)": t.batch_bytes(cfg, t.train_tokens(cfg, run)),
        "logits (forward)": t.logits_forward_bytes(cfg, run),
        "logits + cross-entropy": t.logits_train_bytes(cfg, run),
        "LM head matmul scratch (compiled forward)": cb.compiled_head_mm_forward_bytes(cfg, run),
        "logits still bound (last micro-step)": t.bound_logits_bytes(cfg, run),
        "batch still bound (x, y)": t.bound_batch_bytes(cfg, run),
        "next batch (prefetched)": t.prefetched_batch_bytes(cfg, run),
        "gradients (this step)": t.grad_bytes(cfg, run),
        "optimizer-step temporaries": t.optimizer_temp_bytes(cfg, run),
        "eval forward (no grad)": t.eval_forward_bytes(cfg, run),
        "activations (recomputed block)": t.recomputed_block_bytes(cfg, run),
        "autocast copies (recomputed block)": rc.recomputed_block_copy_bytes(cfg, run) if ckpt else 0,
        "autocast copies (recomputed attention)": m.recomputed_attention_copy_bytes(cfg, run) if ckpt else 0,
        "LM head gradient": t.lm_head_grad_bytes(cfg, run) if ckpt else 0,
        "MLP backward transients (last block)": m.mlp_backward_bytes(cfg, run),
        "LM head gradient (before the blocks' backward)": cb.head_grad_before_blocks_bytes(cfg, run),
        "logits gradient (compiled, kept to the tied sum)": cb.compiled_logits_grad_bytes(cfg, run),
        "c_proj output gradient (compiled dropout)": cb.compiled_dropout_grad_bytes(cfg, run),
        "final norm + embeddings (compiled, at the blocks' backward)": cb.compiled_head_at_blocks_bytes(cfg, run),
        "gradients (this micro-step, compiled graph)": cb.compiled_micro_step_grad_bytes(cfg, run),
        "recompute transients (MLP backward)": m.recompute_transient_bytes(cfg, run) if ckpt else 0,
        "checkpoints + recomputed block (worst block)": max(m.recompute_moments(cfg, run)) if ckpt else 0,
        "CPU flash-attention workspace": t.cpu_flash_workspace_bytes(cfg, run),
        "embedding dropout mask": m.embedding_dropout_bytes(cfg, run) if ckpt or not run.compile else 0,
        "loss chunk (backward, recomputed)": lc.loss_chunk_backward_bytes(cfg, run),
        "LM head gradient matmul copy (CPU 16-bit)": lc.head_grad_copy_bytes(cfg, run),
        "embedding gradient (dense, tied)": m.embedding_grad_bytes(cfg, run),
        "gradients + the first block's c_attn backward": m.first_block_input_grad_bytes(cfg, run),
        "gradients + the first block's MLP backward": m.first_block_mlp_backward_bytes(cfg, run),
        "LM head gradient (waiting for the tied sum)": m.waiting_head_grad_bytes(cfg, run),
        "LM head gradient (compiled, before the tied sum)": m.compiled_head_grad_bytes(cfg, run),
        "logits gradient (kept for the tied sum)": m.compiled_ckpt_logits_grad_bytes(cfg, run),
        "LM head gradient matmul (compiled, checkpointing)": rc.compiled_head_grad_mm_bytes(cfg, run),
        "tied sum addmm (compiled, checkpointing)": rc.compiled_tied_sum_addmm_bytes(cfg, run),
        "flash-attention backward (compiled recompute)": rc.compiled_recomputed_flash_backward_bytes(cfg, run),
        "first checkpoint (compiled, to the end of backward)": rc.compiled_first_checkpoint_bytes(cfg, run),
        "softmax (compiled recompute)": rc.compiled_recomputed_softmax_bytes(cfg, run),
        "softmax transients (compiled forward, last block)": m.compiled_forward_softmax_bytes(cfg, run),
        "attention forward (CPU flash fallback, last block)": t.flash_fallback_forward_bytes(cfg, run),
        "attention forward (CPU flash fallback, recomputed block)": (
            t.flash_fallback_forward_bytes(cfg, run, recompute=True) if ckpt else 0
        ),
        "softmax exp (compiled recompute, pooled)": rc.compiled_recomputed_exp_bytes(cfg, run),
        "dropout attention (compiled recompute)": rc.compiled_recomputed_dropout_attention_bytes(cfg, run),
        "attention output copies (compiled recompute)": rc.compiled_recomputed_attention_output_bytes(cfg, run),
        "fused dropout softmax (compiled recompute)": rc.compiled_fused_dropout_softmax_bytes(cfg, run),
        "safe softmax zeros (compiled recompute)": rc.compiled_safe_softmax_zeros_bytes(cfg, run),
        "next block's scores (compiled recompute)": rc.compiled_next_block_scores_bytes(cfg, run),
        "block above's T x T buffers (compiled pool)": rc.compiled_pooled_block_above_bytes(cfg, run),
        "softmax (compiled recompute, bottom block)": rc.compiled_bottom_softmax_bytes(cfg, run),
        "MLP hidden gradient (compiled pool, bottom block)": rc.compiled_bottom_softmax_pool_bytes(cfg, run),
        "softmax backward (math attention)": m.softmax_backward_bytes(cfg, run),
        "attention backward (recomputed block)": m.recomputed_attention_backward_bytes(cfg, run) if ckpt else 0,
        "attention weights (recompute, math)": rc.recomputed_attention_weights_bytes(
            cfg, run, m.block_grad_bytes(cfg, run)
        ),
        "activations (last attention backward)": m.attention_backward_act_bytes(cfg, run),
        "autocast copies kept (last MLP backward)": m.kept_copy_bytes(cfg, run, "mlp"),
        "autocast copies kept (last attention backward)": m.kept_copy_bytes(cfg, run, "attention"),
        "flash-attention backward gradients (q, k, v, output, residual)": m.flash_backward_grad_bytes(cfg, run),
        "math-attention backward gradients (v, output, residual)": m.math_attention_grad_bytes(cfg, run),
        "gradients before the last attention backward": m.last_block_early_grad_bytes(cfg, run) if math else 0,
    }


def _overheads(run: RunConfig, peak_bytes: int, phase_terms: dict[str, int]) -> dict[str, tuple[int, int]]:
    lo_factor, hi_factor = t.reserve_factor_range(run)
    compiled_part = sum(v for k, v in phase_terms.items() if k in COMPILED_TERMS) if run.compile else 0
    nccl = t.nccl_bytes(run)
    return {
        "allocator reserve": (int(peak_bytes * (lo_factor - 1)), int(peak_bytes * (hi_factor - 1))),
        "CUDA context": t.cuda_context_range(run),
        "cuBLAS workspaces": t.cublas_workspace_range(run),
        "NCCL buffers": (nccl, nccl),
        "compiled terms (CPU-inductor calibrated)": (0, t.compiled_uncertainty_bytes(compiled_part, run)),
    }


def fits_memory(high_bytes: int, memory_bytes: float, headroom: float = 0.0) -> bool:
    """The one rule for "fits": the high end of what nvidia-smi will show stays under the card's memory (less
    a planning margin, headroom, which the planners keep). The verdict, fits() and max_micro_batch() use it."""
    return high_bytes <= (1 - headroom) * memory_bytes


def _verdict(report: MemoryReport) -> Verdict:
    low, high = report.nvidia_smi_range
    if fits_memory(high, report.memory_bytes):
        status = "fits"
    elif low > report.memory_bytes:
        status = "out of memory"
    else:
        status = "tight"
    if status == "tight":
        deciding = max(report.overheads, key=lambda k: report.overheads[k][1] - report.overheads[k][0])
    else:
        alive = report.phase_terms[report.peak_phase]
        deciding = max(alive, key=alive.get)
    return Verdict(status, low, high, report.memory_bytes, deciding)


# terms measured on CPU only so far: bench/gpu_check.py measures them on a GPU when one is lent
CPU_CALIBRATED = (
    "loss chunk (backward, recomputed)",
    "embedding gradient (dense, tied)",
    "LM head gradient (waiting for the tied sum)",
    "LM head gradient (compiled, before the tied sum)",
    "logits gradient (kept for the tied sum)",
    "gradients + the first block's c_attn backward",
    "gradients + the first block's MLP backward",
    "softmax backward (math attention)",
    "math-attention backward gradients (v, output, residual)",
    "activations (last attention backward)",
    "gradients before the last attention backward",
    "autocast copies kept (last MLP backward)",
    "autocast copies kept (last attention backward)",
    "recompute transients (MLP backward)",
    "attention backward (recomputed block)",
    "attention weights (recompute, math)",
)


def _cpu_calibrated(run: RunConfig, alive: dict[str, int]) -> list[str]:
    """The peak's terms whose bytes only a CPU has measured, for a CUDA run."""
    if run.device == "cpu":
        return []
    names = [k for k in CPU_CALIBRATED if alive.get(k)]
    if (
        not run.compile
        and alive.get("logits + cross-entropy")
        and eager_logit_bytes("logits_train_bytes", run.label) is None
    ):
        names.insert(0, "logits + cross-entropy (eager bytes per logit)")
    return names


def _notes(run: RunConfig, alive: dict[str, int]) -> list[str]:
    notes = []
    cpu_only = _cpu_calibrated(run, alive)
    if cpu_only:
        notes.append(f"CPU-calibrated, GPU pending (bench/gpu_check.py): {', '.join(cpu_only)}")
    if run.world_size > 1 and run.sharding in ("zero1", "zero2"):
        notes.append(
            f"sharding={run.sharding}: per-rank figures are analytic (states, grads, weights / "
            f"world_size) and not yet checked against a measurement; DDP's and FSDP's are"
        )
    if run.sharding == "fsdp" and run.world_size > 1:
        notes.append(
            "sharding=fsdp: for a moment the optimizer step can also hold the root module's full-size "
            "gradient (embeddings, final norm), freed when backward's last reduce-scatter completes"
        )
    return notes


def estimate(model_cfg: ModelConfig, run: RunConfig) -> MemoryReport:
    """Per-rank peak allocated bytes of one training step (train, optimizer step, eval, the iter-0 eval),
    what nvidia-smi adds (low-high), and with run.gpu the verdict."""
    if run.device == "cpu" and "torch" in sys.modules:  # this CPU's 16-bit matmul scratch, measured per shape
        from finegpt.memory.cpu_scratch import measure_cpu_scratch  # (imports torch: only where it is already)

        measure_cpu_scratch(model_cfg, run)
    T = _terms(model_cfg, run)
    phases = {k: {n: b for n, b in v.items() if b} for k, v in alive_by_phase(T, run).items()}
    peaks = {k: sum(v.values()) for k, v in phases.items()}
    phase = max(PHASES, key=peaks.get)
    report = MemoryReport(
        terms=T,
        activations_per_layer={
            k: v * t.train_tokens(model_cfg, run) for k, v in t.layer_act_bytes(model_cfg, run).items()
        },
        peaks=peaks,
        phase_terms=phases,
        peak_bytes=peaks[phase],
        peak_phase=phase,
        overheads=_overheads(run, peaks[phase], phases[phase]),
        compiled=run.compile,
        compiled_status=compiled_status(run.device) if run.compile else "",
        notes=_notes(run, phases[phase]),
    )
    if run.gpu is not None:
        gpu = run.gpu
        report.gpu, report.memory_bytes = gpu.name, int(gpu.memory_gib * GIB)
        report.verdict = _verdict(report)
    return report


def eager_and_compiled(model_cfg: ModelConfig, run: RunConfig) -> dict[str, MemoryReport]:
    """The same run estimated both ways, for a side-by-side view: {'eager': ..., 'compiled': ...}."""
    return {
        "eager": estimate(model_cfg, replace(run, compile=False)),
        "compiled": estimate(model_cfg, replace(run, compile=True)),
    }


def bar_segments(report: MemoryReport) -> list[tuple[str, int, str]]:
    """(label, bytes, kind) left to right for a bar against the GPU line: the peak's terms ('allocated'),
    the low end of each overhead ('overhead'), then the low-to-high uncertainty ('uncertain'). The
    'allocated' + 'overhead' segments end at the verdict's low bytes and the bar at its high bytes, so a
    plot drawn from them agrees with the verdict."""
    segments = [(k, v, "allocated") for k, v in report.phase_terms[report.peak_phase].items()]
    segments += [(k, lo, "overhead") for k, (lo, _) in report.overheads.items() if lo]
    spread = sum(hi - lo for lo, hi in report.overheads.values())
    if spread:
        segments.append(("uncertainty (low to high)", spread, "uncertain"))
    return segments
