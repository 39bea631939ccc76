"""check_guide(): every number of the popular "FineWeb nanoGPT GPU memory guide", next to the
value computed here, and whether it holds. The guide's configs are nanoGPT config files, which compile
(nanoGPT's train.py default): memory is judged compiled, with the eager figure beside it.
Entry points: check_guide, GUIDE_TABLE, GUIDE_24GB, format_checks, guide_verdicts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from finegpt.config import ModelConfig, count_params
from finegpt.gpus import get_gpu
from finegpt.memory.gpus import mfu_range
from finegpt.memory.report import eager_and_compiled
from finegpt.memory.solve import max_micro_batch, tokens_per_run, train_time_range_s
from finegpt.run import RunConfig

# The guide's table: (VRAM class, its GPU, claimed params (low, high), n_layer, n_head, n_embd,
# batch_size (low, high), gradient_accumulation_steps (low, high), claimed effective batch (low, high), block_size)
GUIDE_TABLE = [
    ("80 GB", "A100-80", (350e6, 350e6), 12, 12, 768, (64, 64), (8, 8), (512, 512), 1024),
    ("48 GB", "A6000", (250e6, 300e6), 12, 12, 672, (32, 32), (16, 16), (512, 512), 1024),
    ("24 GB", "4090", (160e6, 200e6), 10, 10, 640, (32, 32), (12, 16), (384, 512), 1024),
    ("16-20 GB", "4080", (125e6, 125e6), 8, 8, 512, (32, 32), (12, 12), (384, 384), 1024),
    ("<16 GB", "4070ti", (84e6, 84e6), 6, 6, 384, (16, 32), (16, 24), (256, 512), 1024),
]
# The guide's configs do not set bias; nanoGPT's train.py defaults to bias=False.
BIAS = False
# "best config for a 24 GB GPU": its shape and micro-batch (configs/guide_24gb.py holds the whole file)
GUIDE_24GB = dict(n_layer=10, n_head=10, n_embd=640, block_size=1024, bias=BIAS)
GUIDE_24GB_BATCH = 32
GUIDE_24GB_ACCUMULATION = 16  # its gradient_accumulation_steps: from the 2nd micro-step the grads are held
STATUS = {"fits": "holds", "tight": "unproven", "out of memory": "does not hold"}


@dataclass
class Check:
    claim: str
    guide: str
    computed: str
    holds: bool
    status: str = ""  # 'holds' | 'does not hold' | 'unproven' (inside the uncertainty); '' means holds says it

    def to_dict(self) -> dict:
        return asdict(self)


def _m(x: float) -> str:
    return f"{x / 1e6:.1f}M"


def _params(cfg: ModelConfig, claimed: tuple[float, float], what: str) -> Check:
    full, nano = count_params(cfg, non_embedding=False), count_params(cfg)
    lo, hi = claimed
    guide = f"~{_m(lo)}" if lo == hi else f"~{_m(lo)}-{_m(hi)}"
    holds = any(0.8 * lo <= p <= 1.2 * hi for p in (full, nano))  # within 20 % in either convention
    return Check(f"{what}: parameters", guide, f"{_m(full)} with position embeddings, {_m(nano)} without", holds)


def guide_verdicts(
    gpu_key: str = "4090",
    batch_size: int = GUIDE_24GB_BATCH,
    model: dict | None = None,
    gradient_accumulation_steps: int = GUIDE_24GB_ACCUMULATION,
) -> dict:
    """The guide's 24 GB config (or `model`) on a GPU, eager and compiled side by side: for each, the
    peak, the nvidia-smi range, the verdict and the term that decides it, as plain data. The accumulation
    counts: the previous micro-steps' gradients are held (what `finegpt memory <config file>` counts too)."""
    cfg = ModelConfig(**(model or GUIDE_24GB))
    gpu = get_gpu(gpu_key)
    run = RunConfig(
        batch_size=batch_size,
        gradient_accumulation_steps=gradient_accumulation_steps,
        dtype="bf16" if gpu.bf16 else "fp16",
        gpu=gpu_key,
    )
    out = {}
    for mode, r in eager_and_compiled(cfg, run).items():
        v = r.verdict
        out[mode] = {
            "peak_gib": r.peak_gib,
            "peak_phase": r.peak_phase,
            "nvidia_smi_gib": tuple(b / 2**30 for b in r.nvidia_smi_range),
            "status": v.status,
            "label": v.label,
            "deciding": v.deciding,
            "compiled_status": r.compiled_status,
            "max_micro_batch": max_micro_batch(cfg, replace(run, compile=mode == "compiled"), gpu),
        }
    return out


def _memory(cfg: ModelConfig, gpu_key: str, batch_size: int, accumulation: int, what: str, claim: str) -> Check:
    v = guide_verdicts(gpu_key, batch_size, vars(cfg), accumulation)
    e, c = v["eager"], v["compiled"]
    computed = (
        f"compiled {c['peak_gib']:.1f} GiB allocated, {c['nvidia_smi_gib'][0]:.1f}-{c['nvidia_smi_gib'][1]:.1f} in "
        f"nvidia-smi: {c['label']} ({c['deciding']}; {c['compiled_status']}); eager {e['peak_gib']:.1f} GiB, "
        f"{e['nvidia_smi_gib'][0]:.1f}-{e['nvidia_smi_gib'][1]:.1f}: {e['label']}; largest micro-batch with "
        f"the high end under the card: {c['max_micro_batch']} compiled, {e['max_micro_batch']} eager"
    )
    gpu = get_gpu(gpu_key)
    return Check(
        f"{what}: fits a {gpu.name} at batch_size={batch_size}",
        claim,
        computed,
        c["status"] == "fits",
        STATUS[c["status"]],
    )


def check_guide(mfu: float | None = None) -> list[Check]:
    """One Check per numeric claim. Memory is judged compiled (the guide's files compile), eager beside it;
    hours are the compiled range on the 4090 (mfu: one MFU instead)."""
    checks = []
    for vram, gpu_key, claimed, L, H, C, (b_lo, b_hi), (g_lo, g_hi), (e_lo, e_hi), T in GUIDE_TABLE:
        cfg = ModelConfig(n_layer=L, n_head=H, n_embd=C, block_size=T, bias=BIAS)
        what = f"table {vram} ({L}L/{H}H/{C})"
        checks.append(_params(cfg, claimed, what))
        eff = (b_lo * g_lo, b_hi * g_hi)
        checks.append(
            Check(
                f"{what}: effective batch = batch_size x grad_acc",
                f"{e_lo}-{e_hi} sequences",
                f"{eff[0]}-{eff[1]} sequences = {eff[0] * T:,}-{eff[1] * T:,} tokens",
                eff[0] <= e_lo and e_hi <= eff[1],
            )
        )
        checks.append(_memory(cfg, gpu_key, b_lo, g_lo, what, f"recommended for {vram}"))  # its smallest batch

    # "best config for a 24 GB GPU"
    cfg = ModelConfig(**GUIDE_24GB)
    what = "24 GB config (10L/10H/640)"
    checks.append(_params(cfg, (160e6, 160e6), what))
    claim = "~20-22 GB on one 4090, 'comfortably'"
    checks.append(_memory(cfg, "4090", GUIDE_24GB_BATCH, GUIDE_24GB_ACCUMULATION, what, claim))
    tokens = tokens_per_run(50_000, 32, 16, 1024)
    checks.append(
        Check(
            f"{what}: tokens in 50k iters x 32 x 16 x 1024",
            "~83B",
            f"{tokens / 1e9:.1f}B",
            abs(tokens - 83e9) < 0.1 * 83e9,
        )
    )
    checks.append(
        Check(
            f"{what}: tokens per optimizer step", "512 x 1024 ~ 0.5M", f"{32 * 16 * 1024:,}", 32 * 16 * 1024 == 524_288
        )
    )
    lo, hi = mfu_range("4090", compiled=True) if mfu is None else (mfu, mfu)
    fast, slow = _hours(cfg, tokens, mfu)
    checks.append(
        Check(
            f"{what}: hours on one 4090 at {hi:.0%}-{lo:.0%} MFU (compiled)",
            "(not stated)",
            f"{fast:.0f}-{slow:.0f} h ({fast / 24:.1f}-{slow / 24:.1f} days)",
            True,
        )
    )
    tpp = tokens / count_params(cfg, non_embedding=False)
    checks.append(
        Check(f"{what}: tokens per parameter", "(implied: plenty)", f"{tpp:.0f} (Chinchilla-optimal is ~20)", True)
    )
    fifty = 50e9 / count_params(cfg, non_embedding=False)
    checks.append(
        Check(
            "rule 4: at least 50B tokens for this model",
            "50B+",
            f"{fifty:.0f} tokens/param, {fifty / 20:.0f}x Chinchilla-optimal "
            f"({20 * count_params(cfg, non_embedding=False) / 1e9:.1f}B)",
            False,
        )
    )

    # "200M+ model (if you have 24 GB+)"
    cfg = ModelConfig(n_layer=12, n_head=12, n_embd=768, block_size=1024, bias=BIAS)
    what = "200M+ config (12L/12H/768)"
    checks.append(_params(cfg, (350e6, 350e6), what))
    checks.append(_memory(cfg, "4090", 32, 16, what, "'many people train this on a single 4090'"))
    tokens = tokens_per_run(60_000, 32, 16, 1024)
    fast, slow = _hours(cfg, tokens, mfu)
    checks.append(
        Check(
            f"{what}: 60k iters on one 4090 at {hi:.0%}-{lo:.0%} MFU (compiled)",
            "(not stated)",
            f"{tokens / 1e9:.1f}B tokens, {fast:.0f}-{slow:.0f} h ({fast / 24:.1f}-{slow / 24:.1f} days)",
            True,
        )
    )
    return checks


def _hours(cfg: ModelConfig, tokens: int, mfu: float | None) -> tuple[float, float]:
    if mfu is not None:
        from finegpt.memory.solve import train_time_s

        h = train_time_s(cfg, tokens, "4090", "bf16", mfu) / 3600
        return h, h
    return tuple(s / 3600 for s in train_time_range_s(cfg, tokens, "4090", "bf16", compiled=True))


def format_checks(checks: list[Check]) -> str:
    """ok: holds; NO: does not hold; ??: unproven (the card is inside the estimate's uncertainty)."""
    mark = {"holds": "ok", "does not hold": "NO", "unproven": "??"}
    lines = [f"{'':4}{'claim':<68}{'guide says':<44}computed"]
    for c in checks:
        m = mark.get(c.status) or ("ok" if c.holds else "NO")
        lines.append(f"{m:<4}{c.claim:<68}{c.guide:<44}{c.computed}")
    return "\n".join(lines)


def format_guide_verdicts(verdicts: dict, gpu: str) -> str:
    """guide_verdicts as the lines `finegpt memory --guide` starts with."""
    g = get_gpu(gpu)
    lines = [f"the guide's 24 GB config (10L/10H/640, batch_size=32, T=1024) on one {g.name} ({g.memory_gib} GiB):"]
    for mode, v in verdicts.items():
        low, high = v["nvidia_smi_gib"]
        why = "widest uncertainty" if v["status"] == "tight" else "largest term"
        extra = f" [{v['compiled_status']}]" if v["compiled_status"] else ""
        lines.append(
            f"  {mode:<9}peak {v['peak_gib']:5.1f} GiB, nvidia-smi {low:.1f}-{high:.1f} GiB: {v['label']} "
            f"({why}: {v['deciding']}){extra}"
        )
    return "\n".join(lines)
