"""The `finegpt` command: prepare | train | sample | eval | memory | recommend | quickstart.

Each subcommand parses its arguments and calls one package function; no logic lives here.
Bad input prints one line (`error: <field>=<value>: ... .`) and exits 2; `--debug` shows the traceback.
"""

from __future__ import annotations

import argparse
import sys

from finegpt.errors import FinegptError


# ---- quickstart -------------------------------------------------------------------------------

def add_quickstart(sub) -> None:
    p = sub.add_parser("quickstart", help="offline demo: Shakespeare bytes -> tiny GPT on CPU -> text")
    p.add_argument("--out", default="out-quickstart", help="where data, checkpoints and logs go")
    p.add_argument("--max_iters", type=int, default=None, help="training steps (default: the quickstart's)")
    p.add_argument("--seed", type=int, default=1337)
    p.set_defaults(func=cmd_quickstart)


def cmd_quickstart(args, extra) -> int:
    from finegpt.quickstart import quickstart

    quickstart(out=args.out, max_iters=args.max_iters, seed=args.seed)
    return 0


# ---- the parser -------------------------------------------------------------------------------

SECTIONS = [add_quickstart]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="finegpt", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in SECTIONS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    if debug:  # accepted anywhere on the line, not only before the subcommand
        argv.remove("--debug")
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    unknown = [a for a in extra if not (a.startswith("--") and "=" in a)]
    if unknown or (extra and not getattr(args, "accepts_overrides", False)):
        parser.error(f"unrecognized arguments: {' '.join(unknown or extra)}")
    try:
        return args.func(args, extra) or 0
    except FinegptError as e:
        if debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
