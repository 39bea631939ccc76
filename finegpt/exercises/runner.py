"""Running the student's code so that nothing it does can break the checker: a time limit, every
exception caught, its inputs handed over as copies, and `None` named as a missing `return`.

student(fn, *args) is the one way a checker calls student code; budget(limit_s) opens a check's time
budget. In the main thread the limit is a SIGALRM timer (it stops pure-Python and torch loops, and
time.sleep), helped by a trace function when their code catches the exception; in other threads the
trace function alone checks the clock at every line (there a loop that catches every exception can
outlast it).
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import math
import os
import signal
import sys
import sysconfig
import threading
import time
import traceback

import numpy as np
import torch

TIME_LIMIT_S = 10.0  # the student's code gets this much in total, per check


class Hint(Exception):
    """The one mistake a checker found, said so that the student knows what to change."""


class NotAttempted(Exception):
    """The gap is still a gap: NotImplementedError raised by the student's own code, or `...`."""


class StudentRaised(Exception):
    """The student's code raised (anything, SystemExit included): the message names it and where."""


class _TimeUp(BaseException):
    """Raised into the student's code when its time is up; a BaseException, so `except Exception` in
    their loop does not swallow it (and the timer raises again if a bare `except:` does)."""


# ---- where in the student's code --------------------------------------------------------------------

_OURS = os.path.dirname(os.path.abspath(__file__))  # finegpt/exercises: the checkers themselves
_NOT_THEIRS = tuple(  # folders whose code the student may call but did not write: finegpt, stdlib, packages
    os.path.join(os.path.abspath(p), "")
    for p in {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    | {os.path.dirname(os.path.dirname(os.path.abspath(torch.__file__))), os.path.dirname(_OURS)}
)


def _is_student(filename: str) -> bool:
    return not (os.path.abspath(filename).startswith(_NOT_THEIRS) or filename.startswith("<frozen"))


def where(tb) -> str:
    """'line 3 of lr_at: `while it > 0:`', the innermost line of student code in a traceback."""
    # a "<string>" dunder is code Python generated (a dataclass's __init__ under replace()), not the student's
    generated = lambda f: f.filename == "<string>" and f.name.startswith("__")  # noqa: E731
    frames = [f for f in traceback.extract_tb(tb) if _is_student(f.filename) and not generated(f)]
    if not frames:
        return ""
    f = frames[-1]
    line = f" `{f.line.strip()}`" if f.line else ""
    return f" (line {f.lineno} of {f.name}:{line})"


# ---- the time limit ---------------------------------------------------------------------------------


class _Budget:
    def __init__(self, limit_s: float):
        self.limit_s, self.used_s = float(limit_s), 0.0


_budget = threading.local()


@contextlib.contextmanager
def budget(limit_s: float | None):
    """A check's time budget: every student call inside shares it."""
    previous = getattr(_budget, "current", None)
    _budget.current = _Budget(TIME_LIMIT_S if limit_s is None else limit_s)
    try:
        yield _budget.current
    finally:
        _budget.current = previous


class _Tracer:
    """A trace function that raises _TimeUp at the next line of the student's code once the deadline
    has passed: outside the main thread it is the time limit, in it _Alarm's second line, for a loop
    that catches the exception (the next line, in the `except` block itself, raises again). Only the
    student's frames are touched, never the checker's."""

    def __init__(self, seconds: float):
        self.deadline, self.active, self.previous, self.frames = time.monotonic() + seconds, False, None, []

    def _trace(self, frame, event, arg):
        if not _is_student(frame.f_code.co_filename):
            return None
        if event == "line" and self.active and time.monotonic() > self.deadline:
            raise _TimeUp  # (Python then drops the trace function: _Alarm puts it back at its next alarm)
        return self._trace

    def start(self, frame=None) -> None:
        """Trace every new frame of this thread, and the student's frames already running under `frame`."""
        self.active, self.previous = True, sys.gettrace()
        sys.settrace(self._trace)
        while frame is not None and frame.f_code is not _call.__code__:
            if _is_student(frame.f_code.co_filename):
                frame.f_trace, frame.f_trace_lines = self._trace, True
                self.frames.append(frame)
            frame = frame.f_back

    def stop(self) -> None:
        self.active = False
        sys.settrace(self.previous)
        for frame in self.frames:
            frame.f_trace = None
        self.frames.clear()


class _Alarm:
    """SIGALRM after `seconds`, raising _TimeUp into the running code (it stops pure-Python and torch
    loops, and time.sleep). It also starts a _Tracer, in case the student's code catches the exception.
    Main thread only."""

    def __init__(self, seconds: float):
        self.seconds, self.active, self.previous, self.tracer, self.trace = seconds, False, None, None, None
        self.outer, self.t0 = (0.0, 0.0), 0.0

    def _fire(self, signum, frame):
        if self.active:
            signal.setitimer(signal.ITIMER_REAL, 0.05)  # and again, until stopped
            if self.tracer is not None:
                self.tracer.stop()
            self.tracer = _Tracer(0.0)
            self.tracer.start(frame)
            raise _TimeUp

    def start(self) -> None:
        self.trace = sys.gettrace()
        self.previous = signal.signal(signal.SIGALRM, self._fire)
        self.active, self.t0 = True, time.monotonic()
        self.outer = signal.setitimer(signal.ITIMER_REAL, max(self.seconds, 1e-3))  # someone else's alarm, if any

    def stop(self) -> None:
        while True:  # an alarm may land here, before `active` is down: go round again
            try:
                self.active = False
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, self.previous or signal.SIG_DFL)
                if self.outer[0] > 0:  # give the outer alarm back, less the time spent here
                    left = max(self.outer[0] - (time.monotonic() - self.t0), 1e-3)
                    signal.setitimer(signal.ITIMER_REAL, left, self.outer[1])
                if self.tracer is not None:
                    self.tracer.stop()
                    sys.settrace(self.trace)
                return
            except _TimeUp:
                continue


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")


@contextlib.contextmanager
def _ctrl_c():
    """While the student's code runs, remember whether the user really pressed Ctrl-C, so that a
    KeyboardInterrupt raised by their code is reported, and a real one still stops the cell."""
    pressed = [False]
    if not _in_main_thread():
        yield pressed
        return
    previous = signal.getsignal(signal.SIGINT)

    def on_sigint(signum, frame):
        pressed[0] = True
        if callable(previous) and previous is not signal.default_int_handler:
            previous(signum, frame)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield pressed
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def _kept():
    """Global settings the student's code may change and not put back, put back: autograd on or off,
    torch's default dtype, and where print goes."""
    grad, dtype, out, err = torch.is_grad_enabled(), torch.get_default_dtype(), sys.stdout, sys.stderr
    try:
        yield
    finally:
        torch.set_grad_enabled(grad)
        torch.set_default_dtype(dtype)
        sys.stdout, sys.stderr = out, err


def _call(fn, args, kwargs, seconds: float):
    """(True, result) or (False, the exception): whatever the student's code does, this returns."""
    timer = (_Alarm if _in_main_thread() else _Tracer)(seconds)
    try:
        try:
            timer.start()
            try:
                return True, fn(*args, **kwargs)
            except BaseException as e:  # noqa: BLE001 - SystemExit, GeneratorExit, _TimeUp: all theirs
                return False, e
        finally:
            timer.stop()
    except _TimeUp as e:  # landed between their last line and the timer's stop
        return False, e


# ---- calling the student's code ---------------------------------------------------------------------


def _name(fn) -> str:
    if isinstance(fn, torch.nn.Module):
        return f"{type(fn).__name__}.forward"
    name = getattr(fn, "__name__", None) or type(fn).__name__
    return "your function" if name == "<lambda>" else f"{name}"


def _copy(value):
    try:
        return copy.deepcopy(value)
    except Exception:  # noqa: BLE001 - a tokenizer or a file handle: hand it over as it is
        return value


def same(a, b) -> bool:
    """Deep equality of what a checker hands over: tensors and arrays exactly (NaN equal to NaN),
    modules by their state, containers element by element; anything else by ==, or assumed unchanged."""
    if isinstance(a, torch.Tensor):
        return (
            isinstance(b, torch.Tensor)
            and a.shape == b.shape
            and torch.equal(torch.nan_to_num(a.detach(), nan=0.123), torch.nan_to_num(b.detach(), nan=0.123))
        )
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    if isinstance(a, torch.nn.Module):
        sa, sb = a.state_dict(), b.state_dict()
        return sa.keys() == sb.keys() and all(same(sa[k], sb[k]) for k in sa)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return type(a) is type(b) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    if type(a).__eq__ is object.__eq__:  # no equality of its own (a tokenizer): compare its attributes
        return type(a) is type(b) and (not hasattr(a, "__dict__") or same(vars(a), vars(b)))
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001
        return True


def _parameter_names(fn, n: int) -> list[str]:
    target = fn.forward if isinstance(fn, torch.nn.Module) else fn
    try:
        names = []
        for p in inspect.signature(target).parameters.values():
            if p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                break
            names.append(p.name)
    except (TypeError, ValueError):
        names = []
    return (names + [f"argument {i + 1}" for i in range(len(names), n)])[:n]


def student(fn, *args, shared: tuple[int, ...] = (), allow_none: bool = False, **kwargs):
    """Call the student's `fn` on deep copies of `args` (those at the indexes in `shared` are passed as
    they are: a model to train, a counting predicate) within the check's time budget. Returns what it
    returned; raises NotAttempted, Hint (time up, None returned, an input changed in place) or
    StudentRaised. A real Ctrl-C propagates."""
    given = [a if i in shared else _copy(a) for i, a in enumerate(args)]
    state = getattr(_budget, "current", None) or _Budget(TIME_LIMIT_S)
    left = state.limit_s - state.used_s
    if left <= 0:
        raise Hint(f"your code used up its {state.limit_s:g} s: it is far too slow, or a loop never ends")
    start = time.monotonic()
    with _ctrl_c() as pressed, _kept():
        ok, out = _call(fn, given, kwargs, left)
    state.used_s += time.monotonic() - start
    if not ok:
        _raised(fn, out, pressed[0], state.limit_s)
    if out is Ellipsis:
        raise NotAttempted
    if out is None and not allow_none:
        raise Hint(f"{_name(fn)} returned None: is its `return` missing? (A function without `return` gives None)")
    for i, (a, g) in enumerate(zip(args, given)):
        if i not in shared and g is not a and not same(a, g):
            name = _parameter_names(fn, len(args))[i]
            raise Hint(
                f"your code changed its input `{name}` in place (an in-place op such as +=, masked_fill_, "
                f"x[...] = ..., .append, .sort): the caller still needs it. Work on a copy, or use out-of-place ops"
            )
    return out


def _raised(fn, e: BaseException, pressed: bool, limit_s: float) -> None:
    if isinstance(e, KeyboardInterrupt) and pressed:
        raise e  # the user pressed Ctrl-C: stop the cell, as any other cell would
    if isinstance(e, _TimeUp):
        raise Hint(
            f"your code did not finish in {limit_s:g} s{where(e.__traceback__) or ''}: a loop that never ends? "
            f"Check when it stops"
        )
    tb = traceback.extract_tb(e.__traceback__)
    if isinstance(e, NotImplementedError) and tb and _is_student(tb[-1].filename):
        raise NotAttempted
    if isinstance(e, SystemExit):
        raise StudentRaised(f"your code called sys.exit({e.code!r}){where(e.__traceback__)}: return a value instead")
    message = f": {e}" if str(e) else ""
    raise StudentRaised(f"your code raised {type(e).__name__}{message}{where(e.__traceback__)}") from None
