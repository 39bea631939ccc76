"""Progress on the long steps (train, prepare, eval): a tqdm bar with the rate and an ETA in a terminal
or a notebook (tqdm.auto), and a plain line every LOG_EVERY_S seconds under a non-interactive log (CI,
SLURM, a pipe), where a redrawn bar would fill the file with carriage returns.

Entry points: progress(total, desc, unit, ...) -> an object with update(n), set_postfix(...), close(),
usable as a context manager; interactive() says which of the two a run gets.
"""

from __future__ import annotations

import sys
import time

LOG_EVERY_S = 30.0  # a CI or SLURM log gets a progress line this often


def in_notebook() -> bool:
    """True inside a Jupyter kernel (Jupyter, Colab), where tqdm.auto draws a widget."""
    ipython = sys.modules.get("IPython")  # never imported here: a plain script has no kernel
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def interactive(stream=None) -> bool:
    """A bar is drawn in a notebook or when `stream` (default stderr, where the bar goes) is a terminal."""
    stream = sys.stderr if stream is None else stream
    try:
        return in_notebook() or bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _size(n: float, unit: str) -> str:
    from tqdm import tqdm

    return f"{tqdm.format_sizeof(n)}{unit}"


class LogLines:
    """The bar's stand-in in a log file: 'train: 1.23M/3.07M tok (40%), 12.3ktok/s, eta 02:31' every
    every_s seconds, never redrawn. The rate is the average since the first update, so an ETA counts the
    pauses (evals, checkpoints) the way the rest of the run will have them too."""

    def __init__(self, total, desc: str, unit: str, initial: int = 0, every_s: float = LOG_EVERY_S, stream=None):
        self.total, self.desc, self.unit, self.every_s = total, desc, unit, every_s
        self.n = self.start_n = initial
        self.stream = sys.stderr if stream is None else stream
        self.t0, self.last_t, self.postfix = None, 0.0, ""

    def line(self, now: float) -> str:
        from tqdm import tqdm

        rate = (self.n - self.start_n) / max(now - self.t0, 1e-9)
        done = f"{_size(self.n, '')}/{_size(self.total, '')} {self.unit}" if self.total else _size(self.n, self.unit)
        parts = [f"{self.desc}: {done}" + (f" ({100 * self.n / self.total:.0f}%)" if self.total else "")]
        parts.append(f"{_size(rate, self.unit)}/s")
        if self.total and rate > 0:
            parts.append(f"eta {tqdm.format_interval((self.total - self.n) / rate)}")
        return ", ".join(parts + ([self.postfix] if self.postfix else []))

    def update(self, n: int = 1) -> None:
        now = time.monotonic()
        if self.t0 is None:  # the clock starts with the first work done, not at setup (an eval at iter 0)
            self.t0, self.last_t, self.start_n = now, now, self.n + n
        self.n += n
        if now - self.last_t >= self.every_s:
            self.last_t = now
            print(self.line(now), file=self.stream, flush=True)

    def set_postfix(self, refresh: bool = False, **values) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _AboveBar:
    """sys.stdout while a terminal bar is drawn: each printed line is written above the bar instead of
    through it (clear the bar, write the line, redraw), as tqdm.write does for its own calls."""

    def __init__(self, stream, bar):
        self.stream, self.bar, self.pending = stream, bar, ""

    def write(self, text: str) -> int:
        *lines, self.pending = (self.pending + text).split("\n")
        for line in lines:
            self.bar.clear()
            self.stream.write(line + "\n")
            self.stream.flush()
            self.bar.refresh()
        return len(text)

    def flush(self) -> None:
        if self.pending:
            self.stream.write(self.pending)
            self.pending = ""
        self.stream.flush()

    def __getattr__(self, name):
        return getattr(self.stream, name)


class Bar:
    """A tqdm.auto bar; in a terminal it also routes print() above itself until closed."""

    def __init__(self, **tqdm_kwargs):
        from tqdm.auto import tqdm

        try:
            self.tqdm = tqdm(**tqdm_kwargs)
        except ImportError:  # a notebook without ipywidgets: the text bar still works there
            from tqdm.std import tqdm as text_tqdm

            self.tqdm = text_tqdm(**tqdm_kwargs)
        self.stdout = self.above = None
        if not in_notebook():
            self.stdout, self.above = sys.stdout, _AboveBar(sys.stdout, self.tqdm)
            sys.stdout = self.above

    def update(self, n: int = 1) -> None:
        if self.tqdm.n == self.tqdm.initial:  # the clock starts at the first work done, as in LogLines
            self.tqdm.unpause()
        self.tqdm.update(n)

    def set_postfix(self, refresh: bool = False, **values) -> None:
        self.tqdm.set_postfix(refresh=refresh, **values)

    def close(self) -> None:
        if self.above is not None:
            self.above.flush()
            if sys.stdout is self.above:  # not if someone swapped stdout since
                sys.stdout = self.stdout
        self.stdout = self.above = None
        self.tqdm.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Off(LogLines):
    def update(self, n: int = 1) -> None:
        pass


def progress(total, desc: str, unit: str = "tok", initial: int = 0, enabled: bool = True, every_s: float | None = None):
    """A bar (terminal, notebook), log lines every every_s seconds (anything else), or nothing
    (enabled=False: another rank's, or switched off). total None: no percentage and no ETA."""
    if not enabled:
        return _Off(total, desc, unit, initial)
    if interactive():
        return Bar(
            total=total, initial=initial, desc=desc, unit=unit, unit_scale=True, dynamic_ncols=True, smoothing=0.1
        )
    return LogLines(total, desc, unit, initial, LOG_EVERY_S if every_s is None else every_s)
