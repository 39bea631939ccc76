"""`finegpt memory`, `recommend` and `speed`: the commands that plan a run before it starts. memory and
recommend import neither torch nor numpy; speed times the real step. Each add_* adds its subparser, each
cmd_* calls one package function."""

from __future__ import annotations

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
    model_cfg, run, summary = memory.summary_from_settings(values, args.gpu, notes)
    print(
        json.dumps(summary)
        if args.json
        else "\n".join([*summary["notes"], memory.format_fit_summary(model_cfg, run, summary)])
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
