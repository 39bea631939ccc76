"""`estimate(model_cfg, run)`: peak GPU memory from the config alone, as named terms and three peaks.

Pure Python, no tensors, well under a millisecond. Entry points: estimate, MemoryReport.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from finegpt.config import GIB, ModelConfig
from finegpt.memory import terms as t
from finegpt.memory.gpus import get_gpu
from finegpt.memory.run import RunConfig

RESERVED_FACTOR = 1.10  # caching allocator: reserved is 1.05-1.2x allocated in eager, static shapes
CUDA_CONTEXT_BYTES = int(0.4 * GIB)  # CUDA context + kernels, outside the allocator: 0.3-0.5 GiB
NCCL_8GPU_BYTES = 3 * GIB  # NCCL buffers per GPU seen with 8-GPU DDP; scaled down for fewer ranks


@dataclass
class MemoryReport:
    """Bytes per named term, the three peaks (allocated), and what nvidia-smi would show."""

    terms: dict[str, int]
    activations_per_layer: dict[str, int]  # one layer's saved activations, by component
    peaks: dict[str, int]  # 'train', 'optimizer', 'eval' (allocated, per rank)
    phase_terms: dict[str, dict[str, int]]  # for each peak, the terms alive at that moment: they sum to it
    peak_bytes: int
    peak_phase: str
    reserved_bytes: int
    nvidia_smi_bytes: int
    gpu: str | None = None
    memory_bytes: int | None = None  # the card's total as PyTorch reports it
    fits: bool | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def peak_gib(self) -> float:
        return self.peak_bytes / GIB

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        lines = [f"{'term':<34}{'GiB':>9}"]
        lines += [f"  {name:<32}{b / GIB:>9.3f}" for name, b in self.terms.items() if b]
        lines.append("activations per layer, by component:")
        lines += [f"  {name:<32}{b / GIB:>9.3f}" for name, b in self.activations_per_layer.items() if b]
        lines.append("peaks (allocated):")
        lines += [
            f"  {name:<32}{b / GIB:>9.3f}" + ("  <- peak" if name == self.peak_phase else "")
            for name, b in self.peaks.items()
        ]
        lines.append(f"  {'reserved (x' + str(RESERVED_FACTOR) + ')':<32}{self.reserved_bytes / GIB:>9.3f}")
        lines.append(f"  {'nvidia-smi (+context, NCCL)':<32}{self.nvidia_smi_bytes / GIB:>9.3f}")
        if self.gpu:
            verdict = "fits" if self.fits else "OUT OF MEMORY"
            lines.append(
                f"{self.gpu} ({self.memory_bytes / GIB:.1f} GiB): {verdict}, needs about "
                f"{self.nvidia_smi_bytes / GIB:.1f} GiB as nvidia-smi counts it"
            )
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def _shard(nbytes: int, run: RunConfig, *kinds: str) -> int:
    return -(-nbytes // run.world_size) if run.sharding in kinds else nbytes


# long function: the terms and the stages of a step in one place; split along them is planned
def estimate(model_cfg: ModelConfig, run: RunConfig) -> MemoryReport:
    """Per-rank peak allocated bytes of one training step (train, optimizer step, eval)."""
    cfg, L, T = model_cfg, model_cfg.n_layer, model_cfg.block_size
    n, n_eval = run.batch_size * T, run.eval_micro_batch * T
    G = run.gradient_accumulation_steps
    weights = _shard(t.weight_bytes(cfg, run), run, "fsdp")
    # under DDP with gradient_as_bucket_view the grads cost nothing beyond the buckets
    grads = 0 if t.grads_in_buckets(run) else _shard(t.grad_bytes(cfg, run), run, "zero2", "fsdp")
    states = _shard(t.optimizer_state_bytes(cfg, run), run, "zero1", "zero2", "fsdp")
    layer = t.layer_act_bytes(cfg, run)
    per_layer_tokens = t.checkpoint_act_bytes(cfg, run) if run.activation_checkpointing else sum(layer.values())
    terms = {
        "weights": weights,
        "buffers": t.buffer_bytes(cfg, run),
        "optimizer states": states,
        # FSDP2 skips the reduce-scatter on all but the last micro-step: full-size (unsharded) grads are held
        "gradients (previous micro-step)": (
            t.grad_bytes(cfg, run) if run.sharding == "fsdp" and run.world_size > 1 else grads
        )
        if G > 1
        else 0,
        "DDP buckets": t.ddp_bucket_bytes(cfg, run),
        "autocast 16-bit weight copies": t.autocast_copy_bytes(cfg, run),
        "activations (all layers)": L * (n * per_layer_tokens + t.per_layer_fixed_bytes(cfg, run)),
        "final norm + embeddings": n * t.head_act_bytes(cfg, run),
        "logits + cross-entropy": n * t.logits_train_bytes(cfg, run),
        "batch (x, y, positions)": t.batch_bytes(cfg, n),
        "next batch (prefetched)": t.prefetched_batch_bytes(n),
        "gradients (this step)": grads,
        "optimizer-step temporaries": _shard(t.optimizer_temp_bytes(cfg, run), run, "zero1", "zero2", "fsdp"),
        "eval forward (no grad)": 0,
    }
    if run.sharding == "fsdp" and run.world_size > 1:  # alive in forward, backward and eval; not in the step
        terms["FSDP gathered weights"] = t.fsdp_gathered_bytes(cfg, run)
    persistent = {
        k: terms[k]
        for k in ("weights", "buffers", "optimizer states", "DDP buckets", "FSDP gathered weights")
        if k in terms
    }
    ckpt = run.activation_checkpointing
    acts = {k: terms[k] for k in ("activations (all layers)", "final norm + embeddings", "batch (x, y, positions)")}
    prefetched = {"next batch (prefetched)": terms["next batch (prefetched)"]}  # fetched after the forward
    # the moments of a training step when memory can peak; each is a dict of the terms alive then
    stages = [
        {
            "autocast 16-bit weight copies": terms["autocast 16-bit weight copies"],
            **acts,  # end of forward
            "logits (forward)": n * t.logits_forward_bytes(cfg, run),
        },
        {
            "autocast 16-bit weight copies": t.autocast_copy_bytes(cfg, run, blocks=0 if ckpt else L),  # backward
            **acts,
            **prefetched,
            "logits + cross-entropy": terms["logits + cross-entropy"],
        },  # starts: copies kept for it
        {"gradients (this step)": grads if G == 1 else 0, **prefetched},  # every grad allocated, activations freed
    ]
    if ckpt:  # one block recomputed (with its autocast copies) while all checkpoints are held
        stages.append(
            {
                "autocast 16-bit weight copies": t.autocast_copy_bytes(cfg, run, blocks=1),
                **acts,
                **prefetched,
                "activations (recomputed block)": n * sum(layer.values()),
                "LM head gradient": cfg.vocab_size * cfg.n_embd * t.param_size(run) if G == 1 else 0,
            }
        )
    phase_terms = {
        "train": {
            **persistent,
            "gradients (previous micro-step)": terms["gradients (previous micro-step)"],
            **max(stages, key=lambda stage: sum(stage.values())),
        },
        "optimizer": {
            **{k: v for k, v in persistent.items() if k != "FSDP gathered weights"},
            "gradients (this step)": grads,
            "optimizer-step temporaries": terms["optimizer-step temporaries"],
            **prefetched,
        },
    }
    train, optimizer = (sum(phase_terms[k].values()) for k in ("train", "optimizer"))
    a, r = t.act_size(run), t.resid_size(run)
    mlp_stage = r * cfg.n_embd + (2 if run.dtype == "pure_bf16" else 4) * cfg.n_embd + 8 * a * cfg.n_embd
    head_stage = r * cfg.n_embd + t.logits_eval_bytes(cfg, run) - a * cfg.vocab_size
    # no grad: the autocast cache still holds every copy until the autocast context exits
    terms["eval forward (no grad)"] = (
        n_eval * (a * cfg.vocab_size + max(mlp_stage, head_stage))
        + t.batch_bytes(cfg, n_eval)
        + terms["autocast 16-bit weight copies"]
    )
    phase_terms["eval"] = {**persistent, **prefetched, "eval forward (no grad)": terms["eval forward (no grad)"]}
    eval_ = sum(phase_terms["eval"].values())
    peaks = {"train": train, "optimizer": optimizer, "eval": eval_}
    phase = max(peaks, key=peaks.get)
    peak = peaks[phase]
    reserved = int(peak * RESERVED_FACTOR)
    nccl = int(NCCL_8GPU_BYTES * (run.world_size - 1) / 7) if run.world_size > 1 else 0
    notes = []
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
    if run.compile:
        notes.append(
            "compile=True: this is the eager figure, an upper bound; torch.compile fuses the "
            "logits and activation terms by an amount not yet calibrated on a GPU"
        )
    report = MemoryReport(
        terms=terms,
        activations_per_layer={k: v * n for k, v in layer.items()},
        peaks=peaks,
        phase_terms={k: {n: b for n, b in v.items() if b} for k, v in phase_terms.items()},
        peak_bytes=peak,
        peak_phase=phase,
        reserved_bytes=reserved,
        nvidia_smi_bytes=reserved + CUDA_CONTEXT_BYTES + nccl,
        notes=notes,
    )
    if run.gpu is not None:
        gpu = get_gpu(run.gpu)
        report.gpu, report.memory_bytes = gpu.name, int(gpu.memory_gib * GIB)
        report.fits = report.nvidia_smi_bytes <= report.memory_bytes
    return report
