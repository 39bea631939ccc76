"""The `finegpt` command: prepare | train | sample | eval | memory | recommend | speed | quickstart.

Each subcommand parses its arguments and calls one package function. Settings are written --key=value or
--key value alike, for every subcommand (split_settings). Bad input prints one line
(`error: <field>=<value>: ... .`) and exits 2; `--debug` shows the traceback.
"""

from __future__ import annotations

import argparse
import difflib
import sys

from finegpt.config import split_settings
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


# ---- train ------------------------------------------------------------------------------------


def add_train(sub) -> None:
    from finegpt.config import MODEL_KEYS, TRAIN_KEYS

    p = sub.add_parser(
        "train",
        help="train a GPT on prepared shards (torchrun-ready)",
        description="Settings come from an optional nanoGPT-style config file, then --key=value.",
        epilog=f"keys: {', '.join(sorted(MODEL_KEYS | TRAIN_KEYS))}. Several GPUs or processes: "
        "torchrun --standalone --nproc_per_node=N -m finegpt train ...",
    )
    p.add_argument("config", nargs="?", default=None, help="config file of `key = value` lines")
    p.add_argument("--resume", action="store_true", help="continue the run in out_dir from its checkpoint")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run in out_dir, once the new one finishes (kept until then)",
    )
    p.set_defaults(func=cmd_train, accepts_overrides=True)


def cmd_train(args, extra) -> int:
    from finegpt.train import train_from_cli

    train_from_cli(args.config, extra, resume=args.resume, overwrite=args.overwrite)
    return 0


# ---- prepare ----------------------------------------------------------------------------------


def add_prepare(sub) -> None:
    p = sub.add_parser("prepare", help="documents -> token shards (Shakespeare, FineWeb, local txt/jsonl/parquet)")
    p.add_argument(
        "--source",
        default="shakespeare",
        help="shakespeare | fineweb | fineweb-edu | a path or glob of .txt / .jsonl / .parquet files",
    )
    p.add_argument(
        "--name", default=None, help="FineWeb config, e.g. sample-10BT (default), sample-100BT, CC-MAIN-2024-10"
    )
    p.add_argument(
        "--data_files", default=None, help="read --source fineweb's schema from these local parquet files instead"
    )
    p.add_argument(
        "--tokenizer",
        default=None,
        choices=["bytes", "gpt2"],
        help="default: bytes for shakespeare, gpt2 for everything else",
    )
    p.add_argument("--tokens", default=None, help="token budget, EOTs included, e.g. 2e9; stops exactly there")
    p.add_argument("--out", default="data/shakespeare", help="output directory for the shards")
    p.add_argument("--shard_tokens", default="1e8", help="tokens per shard (default 1e8)")
    p.add_argument(
        "--val_fraction", type=float, default=0.1, help="share of the budget held out as val (at most one shard)"
    )
    p.add_argument("--val_tokens", default=None, help="held-out val tokens, overriding --val_fraction")
    p.add_argument("--workers", type=int, default=None, help="tokenizer processes (default: all cores; 0 for bytes)")
    p.add_argument(
        "--shuffle_buffer", type=int, default=0, help="shuffle documents within windows of this many (0: off)"
    )
    p.add_argument("--seed", type=int, default=1337, help="the shuffle's seed")
    p.add_argument("--text_column", default="text", help="the column / JSON field holding the text")
    p.add_argument(
        "--overwrite", action="store_true", help="replace the shards in --out, once the new ones are complete"
    )
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_prepare)


def cmd_prepare(args, extra) -> int:
    import json

    from finegpt.data import prepare

    stats = prepare(
        args.source,
        args.out,
        args.tokenizer,
        args.tokens,
        name=args.name,
        data_files=args.data_files,
        text_column=args.text_column,
        shard_tokens=args.shard_tokens,
        val_fraction=args.val_fraction,
        val_tokens=args.val_tokens,
        workers=args.workers,
        shuffle_buffer=args.shuffle_buffer,
        seed=args.seed,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    info = {k: v for k, v in stats.items() if k != "shards"} | {"shards": len(stats["shards"]), "out": args.out}
    print(json.dumps(info))
    return 0


# ---- sample -----------------------------------------------------------------------------------


def add_sample(sub) -> None:
    from finegpt.config import SAMPLING

    p = sub.add_parser("sample", help="generate text from a checkpoint and/or a GPT-2 baseline")
    p.add_argument("--ckpt", default=None, help="checkpoint file or out dir (default: out, unless --baseline)")
    p.add_argument(
        "--baseline", default=None, help="also (or only) sample GPT-2: gpt2, gpt2-medium, ... or a local dir"
    )
    p.add_argument("--prompt", default="", help="start text; FILE:path reads it from a file; empty starts a document")
    p.add_argument("--num_samples", type=int, default=1)
    p.add_argument("--max_new_tokens", type=int)
    p.add_argument("--temperature", type=float, help="0 is greedy")
    p.add_argument("--top_k", type=int, help="0 switches top-k off")
    p.add_argument("--top_p", type=float, help="nucleus sampling, in (0, 1]")
    p.add_argument("--seed", type=int)
    p.set_defaults(**SAMPLING)
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--no_cache", action="store_true", help="recompute the whole context every token (slow; for comparison)"
    )
    p.add_argument(
        "--raw",
        action="store_true",
        help="write the samples' exact bytes for piping: no headers, control characters and invalid UTF-8 "
        "kept (several samples are separated by a newline)",
    )
    p.set_defaults(func=cmd_sample)


def cmd_sample(args, extra) -> int:
    from finegpt.sample import check_sampling, generate_tokens, load_for_sampling, printable, read_prompt

    check_sampling(args.max_new_tokens, args.temperature, args.top_k, args.top_p, args.num_samples)
    prompt = read_prompt(args.prompt)
    sources = [("ckpt", args.ckpt or "out")] if args.ckpt or not args.baseline else []
    sources += [("baseline", args.baseline)] if args.baseline else []
    raw = []
    for kind, name in sources:
        model, tokenizer, label = load_for_sampling(**{kind: name}, device=args.device)
        rows = generate_tokens(
            model,
            tokenizer,
            prompt,
            args.max_new_tokens,
            args.temperature,
            args.top_k,
            args.top_p,
            args.seed,
            use_cache=not args.no_cache,
            num_samples=args.num_samples,
        )
        if args.raw:
            raw += [tokenizer.decode_bytes(ids) for ids in rows]
            continue
        for i, ids in enumerate(rows):
            print(f"===== {printable(label)} | sample {i + 1}/{len(rows)} =====\n{printable(tokenizer.decode(ids))}")
    if args.raw:
        sys.stdout.flush()
        sys.stdout.buffer.write(b"\n".join(raw))
        sys.stdout.buffer.flush()
    return 0


# ---- eval -------------------------------------------------------------------------------------


def add_eval(sub) -> None:
    p = sub.add_parser("eval", help="val loss / perplexity of a checkpoint beside GPT-2, and HellaSwag")
    p.add_argument("--ckpt", default=None, help="checkpoint file or out dir")
    p.add_argument("--baseline", default=None, help="gpt2 | gpt2-medium | gpt2-large | gpt2-xl | a local dir")
    p.add_argument("--data_dir", default=None, help="shards to score on (default: the checkpoint's)")
    p.add_argument("--split", default="val", choices=["val", "train"])
    p.add_argument(
        "--tokens",
        type=lambda s: int(float(s)),
        default=2**20,
        help="tokens to score, from the split's start (default 1048576)",
    )
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--hellaswag", default=None, metavar="val|PATH", help="also run HellaSwag: 'val' downloads it")
    p.add_argument("--hellaswag_limit", type=int, default=None, help="only the first N HellaSwag examples")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="print one JSON object per model instead of a table")
    p.set_defaults(func=cmd_eval)


def cmd_eval(args, extra) -> int:
    import json

    from finegpt.eval.compare import compare, format_table

    rows = compare(
        args.ckpt,
        args.baseline,
        args.data_dir,
        args.split,
        args.tokens,
        args.batch_size,
        args.hellaswag,
        args.hellaswag_limit,
        args.device,
    )
    if args.json:
        print("\n".join(json.dumps(r) for r in rows))
        return 0
    if "loss" in rows[0]:
        print(f"{rows[0]['split']} loss on the same {rows[0]['tokens']:,} tokens, windows of {rows[0]['block_size']}")
    print(format_table(rows))
    return 0


# ---- memory and recommend -----------------------------------------------------------------------


def add_memory(sub) -> None:
    from finegpt.config import WHAT_IF

    p = sub.add_parser(
        "memory",
        help="peak GPU memory of a config, term by term, eager and compiled, and whether it fits a GPU",
        description="Settings come from an optional nanoGPT-style config file, then --key=value: the keys of "
        "`finegpt train` (gradient_accumulation_steps is the total over all GPUs, as there), and --world_size=N "
        "for N GPUs (per-GPU figures). A config file compiles unless it says compile=False (nanoGPT's train.py "
        "default); the output shows the eager and the compiled peak side by side, each with its verdict.",
        epilog="What-if keys, answered by the memory model only (`finegpt train` does not run them): "
        + "; ".join(f"--{k}={v}" for k, v in WHAT_IF.items())
        + ".",
    )
    p.add_argument("config", nargs="?", default=None, help="a nanoGPT-style config file (key = value lines)")
    p.add_argument(
        "--gpu",
        default=None,
        help="a preset (T4, 3090, 4090, A100-80, H100, ...) as nvidia-smi or a shop names it ('Tesla T4', "
        "'RTX 4090 24GB'), or custom:<GiB>",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--guide", action="store_true", help="check every number of the popular FineWeb guide")
    p.set_defaults(func=cmd_memory, accepts_overrides=True)


def cmd_memory(args, extra) -> int:
    import json

    from finegpt import memory
    from finegpt.config import config_file_settings, parse_overrides

    if args.guide:
        gpu = args.gpu or "4090"
        verdicts, checks = memory.guide_verdicts(gpu), memory.check_guide()
        if args.json:
            print(json.dumps({"guide_24gb": verdicts, "checks": [c.to_dict() for c in checks]}))
        else:
            print(memory.format_guide_verdicts(verdicts, gpu) + "\n\n" + memory.format_checks(checks))
        return 0
    overrides = parse_overrides(extra)
    values, notes = config_file_settings(args.config, overrides) if args.config else (overrides, [])
    model_cfg, run, train_cfg, more = memory.run_from_settings(values, gpu=args.gpu)
    summary = memory.fit_summary(model_cfg, run, train_cfg.max_iters)
    summary["notes"] = notes + more
    print(
        json.dumps(summary)
        if args.json
        else "\n".join(notes + more + [memory.format_fit_summary(model_cfg, run, summary)])
    )
    return 0


def add_recommend(sub) -> None:
    p = sub.add_parser(
        "recommend", help="the model each GPU trains Chinchilla-optimally in a budget (the corrected guide table)"
    )
    p.add_argument("--gpu", default=None, help="one preset only (default: all)")
    p.add_argument("--block_size", type=int, default=None, help="default: 512 for a session budget, else 1024")
    p.add_argument(
        "--hours", type=float, default=None, help="training budget (default: a day; the T4: its lab session)"
    )
    p.add_argument("--compile", action="store_true", help="plan for torch.compile (default: eager)")
    p.add_argument("--json", action="store_true", help="print one JSON object per GPU")
    p.set_defaults(func=cmd_recommend)


def cmd_recommend(args, extra) -> int:
    import json

    from finegpt import memory

    kw = dict(block_size=args.block_size, hours=args.hours, compiled=args.compile)
    rows = [memory.recommend(args.gpu, **kw)] if args.gpu else memory.recommend_all(**kw)
    if args.json:
        print("\n".join(json.dumps(r.to_dict()) for r in rows))
        return 0
    gpu_note = memory.resolve_gpu(args.gpu).note if args.gpu else None
    print((f"note: {gpu_note}\n" if gpu_note else "") + memory.format_recommendations(rows, args.compile))
    return 0


def add_speed(sub) -> None:
    p = sub.add_parser("speed", help="time the real training step of a config on this device: tokens/s, MFU, run time")
    p.add_argument("config", nargs="?", default=None, help="a nanoGPT-style config file; then --key=value")
    p.add_argument("--seconds", type=float, default=3.0, help="how long to time steps after warm-up")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_speed, accepts_overrides=True)


def cmd_speed(args, extra) -> int:
    from finegpt.memory.probe import speed_report

    print(speed_report(args.config, extra, args.seconds, args.json))  # the run `finegpt train` would make, timed
    return 0


# ---- the parser -------------------------------------------------------------------------------

SECTIONS = [add_quickstart, add_train, add_prepare, add_sample, add_eval, add_memory, add_recommend, add_speed]


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
