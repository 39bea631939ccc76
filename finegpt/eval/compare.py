"""One command, one table: a trained checkpoint and a GPT-2 baseline scored on the same val tokens
(and optionally HellaSwag). Entry points: compare(...), format_table(rows).
"""

from __future__ import annotations

from finegpt.errors import bad
from finegpt.eval.gpt2 import check_baseline, load_gpt2
from finegpt.eval.hellaswag import hellaswag, resolve
from finegpt.eval.loss import DEFAULT_EVAL_TOKENS, evaluate, shard_info


def compare(
    ckpt: str | None = None,
    baseline: str | None = None,
    data_dir: str | None = None,
    split: str = "val",
    tokens: int | None = DEFAULT_EVAL_TOKENS,
    batch_size: int = 8,
    hellaswag_path: str | None = None,
    hellaswag_limit: int | None = None,
    device: str = "auto",
) -> list[dict]:
    """One row per model: {'model', 'tokenizer', 'loss', 'perplexity', 'tokens', ...[, 'acc', 'acc_norm']}.
    data_dir defaults to the checkpoint's own data. Every check runs before any weights are downloaded."""
    from finegpt.data import get_tokenizer
    from finegpt.step import pick_device

    if not ckpt and not baseline:
        raise bad("ckpt", None, "nothing to evaluate", "Pass --ckpt out/ and/or --baseline gpt2")
    if baseline:
        check_baseline(baseline)
    if hellaswag_path is not None:
        hellaswag_path = resolve(hellaswag_path)  # a missing file fails now, not after the val pass
    device = pick_device(device)
    models = []  # (label, tokenizer name, GPT or None: a baseline is loaded only after the checks)
    if ckpt:
        from finegpt.train import load_model

        trained, checkpoint = load_model(ckpt, device)
        data = checkpoint.get("data") or {}
        data_dir = data_dir or data.get("data_dir")
        models.append((str(ckpt), data.get("tokenizer"), trained))
    if baseline:
        models.append((baseline, "gpt2", None))
    if hellaswag_path is None and not data_dir:
        raise bad("data_dir", data_dir, "no shards to score on", "Pass --data_dir with shards from finegpt prepare")

    if data_dir:
        shards = shard_info(data_dir)
        for label, tokenizer, _ in models:
            if tokenizer and tokenizer != shards["tokenizer"]:
                raise bad(
                    "tokenizer",
                    tokenizer,
                    f"{label} reads {tokenizer} tokens but the shards in "
                    f"{str(data_dir)!r} were tokenized with {shards['tokenizer']}",
                    f"Score it on shards made with `finegpt prepare --tokenizer {tokenizer}`",
                )
    rows = []
    for label, tokenizer, model in models:
        model = model if model is not None else load_gpt2(baseline, device)
        row = {"model": label, "tokenizer": tokenizer}
        if data_dir:
            row |= evaluate(model, data_dir, split=split, tokens=tokens, batch_size=batch_size, tokenizer=tokenizer)
        if hellaswag_path is not None:
            hs = hellaswag(
                model, get_tokenizer(tokenizer or "gpt2"), hellaswag_path, limit=hellaswag_limit, batch_size=batch_size
            )
            row |= {"hellaswag_examples": hs["examples"], "acc": hs["acc"], "acc_norm": hs["acc_norm"]}
        rows.append(row)
    return rows


def format_table(rows: list[dict]) -> str:
    """A plain-text table; the token count is stated with the losses it belongs to."""
    cols = [
        ("model", "model", "{}"),
        ("tokenizer", "tokenizer", "{}"),
        ("loss", "val loss", "{:.4f}"),
        ("perplexity", "perplexity", "{:.2f}"),
        ("tokens", "tokens", "{:,}"),
        ("acc", "hellaswag acc", "{:.4f}"),
        ("acc_norm", "acc_norm", "{:.4f}"),
        ("hellaswag_examples", "examples", "{:,}"),
    ]
    cols = [c for c in cols if any(c[0] in r for r in rows)]
    cells = [[head for _, head, _ in cols]] + [
        [fmt.format(r[key]) if key in r else "-" for key, _, fmt in cols] for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths)] + lines[1:])
