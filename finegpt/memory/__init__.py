"""finegpt.memory: how much GPU memory, compute and time a training run needs, predicted and measured.

estimate() sums named terms (terms.py) into the train / optimizer-step / eval / iter-0 eval peaks, adds
what nvidia-smi shows as a low-high range and gives a three-way verdict (report.py); measure()
(measurement.py, imports torch) runs real steps; calibration.json holds what was measured; solvers,
presets, the one planner (plan_budget) and the guide check build on them.
"""

from finegpt.memory.gpus import (
    GPUS,
    MFU_RANGES,
    Gpu,
    custom_gpu,
    detected_gpu_key,
    get_gpu,
    gpu_from_device_name,
    mfu_range,
    peak_flops,
)
from finegpt.memory.guide import check_guide, format_checks, guide_verdicts
from finegpt.memory.report import GIB, MemoryReport, Verdict, bar_segments, eager_and_compiled, estimate
from finegpt.memory.run import RunConfig, run_from_settings
from finegpt.memory.solve import (
    BatchPlan,
    BudgetPlan,
    Recommendation,
    SessionPlan,
    best_dtype,
    chinchilla_tokens,
    default_mfu,
    fits,
    flops_per_token,
    max_micro_batch,
    plan,
    plan_budget,
    recommend,
    recommend_all,
    session_plan,
    tokens_per_run,
    train_time_range_s,
    train_time_s,
)
from finegpt.memory.summary import fit_summary, format_fit_summary, side_by_side
from finegpt.model import count_params


def measure(model_cfg, run, device: str = "cpu", seed: int = 0) -> dict:
    """One real training step's peak bytes per phase; see finegpt.memory.measurement (imports torch)."""
    from finegpt.memory.measurement import measure as _measure

    return _measure(model_cfg, run, device, seed)


def device_peak_tflops(device, dtype) -> float | None:
    """Dense peak TFLOPS of a torch.device (or a get_device_name() string) for MFU, or None if unknown."""
    import torch

    if isinstance(device, torch.device):
        if device.type != "cuda":
            return None
        device = torch.cuda.get_device_name(device)
    name = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, str(dtype))
    flops = peak_flops(device, name)
    return None if flops is None else flops / 1e12


__all__ = [
    "GIB",
    "GPUS",
    "MFU_RANGES",
    "BatchPlan",
    "BudgetPlan",
    "Verdict",
    "bar_segments",
    "eager_and_compiled",
    "guide_verdicts",
    "mfu_range",
    "plan_budget",
    "side_by_side",
    "train_time_range_s",
    "Gpu",
    "MemoryReport",
    "Recommendation",
    "RunConfig",
    "SessionPlan",
    "best_dtype",
    "check_guide",
    "chinchilla_tokens",
    "count_params",
    "custom_gpu",
    "default_mfu",
    "device_peak_tflops",
    "estimate",
    "fit_summary",
    "fits",
    "flops_per_token",
    "format_fit_summary",
    "format_checks",
    "get_gpu",
    "gpu_from_device_name",
    "detected_gpu_key",
    "max_micro_batch",
    "measure",
    "peak_flops",
    "plan",
    "recommend",
    "recommend_all",
    "run_from_settings",
    "session_plan",
    "tokens_per_run",
    "train_time_s",
]
