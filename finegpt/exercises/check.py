"""What every checker shares: run the student's code, stop at the first mistake found, print one line.

A diagnosis runs the student's function on seeded inputs, compares it with finegpt's own version and
raises Hint("what is wrong. what to do") at the first mistake it recognises; it returns a short note of
what it verified. `checker(title)` turns a diagnosis into a notebook's check_*: it prints
"✓ title: note", "✗ title: hint" or the not-attempted line, and never raises, so a notebook with the
exercises unanswered still runs to its end.
"""

from __future__ import annotations

import functools

import torch

NOT_ATTEMPTED = "not attempted yet: write it, then run this cell"


class Hint(Exception):
    """The one mistake a checker found, said so that the student knows what to change."""


class NotAttempted(Exception):
    """The gap is still a gap: NotImplementedError, `...`, or nothing returned."""


def attempt(fn, *args, **kwargs):
    """Call the student's code (a function, or a class to instantiate). An unanswered gap raises
    NotAttempted; any other error of theirs propagates to the checker, which prints it."""
    try:
        out = fn(*args, **kwargs)
    except NotImplementedError:
        raise NotAttempted from None
    if out is None or out is Ellipsis:
        raise NotAttempted
    return out


def checker(title: str):
    def wrap(diagnose):
        @functools.wraps(diagnose)
        def check(*answer) -> None:
            try:
                note = diagnose(*answer)
            except NotAttempted:
                line = f"… {title}: {NOT_ATTEMPTED}"
            except Hint as hint:
                line = f"✗ {title}: {hint}"
            except Exception as e:  # the student's code crashed: its own message is the best pointer
                line = f"✗ {title}: your code raised {type(e).__name__}: {e}"
            else:
                line = f"✓ {title}: {note}"
            print(line)

        return check

    return wrap


# ---- comparing what came back ---------------------------------------------------------------------


def tensor(name: str, got) -> torch.Tensor:
    if not isinstance(got, torch.Tensor):
        raise Hint(f"{name} should be a torch.Tensor, got {type(got).__name__}")
    return got


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
    return a.shape == b.shape and torch.allclose(a.float(), b.float(), atol=atol, rtol=1e-4)


def match(got: torch.Tensor, mistakes: dict[str, torch.Tensor], atol: float = 1e-5) -> None:
    """Hint with the first known mistake whose output equals the student's."""
    for hint, wrong in mistakes.items():
        if close(got, wrong, atol):
            raise Hint(hint)
