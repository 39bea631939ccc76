"""`finegpt prepare`, `check`, `sample` and `eval`: the commands that write, check and read tokens. Each add_*
adds its subparser, each cmd_* calls one package function."""

from __future__ import annotations

import sys

# ---- check ------------------------------------------------------------------------------------


def add_check(sub) -> None:
    p = sub.add_parser("check", help="check prepared shards: meta.json, every header, every token id")
    p.add_argument("data_dir", help="a folder written by finegpt prepare")
    p.set_defaults(func=cmd_check)


def cmd_check(args, extra) -> int:
    from finegpt.data.checks import scan_data

    r = scan_data(args.data_dir)
    print(
        f"{args.data_dir}: {r['shards']} shards, {r['tokens']:,} {r['tokenizer']} tokens, every id below the "
        f"vocab of {r['vocab_size']} (largest {r['max_id']})"
    )
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
    print(
        json.dumps(
            {k: v for k, v in stats.items() if k != "shards"} | {"shards": len(stats["shards"]), "out": args.out}
        )
    )
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
