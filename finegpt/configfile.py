"""nanoGPT-style config files read as data: `key = value` lines whose values are literals or arithmetic on
literals, parsed with `ast` and bounded in size and work, never executed.

Entry points: load_config_file (what the file says), config_file_settings (over nanoGPT train.py's defaults,
with a note for each default that applies), nanogpt_defaults. finegpt.config turns the settings into configs.
"""

from __future__ import annotations

import ast
import math
import operator
from pathlib import Path

from finegpt.errors import FinegptError, bad

_OPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}
# A config file is data: what its arithmetic may build is bounded, so no file can hang or exhaust a node.
MAX_CONFIG_BYTES = 1 << 20
MAX_INT_BITS = 64  # every setting fits an int64; 2**63 is already absurd
MAX_STR_CHARS = 4096  # paths, names, W&B run names
MAX_NODES = 200  # per value: nanoGPT files write at most `5 * 8` or `6e-4 / 10`
MAX_LINE_CHARS = MAX_STR_CHARS + 100


class _Oversized(Exception):
    pass


def _bounded(value):
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise _Oversized(f"builds a number larger than 2**{MAX_INT_BITS}")
    if isinstance(value, (str, bytes)) and len(value) > MAX_STR_CHARS:
        raise _Oversized(f"builds a string longer than {MAX_STR_CHARS} characters")
    return value


def _checked_op(op, *args):
    """Refuse, before computing it, a power or repetition whose result would be oversized."""
    if op is operator.pow and all(isinstance(a, int) for a in args):  # float powers are O(1) and overflow
        base, exp = args
        if abs(base) > 1 and exp > 0 and exp * math.log2(abs(base)) > MAX_INT_BITS:
            raise _Oversized(f"builds a number larger than 2**{MAX_INT_BITS}")
    if op is operator.mul and any(isinstance(a, (str, bytes)) for a in args):
        text, times = args if isinstance(args[0], (str, bytes)) else args[::-1]
        if isinstance(times, int) and len(text) * max(times, 0) > MAX_STR_CHARS:
            raise _Oversized(f"builds a string longer than {MAX_STR_CHARS} characters")
    try:
        return _bounded(op(*args))
    except (OverflowError, ZeroDivisionError, TypeError) as e:
        raise _Oversized(f"cannot be computed ({e})") from e


def _literal(node: ast.AST, where: str):
    """A literal, or arithmetic on literals (nanoGPT files write `5 * 8`). Nothing is executed."""
    if isinstance(node, ast.Constant):
        return _bounded(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _checked_op(_OPS[type(node.op)], _literal(node.left, where), _literal(node.right, where))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
        return _checked_op(_OPS[type(node.op)], _literal(node.operand, where))
    raise FinegptError(
        f"{where}: only literal values are allowed (numbers, strings, True/False, "
        f"arithmetic). Replace the expression with its value."
    )


def _short(text: str) -> str:
    text = text.replace("\n", " ").strip()
    return text if len(text) <= 40 else text[:37] + "..."


def _value(stmt: ast.Assign, source: str, where: str):
    """The value of `key = <expression>`, bounded in size and work; an oversized one names the key."""
    key = stmt.targets[0].id
    shown = _short(ast.get_source_segment(source, stmt.value) or "...")
    if sum(1 for _ in ast.walk(stmt.value)) > MAX_NODES:
        raise bad(key, shown, f"an expression of more than {MAX_NODES} parts ({where})", "Write the value itself")
    try:
        return _literal(stmt.value, where)
    except _Oversized as e:
        raise bad(key, shown, f"{e} ({where})", "Write the value itself") from None


def _check_lines(source: str, path: Path) -> None:
    """A line too long for any sensible value is refused before parsing (deep nesting, huge literals)."""
    for lineno, line in enumerate(source.splitlines(), start=1):
        if len(line) > MAX_LINE_CHARS:
            key, _, value = line.partition("=")
            raise bad(
                key.strip() if key.strip().isidentifier() else "config",
                _short(value if key.strip().isidentifier() else line),
                f"a line of {len(line)} characters (config={str(path)!r} line {lineno}, at most {MAX_LINE_CHARS})",
                "Write the value itself",
            )


# A nanoGPT config file overrides nanoGPT's train.py, whose defaults differ from TrainConfig's in one key:
# train.py compiles the model. So a file that does not set compile runs compiled, here as there.
# TrainConfig() itself stays eager: the quickstart and the CPU notebooks would spend minutes compiling a toy.
NANOGPT_TRAIN_DEFAULTS = {"compile": True}


def nanogpt_defaults(values: dict, path: str | Path) -> tuple[dict, list[str]]:
    """The NANOGPT_TRAIN_DEFAULTS that the settings of config file `path` (with its overrides, and a resumed
    run's saved settings) leave unset, and a note for each, saying so and how to turn it off."""
    unset = {key: value for key, value in NANOGPT_TRAIN_DEFAULTS.items() if key not in values}
    notes = [
        f"note: {key}={value} (nanoGPT's train.py default, which config files follow; {Path(path).name} "
        f"does not set {key}: add {key}={not value} or --{key}={not value} to change it)"
        for key, value in unset.items()
    ]
    return unset, notes


def config_file_settings(path: str | Path, overrides: dict | None = None) -> tuple[dict, list[str]]:
    """A config file's values over nanoGPT train.py's defaults (NANOGPT_TRAIN_DEFAULTS), then overrides;
    and a note for each default that applies, so the output says so and how to turn it off."""
    values = {**load_config_file(path), **(overrides or {})}
    defaults, notes = nanogpt_defaults(values, path)
    return {**defaults, **values}, notes


def load_config_file(path: str | Path) -> dict:
    """Read `key = value` lines of a nanoGPT config file into a dict, safely (no exec). Only what the file
    says: config_file_settings adds nanoGPT train.py's defaults (compile=True)."""
    path = Path(path)
    if not path.is_file():
        raise bad("config", str(path), "no such file", "Check the path, or pass settings as --key=value")
    size_bytes = path.stat().st_size
    if size_bytes > MAX_CONFIG_BYTES:
        raise bad(
            "config",
            str(path),
            f"{size_bytes} bytes, more than a config file needs ({MAX_CONFIG_BYTES} at most)",
            "Write one `key = value` per line",
        )
    source = path.read_text(encoding="utf-8")
    _check_lines(source, path)
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as e:
        raise FinegptError(
            f"config={str(path)!r}: line {e.lineno} is not valid Python syntax. Write one `key = value` per line."
        ) from e
    except (RecursionError, MemoryError, ValueError) as e:  # nesting too deep for the parser, a huge literal
        raise bad(
            "config", str(path), f"cannot be parsed ({type(e).__name__})", "Write one `key = value` per line"
        ) from None
    values = {}
    for stmt in tree.body:
        where = f"config={str(path)!r} line {stmt.lineno}"
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            continue  # nanoGPT files sometimes `import time`; values using it are rejected below
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue  # a docstring
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)):
            raise FinegptError(f"{where}: only `key = value` assignments are allowed. Remove the statement.")
        values[stmt.targets[0].id] = _value(stmt, source, where)
    return values
