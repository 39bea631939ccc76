"""The one error type a student sees: `<field>=<value>: <what is wrong>. <what to do>.`

The CLI prints its message on one line and exits 2; `--debug` shows the traceback.
"""


class FinegptError(ValueError):
    """Bad input a user can fix. The message names the field and the fix."""


def bad(field: str, value, problem: str, fix: str) -> FinegptError:
    """Build the error in the house format; callers `raise bad(...)`."""
    shown = value if isinstance(value, (int, float)) and not isinstance(value, bool) else repr(value)
    end = "" if fix.endswith(("?", "!", ".")) else "."
    return FinegptError(f"{field}={shown}: {problem.rstrip('.')}. {fix}{end}")
