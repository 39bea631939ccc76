"""What every checker shares: run the student's code, stop at the first mistake found, print one line.

A diagnosis computes finegpt's answer first, on its own copies of the inputs, then runs the student's
code through runner.student (a time limit, every exception caught, fresh copies), and raises
Hint("what is wrong. what to do") at the first mistake it recognises: a known wrong variant computed
on the same inputs (`match`), or else the first input and output element that differ (`differ_at`).
It returns a short note of what it verified. `checker(title)` turns a diagnosis into a notebook's
check_*: it prints "✓ title: note", "✗ title: hint" or the not-attempted line, and never raises
(a real Ctrl-C aside).
"""

from __future__ import annotations

import functools
import numbers

import numpy as np
import torch

from finegpt.exercises.runner import Hint, NotAttempted, StudentRaised, budget, student

__all__ = ["NOT_ATTEMPTED", "Hint", "NotAttempted", "StudentRaised", "checker", "student"]

NOT_ATTEMPTED = "not attempted yet: write it, then run this cell"


def checker(title: str):
    def wrap(diagnose):
        @functools.wraps(diagnose)
        def check(answer, *, time_limit_s: float | None = None) -> None:
            """Check `answer`; the student's code gets time_limit_s seconds in all (default 10)."""
            try:
                if not callable(answer) or isinstance(answer, torch.nn.Module):
                    raise Hint(
                        f"pass your function or class itself, as {diagnose.__name__}(my_function) or "
                        f"{diagnose.__name__}(MyClass), not what it returns; got {kind(answer)}"
                    )
                with budget(time_limit_s):
                    note = diagnose(answer)
            except NotAttempted:
                line = f"… {title}: {NOT_ATTEMPTED}"
            except Hint as hint:
                line = f"✗ {title}: {hint}"
            except StudentRaised as e:  # the student's code crashed: its own message is the best pointer
                line = f"✗ {title}: {e}"
            except Exception as e:  # noqa: BLE001 - after their code returned: the checker's own fault
                line = (
                    f"✗ {title}: finegpt's checker failed ({type(e).__name__}: {e}); this is not your mistake. "
                    f"Please report it, with your code"
                )
            else:
                line = f"✓ {title}: {note}"
            print(line)

        return check

    return wrap


# ---- the type of what came back ---------------------------------------------------------------------


def kind(got) -> str:
    if isinstance(got, str):
        return f"a string {got[:40]!r}"
    return f"a {type(got).__name__}"


def tensor(name: str, got, floating: bool = True) -> torch.Tensor:
    if isinstance(got, str):
        raise Hint(f"{name} is {kind(got)}, not a torch.Tensor: return the tensor itself, not text")
    if not isinstance(got, torch.Tensor):
        raise Hint(f"{name} should be a torch.Tensor, got {kind(got)}")
    if got.device.type != "cpu" or got.is_complex():
        raise Hint(f"{name} should be a real tensor on the input's device (cpu), got {got.dtype} on {got.device}")
    if floating and not got.is_floating_point():
        raise Hint(f"{name} should hold floats, got {got.dtype}: keep the input's dtype")
    return got.detach()


def number(name: str, got) -> float:
    """A real number: int, float, numpy scalar or a one-element tensor; bools and strings are named."""
    if isinstance(got, torch.Tensor) and got.numel() == 1 and not got.is_complex():
        return float(got.detach())
    if isinstance(got, np.ndarray) and got.size == 1 and got.dtype.kind in "iuf":
        return float(got)
    if isinstance(got, bool) or not isinstance(got, numbers.Real):
        raise Hint(f"{name} should be a number, got {kind(got)}: return the value itself, not text or a container")
    return float(got)


def integer(name: str, got) -> int:
    """An exact whole number (an int, a numpy int, or a float with no fraction)."""
    value = number(name, got)
    if value != value or value in (float("inf"), float("-inf")) or value != int(value):
        raise Hint(f"{name} should be a whole number, got {value!r}: bytes and batch sizes are ints (use //)")
    return int(value)


def array(name: str, got) -> np.ndarray:
    if isinstance(got, torch.Tensor):
        got = got.detach().cpu().numpy()
    if isinstance(got, (str, bytes)) or got is None:
        raise Hint(f"{name} should be a numpy array, got {kind(got)}")
    try:
        out = np.asarray(got)
    except Exception:  # noqa: BLE001 - a ragged list, an odd object
        raise Hint(f"{name} should be a numpy array, got {kind(got)}") from None
    if out.dtype.kind not in "iuf":
        raise Hint(f"{name} should hold numbers, got an array of {out.dtype}")
    return out


# ---- comparing what came back -----------------------------------------------------------------------


def same_shape(name: str, got, expected: tuple, letters: str) -> None:
    """Hint when shapes differ; a permutation of the right sizes is named letter by letter, so a
    transpose reads as one: expected (B, T, C), got (B, C, T). Test sizes are chosen all different."""
    got, expected = tuple(got), tuple(expected)
    if got == expected:
        return
    names = dict(zip(expected, letters.split(", ")))
    if sorted(got) == sorted(expected):
        raise Hint(
            f"{name} has the right sizes in the wrong order: expected ({letters}) = {expected}, got "
            f"({', '.join(names[d] for d in got)}) = {got}. Check your transpose / view"
        )
    raise Hint(f"{name} should have shape ({letters}) = {expected}, got {got}")


def close(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-5) -> bool:
    """Equal to tolerance; NaN matches NaN (a wrong variant may well produce NaN)."""
    return a.shape == b.shape and torch.allclose(a.float(), b.float(), atol=atol, rtol=1e-4, equal_nan=True)


def match(got: torch.Tensor, mistakes, atol: float = 1e-5) -> None:
    """Hint with the first known mistake (a dict, or (hint, output) pairs) whose output equals the student's."""
    for hint, wrong in mistakes.items() if isinstance(mistakes, dict) else mistakes:
        if close(got, wrong, atol):
            raise Hint(hint)


def differ_at(name: str, got, want, context: str = "", atol: float = 1e-5) -> str:
    """'y[0, 2, 3, 1] is 0.5123, expected 0.1034 (17 of 672 elements differ, by up to 0.8)'."""
    g = torch.as_tensor(np.asarray(got) if not isinstance(got, torch.Tensor) else got).double()
    w = torch.as_tensor(np.asarray(want) if not isinstance(want, torch.Tensor) else want).double()
    bad = ~torch.isclose(g, w, atol=atol, rtol=1e-4, equal_nan=True)
    if not bad.any():
        return f"{name} matches{context}"
    i = tuple(int(j) for j in bad.nonzero()[0])
    diff = (g - w).abs().nan_to_num(float("inf"))[bad].max()
    return (
        f"{name}[{', '.join(map(str, i))}] is {g[i].item():.6g}, expected {w[i].item():.6g}{context} "
        f"({int(bad.sum())} of {bad.numel()} elements differ, by up to {diff.item():.3g})"
    )
