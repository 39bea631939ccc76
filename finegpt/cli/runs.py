"""`finegpt quickstart` and `finegpt train`: the commands that train. Each add_* adds its subparser, each cmd_*
calls one package function."""

from __future__ import annotations

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
    p.add_argument(
        "--resume_changed",
        default="",
        metavar="KEYS",
        help="with --resume: settings of the batch stream that may differ from the checkpoint's, e.g. "
        "batch_size,data (logged; the run is then no longer exact)",
    )
    p.set_defaults(func=cmd_train, accepts_overrides=True)


def cmd_train(args, extra) -> int:
    from finegpt.train import train_from_cli

    train_from_cli(args.config, extra, resume=args.resume, overwrite=args.overwrite, resume_changed=args.resume_changed)
    return 0
