"""finegpt.memory: how much GPU memory, compute and time a training run needs, predicted and measured.

estimate() sums named terms (terms.py) into the train / optimizer-step / eval peaks; measure()
(measure.py, imports torch) runs one real step; solvers, presets and the guide check build on them.
"""

from finegpt.memory.gpus import (
    GPUS,
    Gpu,
    GpuMatch,
    custom_gpu,
    detected_gpu_key,
    get_gpu,
    gpu_from_device_name,
    peak_flops,
    resolve_gpu,
)
from finegpt.memory.guide import check_guide, format_checks
from finegpt.memory.report import GIB, MemoryReport, estimate
from finegpt.memory.run import RunConfig, run_from_settings
from finegpt.memory.solve import (
    BatchPlan,
    Recommendation,
    SessionPlan,
    best_dtype,
    chinchilla_tokens,
    default_mfu,
    fit_summary,
    fits,
    flops_per_token,
    format_fit_summary,
    max_micro_batch,
    plan,
    recommend,
    recommend_all,
    session_plan,
    tokens_per_run,
    train_time_s,
)
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
    "BatchPlan",
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
    "resolve_gpu",
    "GpuMatch",
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
