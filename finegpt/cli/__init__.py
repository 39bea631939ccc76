"""The `finegpt` command: prepare | train | check | sample | eval | memory | recommend | speed | quickstart.

Each subcommand parses its arguments and calls one package function. Settings are written --key=value or
--key value alike, for every subcommand (split_settings). Bad input prints one line
(`error: <field>=<value>: ... .`) and exits 2; `--debug` shows the traceback.
"""

from __future__ import annotations

import argparse
import difflib
import sys

from finegpt.cli.data import add_check, add_eval, add_prepare, add_sample
from finegpt.cli.plans import add_memory, add_recommend, add_speed
from finegpt.cli.runs import add_quickstart, add_train
from finegpt.config import split_settings
from finegpt.errors import FinegptError

# ---- the parser -------------------------------------------------------------------------------

SECTIONS = [add_quickstart, add_train, add_prepare, add_check, add_sample, add_eval]
SECTIONS += [add_memory, add_recommend, add_speed]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="finegpt", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in SECTIONS:
        add(sub)
    parser.subcommands = sub.choices  # name -> its parser, for split_settings
    return parser


def unknown_option(parser: argparse.ArgumentParser, command: str, words: list[str]) -> FinegptError:
    """One line for a flag the subcommand does not take, with the closest one it does."""
    sub = parser.subcommands[command]
    options = sorted(name for action in sub._actions for name in action.option_strings)
    flag = next((w for w in words if w.startswith("-")), words[0])
    close = difflib.get_close_matches(flag.split("=", 1)[0], options, n=1)
    hint = f"Did you mean {close[0]}?" if close else f"See `finegpt {command} --help`"
    return FinegptError(f"{flag}: not an option of `finegpt {command}`. {hint}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    if debug:  # accepted anywhere on the line, not only before the subcommand
        argv.remove("--debug")
    parser, args = build_parser(), None
    try:
        sub = next((parser.subcommands[a] for a in argv if a in parser.subcommands), None)
        if sub is not None and sub.get_default("accepts_overrides"):  # train, memory: settings as flags
            argv, settings = split_settings(argv, {name for action in sub._actions for name in action.option_strings})
        else:
            settings = []
        args, unknown = parser.parse_known_args(argv)
        if unknown:
            raise unknown_option(parser, args.command, unknown)
        return args.func(args, settings) or 0
    except FinegptError as e:
        if debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # Ctrl-C / SIGTERM: training says where it saved; prepare resumes on a rerun
        if debug:
            raise
        resume = ": rerun the same command to resume" if args and args.command == "prepare" else ""
        print(str(e) or f"interrupted{resume}.", file=sys.stderr)
        return getattr(e, "exit_code", 130)
