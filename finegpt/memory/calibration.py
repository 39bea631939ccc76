"""What finegpt.memory has measured, read back from calibration.json beside this file.

The memory and time model is formulas with cited defaults (terms.py, gpus.py, report.py). A few
numbers in it can only be measured: how many V-wide tensors a compiled step keeps, the CUDA context,
the caching allocator's reserve, the MFU a GPU reaches. bench/memory_validation.py (CPU inductor) and
bench/gpu_check.py (a GPU) write what they measured to calibration.json; the model reads it here.
Compiled steps keep their own coefficients per backend: 'compiled_cpu' (CPU inductor, what
bench/memory_validation.py measures) and 'compiled' (a GPU, what bench/gpu_check.py measures). A CUDA run
uses the GPU values once a GPU has measured them, the CPU-inductor ones until then. Eager steps are
modelled from what the CPU build keeps; 'eager_cuda' holds the bytes per logit a GPU measured for eager
CUDA runs, by dtype, and replaces the formula for those runs only.
A measured overhead or MFU widens its cited low-high range to include the measurement.
Entry points: active(), load(path), reload(), use(calibration), compiled_coefficient(name, device),
compiled_status(device), eager_logit_bytes(name, dtype, device); calibrate.py writes the file.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from pathlib import Path

from finegpt.errors import FinegptError, bad

PATH = Path(__file__).with_name("calibration.json")
CPU_ONLY = "CPU-inductor calibrated, GPU pending"  # a CUDA run before any GPU measurement
CPU_MEASURED = "CPU-inductor measured"  # a CPU run: the backend the coefficients were measured on
# What a compiled step keeps, before anything was measured (terms.py explains each)
COMPILED_DEFAULTS = {"logits_train_copies": 3.0, "logits_eval_copies": 2.0}

SECTIONS = ("compiled", "compiled_cpu", "eager_cuda", "overheads", "mfu")

_active: dict | None = None


def load(path: str | Path = PATH) -> dict:
    """calibration.json as a dict with every section (a missing one empty), its values of the right types."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise bad("calibration", str(path), f"cannot be read ({e})", "Restore it with `git checkout`") from None
    return _with_sections(data, str(path))


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _type_errors(data: dict) -> str | None:
    """The first value the model would read and cannot use (a number as text, a section as a list)."""
    numbers = {  # section: the path below it whose leaves are numbers the model reads with float()
        "compiled": lambda k, v: k not in COMPILED_DEFAULTS or _is_number(v),
        "compiled_cpu": lambda k, v: k not in COMPILED_DEFAULTS or _is_number(v),
        "overheads": lambda k, v: k == "source" or _is_number(v),
        "eager_cuda": lambda k, v: (
            isinstance(v, dict) and all(_is_number(x) for name, x in v.items() if name.endswith("_bytes"))
        ),  # beside them: status text
        "mfu": lambda k, v: isinstance(v, dict) and all(_is_number(v[m]) for m in ("eager", "compiled") if m in v),
    }
    for section, ok in numbers.items():
        for key, value in data[section].items():
            if not ok(key, value):
                return f"{section}.{key} is {json.dumps(value)[:40]}, which the memory model cannot read"
    if not isinstance(data["compiled"].get("status", CPU_ONLY), str):
        return "compiled.status is not text"
    return None


def _with_sections(data: dict, where: str) -> dict:
    if not isinstance(data, dict):
        raise bad("calibration", where, f"holds a {type(data).__name__}, not an object", "Restore the file")
    data = dict(data)
    for section in SECTIONS:
        if not isinstance(data.setdefault(section, {}), dict):
            raise bad("calibration", where, f"section {section!r} is not an object", "Restore the file")
    problem = _type_errors(data)
    if problem:
        raise bad("calibration", where, problem, "Restore the file (git checkout), or rerun the bench that wrote it")
    return data


def _shipped_or_defaults() -> dict:
    """calibration.json; a damaged one warns once and the model runs on its cited defaults instead (every
    section empty), as before anything was measured: an estimate must not fail over a calibration file."""
    try:
        return load(PATH)
    except FinegptError as e:
        warnings.warn(f"{e} Using the cited defaults until it is restored.", stacklevel=3)
        return _with_sections({"about": "cited defaults: calibration.json could not be used"}, str(PATH))


def reload() -> dict:
    """Read calibration.json again (after a bench rewrote it)."""
    global _active
    _active = _shipped_or_defaults()
    return _active


def active() -> dict:
    """The calibration the model uses now: calibration.json, unless use() swapped in another."""
    global _active
    if _active is None:
        _active = _shipped_or_defaults()
    return _active


@contextlib.contextmanager
def use(calibration: dict | str | Path):
    """Estimate with another calibration for a while: a dict like load()'s, or a path to one."""
    global _active
    before = active()
    is_path = isinstance(calibration, (str, Path))
    _active = load(calibration) if is_path else _with_sections(calibration, "the calibration given to use()")
    try:
        yield _active
    finally:
        _active = before


def gpu_measured() -> bool:
    """Whether bench/gpu_check.py has measured the compiled terms on a GPU."""
    return active()["compiled"].get("status", CPU_ONLY).startswith("GPU")


def _compiled_section(device: str) -> dict:
    # CUDA runs read the GPU section once a GPU has measured it; CPU runs always read CPU inductor's.
    # Files from before the split kept CPU-inductor values under 'compiled'.
    data = active()
    if device != "cpu" and gpu_measured():
        return data["compiled"]
    return data["compiled_cpu"] or ({} if gpu_measured() else data["compiled"])


def compiled_coefficient(name: str, device: str = "cuda") -> float:
    """A compiled-step coefficient (e.g. 'logits_train_copies') for a run on `device` ('cuda' or 'cpu'):
    the value measured on that backend, the CPU-inductor one for CUDA until a GPU measured it, or the default."""
    return float(_compiled_section(device).get(name, COMPILED_DEFAULTS[name]))


def compiled_status(device: str = "cuda") -> str:
    """How a compiled run's terms were calibrated: 'GPU-measured (...)' once a GPU has measured them,
    'CPU-inductor calibrated, GPU pending' before; a CPU run's are 'CPU-inductor measured'."""
    if device == "cpu":
        return CPU_MEASURED
    return active()["compiled"]["status"] if gpu_measured() else CPU_ONLY


def eager_logit_bytes(name: str, dtype: str, device: str = "cuda") -> float | None:
    """Bytes per logit an eager CUDA step keeps ('logits_train_bytes' at the start of backward,
    'logits_eval_bytes' per eval token), as bench/gpu_check.py measured them for this dtype; None for a
    CPU run or an unmeasured dtype (terms.py's formula, the CPU build's count, applies)."""
    if device == "cpu":
        return None
    value = active()["eager_cuda"].get(dtype, {}).get(name)
    return None if value is None else float(value)


def measured_overhead(name: str) -> float | None:
    """A GPU-measured overhead ('cuda_context_gib', 'reserved_factor_eager', ...), or None."""
    value = active()["overheads"].get(name)
    return None if value is None else float(value)


def measured_mfu(gpu_key: str, compiled: bool) -> float | None:
    """The MFU bench/gpu_check.py measured on this preset (eager or compiled), or None."""
    value = active()["mfu"].get(gpu_key, {}).get("compiled" if compiled else "eager")
    return None if value is None else float(value)


def widen(low_high: tuple[float, float], measured: float | None) -> tuple[float, float]:
    """A cited (low, high) range, widened to include a measurement when there is one."""
    low, high = low_high
    return low_high if measured is None else (min(low, measured), max(high, measured))
