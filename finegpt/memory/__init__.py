"""finegpt.memory: how much GPU memory, compute and time a training run needs, predicted and measured.

estimate() (report.py) sums named terms (terms.py) into the train / optimizer-step / eval / iter-0 eval peaks
of a RunConfig, which run_config() derives from the TrainConfig the trainer runs (run.py), adds what nvidia-smi
shows as a low-high range and gives a three-way verdict; measure() (measurement.py, imports torch) runs
finegpt.step's real step and memory_timeline() (timeline.py) records it op by op; calibration.json holds what
was measured; presets (gpus.py), solvers (solve.py), the one planner, plan_budget (planner.py), and the guide
check (guide.py) build on them. Time: predict_speed() (speed.py) models a step from the model's work on a card,
probe_speed() (probe.py, imports torch) times finegpt.step's real step on the device at hand.
"""

from finegpt.config import count_params
from finegpt.gpus import (
    GPUS,
    Gpu,
    GpuMatch,
    custom_gpu,
    detected_gpu_key,
    get_gpu,
    gpu_from_device_name,
    resolve_gpu,
)
from finegpt.memory.gpus import MFU_RANGES, mfu_range, peak_flops
from finegpt.memory.guide import check_guide, format_checks, format_guide_verdicts, guide_verdicts
from finegpt.memory.planner import (
    BudgetPlan,
    Recommendation,
    SessionPlan,
    plan_budget,
    recommend,
    recommend_all,
    session_plan,
)
from finegpt.memory.report import GIB, MemoryReport, Verdict, bar_segments, eager_and_compiled, estimate
from finegpt.memory.solve import (
    BatchPlan,
    best_dtype,
    chinchilla_tokens,
    default_mfu,
    fits,
    flops_per_token,
    max_micro_batch,
    plan,
    tokens_per_run,
    train_time_range_s,
    train_time_s,
)
from finegpt.memory.speed import SpeedPrediction, predict_speed, run_mfu_range
from finegpt.memory.summary import (
    fit_summary,
    format_fit_summary,
    format_recommendations,
    side_by_side,
    summary_from_settings,
)
from finegpt.run import WHAT_IF, RunConfig, run_config, run_from_settings


def measure(model_cfg, run, device: str = "cpu", seed: int = 0, **kw) -> dict:
    """One real training step's peak bytes per phase; see finegpt.memory.measurement (imports torch)."""
    from finegpt.memory.measurement import measure as _measure

    return _measure(model_cfg, run, device, seed, **kw)


def probe_speed(model_cfg, train_cfg, seconds: float = 3.0):
    """finegpt.step's real step timed on this device: tokens/s, ms/iter, MFU; see finegpt.memory.probe (torch)."""
    from finegpt.memory.probe import probe

    return probe(model_cfg, train_cfg, seconds)


def memory_timeline(model_cfg, run, device: str = "cpu", seed: int = 0):
    """One training step's live bytes op by op, phases marked; see finegpt.memory.timeline (imports torch)."""
    from finegpt.memory.timeline import memory_timeline as _timeline

    return _timeline(model_cfg, run, device, seed)


__all__ = [
    "GIB",
    "GPUS",
    "MFU_RANGES",
    "WHAT_IF",
    "BatchPlan",
    "BudgetPlan",
    "Verdict",
    "bar_segments",
    "eager_and_compiled",
    "guide_verdicts",
    "mfu_range",
    "plan_budget",
    "predict_speed",
    "run_mfu_range",
    "SpeedPrediction",
    "side_by_side",
    "train_time_range_s",
    "Gpu",
    "GpuMatch",
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
    "estimate",
    "fit_summary",
    "fits",
    "flops_per_token",
    "format_fit_summary",
    "format_checks",
    "format_guide_verdicts",
    "format_recommendations",
    "get_gpu",
    "gpu_from_device_name",
    "detected_gpu_key",
    "max_micro_batch",
    "measure",
    "memory_timeline",
    "probe_speed",
    "peak_flops",
    "plan",
    "recommend",
    "recommend_all",
    "resolve_gpu",
    "run_config",
    "run_from_settings",
    "session_plan",
    "summary_from_settings",
    "tokens_per_run",
    "train_time_s",
]
