"""What a notebook needs from the ones before it, found or not, said in plain words.

Each notebook calls check(notebook, settings, paths) at its top: it prints what it found (which
shards, how many tokens, which checkpoint, its step) and, when something is missing, stops with one
line naming the fix. Nothing is ever replaced by another dataset, model or device.
Entry points: find_shards, find_checkpoint, needs, check.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from finegpt.errors import bad
from finegpt.lab.folder import LabPaths
from finegpt.lab.plan import LabSettings


@dataclass
class Found:
    what: str
    path: Path
    ok: bool
    lines: list[str] = field(default_factory=list)  # what is there, or why it is not usable
    info: dict = field(default_factory=dict)  # the numbers behind the lines

    def __str__(self) -> str:
        mark = "found" if self.ok else "MISSING"
        return "\n".join([f"{mark}: {self.what} in {self.path}", *(f"    {line}" for line in self.lines)])


def find_shards(path: str | Path, what: str) -> Found:
    """Token shards written by finegpt.data.prepare: complete only when meta.json is there."""
    path = Path(path)
    meta_path = path / "meta.json"
    if not meta_path.exists():
        why = "an unfinished prepare (no meta.json yet)" if (path / "manifest.json").exists() else "no shards"
        return Found(what, path, False, [why])
    meta = json.loads(meta_path.read_text())
    tokens = {s: sum(x["tokens"] for x in meta["shards"] if x["split"] == s) for s in ("train", "val")}
    job = meta.get("job") or {}
    source = job.get("source", "?") + (f" {job['name']}" if job.get("name") else "")
    if job.get("data_files"):
        source += f" from {job['data_files']}"
    lines = [
        f"{len(meta['shards'])} shards: {tokens['train']:,} train + {tokens['val']:,} val tokens",
        f"source {source}, {meta['tokenizer']} tokenizer (vocab {meta['vocab_size']:,})",
    ]
    info = {"tokens": tokens, "tokenizer": meta["tokenizer"], "shards": len(meta["shards"]), "source": source}
    return Found(what, path, True, lines, info)


def find_checkpoint(run_dir: str | Path, what: str) -> Found:
    """A training run's newest checkpoint: its step, tokens seen, val loss, model and data."""
    from finegpt.train.checkpoint import load_checkpoint, step_checkpoints

    run_dir = Path(run_dir)
    if not (run_dir / "ckpt.pt").exists():
        return Found(what, run_dir, False, ["no ckpt.pt"])
    ckpt = load_checkpoint(run_dir, map_location="cpu")
    model, train = ckpt["config"]["model"], ckpt["config"]["train"]
    per_iter = train["batch_size"] * train["gradient_accumulation_steps"] * model["block_size"]
    info = {
        "checkpoint": str(run_dir / "ckpt.pt"),
        "iter": ckpt["iter_num"],
        "max_iters": train["max_iters"],
        "tokens_seen": ckpt["iter_num"] * per_iter,
        "val_loss": ckpt["best_val_loss"],
        "tokenizer": ckpt["data"]["tokenizer"],
        "data_dir": ckpt["data"]["data_dir"],
        "seed": train["seed"],
        "steps_kept": len(step_checkpoints(run_dir)),
    }
    lines = [
        f"ckpt.pt at iter {info['iter']:,} of {info['max_iters']:,}: {info['tokens_seen']:,} tokens seen, "
        f"val loss {info['val_loss']:.3f}",
        f"{model['n_layer']} layers x {model['n_embd']} wide, block_size {model['block_size']}, "
        f"{info['tokenizer']} tokens from {ckpt['data']['data_dir']}; {info['steps_kept']} step checkpoints kept",
    ]
    return Found(what, run_dir, True, lines, info)


def needs(notebook: str, p: LabPaths, mode: str) -> list[Found]:
    """What the notebook needs from earlier ones, looked up in the lab folder, in the order it uses them."""
    if notebook == "02":
        return [find_shards(p.shakespeare, "01's byte shards of the plays")]
    if notebook == "04":
        label = "01's FineWeb shards (GPT-2 tokens)" if mode == "full" else "01's byte shards of the plays"
        return [find_shards(p.train_data, label)]
    if notebook == "05":
        return [find_checkpoint(p.run, "04's trained model")]
    return []


def fix(notebook: str, s: LabSettings, seconds: dict[str, float]) -> str:
    """The explicit way out when notebook's input is missing; seconds: expected time per notebook here."""
    from finegpt.lab.clock import about

    mode = f"MODE = {s.mode!r}"
    if notebook == "05":
        return (
            f"Run notebook 04 first with {mode} and the same lab folder ({about(seconds['04'])}); "
            "05 samples only from the model 04 trained"
        )
    which = "fineweb" if notebook == "04" and s.mode == "full" else "shakespeare"
    return (
        f"Run notebook 01 first with {mode} and the same lab folder ({about(seconds['01'])}), or prepare "
        f"them here now: `from finegpt.data import prepare; prepare(**lab.prepare_args(settings, paths, {which!r}))`"
    )


def check(clock) -> dict[str, Found]:
    """Print what the clock's notebook found; raise one line with the fix when an input is missing."""
    from finegpt.lab.clock import expected_s

    s, p, notebook = clock.settings, clock.paths, clock.notebook
    found = {}
    for item in needs(notebook, p, s.mode):
        print(item)
        found[item.what] = item
        if not item.ok:
            seconds = {nb: expected_s(s, nb, clock.device) for nb in ("01", "04")}
            raise bad("input", str(item.path), f"{item.what}: {item.lines[0]}", fix(notebook, s, seconds))
    if not found:
        print(f"notebook {notebook} needs nothing from the others; the lab folder for {s.mode} mode is {p.root}")
    return found
