"""`finegpt quickstart`: the README's first command. Offline, on a laptop CPU, in a few minutes:
the embedded Shakespeare -> byte-level shards -> a tiny GPT -> text, before and after training.

Entry point: quickstart(). The same steps by hand are `finegpt prepare`, `finegpt train`, `finegpt sample`.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from finegpt import folders
from finegpt.config import ModelConfig, TrainConfig
from finegpt.errors import bad

# A byte-level model like nanoGPT's shakespeare_char on CPU (its README's laptop settings), run longer:
# 3000 steps x 1024 tokens, about 2 minutes on 2 idle cores (docs/benchmarks.md has the CPU tokens/s).
QUICKSTART_MODEL = dict(n_layer=4, n_head=4, n_embd=128, block_size=64, dropout=0.0, bias=False)
QUICKSTART_TRAIN = dict(
    batch_size=16,
    gradient_accumulation_steps=1,
    max_iters=3000,
    learning_rate=2e-3,
    min_lr=2e-4,
    warmup_iters=100,
    weight_decay=0.1,
    beta2=0.99,
    eval_interval=500,
    eval_iters=20,
    log_interval=250,
    device="cpu",
    dtype="float32",
    compile=False,
    keep_checkpoints=1,
)
PROMPT = "ROMEO:\n"
MARKER = ".finegpt-quickstart"


def _sample(model, tokenizer, seed: int) -> str:
    from finegpt.sample import generate_text

    return generate_text(model, tokenizer, PROMPT, max_new_tokens=300, temperature=0.8, top_k=None, seed=seed)[0]


def quickstart(out: str | Path = "out-quickstart", max_iters: int | None = None, seed: int = 1337) -> dict:
    """Prepare, train and sample; returns {"val_loss", "before", "after", "seconds"}. Rerun in the same
    folder, it replaces its earlier output only once the new one is complete."""
    out = folders.check_path("out", out, "--out out-quickstart")
    folders.check_unlocked(out, "out")
    mine = [p for p in out.iterdir() if p.name != folders.LOCK] if out.is_dir() else []
    if out.exists() and not (out / MARKER).exists() and (mine or not out.is_dir()):
        raise bad("out", str(out), "exists and was not made by the quickstart", "Pass another --out")
    out.mkdir(parents=True, exist_ok=True)
    with folders.FolderLock(out, "out", "finegpt quickstart"):
        folders.recover(out, "quickstart", _all)  # an earlier rerun was cut short while replacing: finish it
        # A previous quickstart's files stay until this one has finished; then they are replaced.
        work = folders.fresh_stage(out) if any(p.name != folders.LOCK for p in out.iterdir()) else out
        (work / MARKER).touch()
        result = _run(work, max_iters, seed, final=out)
        if work != out:
            folders.commit(work, out, "quickstart", _all)
    return result


def _all(name: str) -> bool:
    return True  # the quickstart made every file in its folder


def _run(out: Path, max_iters: int | None, seed: int, final: Path) -> dict:
    """The three steps, writing into `out`; `final` is where the files will be once complete."""
    from finegpt.data import get_tokenizer, prepare
    from finegpt.model import GPT
    from finegpt.train import train

    t0 = time.time()
    torch.set_num_threads(max(1, torch.get_num_threads()))

    print("1/3 preparing the embedded Shakespeare (38 plays) with the bytes tokenizer ...", flush=True)
    stats = prepare("shakespeare", out / "data", "bytes", progress=False)
    tokenizer = get_tokenizer("bytes")
    print(f"    {stats['documents']} plays, {stats['tokens']:,} tokens in {len(stats['shards'])} shards", flush=True)

    model_cfg = ModelConfig(**QUICKSTART_MODEL, vocab_size=320)  # 257 bytes + EOT, padded to a multiple of 64
    train_cfg = TrainConfig(
        **{
            **QUICKSTART_TRAIN,
            "max_iters": max_iters or QUICKSTART_TRAIN["max_iters"],
            "lr_decay_iters": max_iters or QUICKSTART_TRAIN["max_iters"],
        },
        out_dir=str(out),
        data_dir=str(out / "data"),
        seed=seed,
    )
    torch.manual_seed(seed)
    before = _sample(GPT(model_cfg).eval(), tokenizer, seed)
    print(f"\nbefore training, the model writes:\n{'-' * 60}\n{before}\n{'-' * 60}\n", flush=True)

    print(
        f"2/3 training {model_cfg.n_layer} layers x {model_cfg.n_embd} wide for {train_cfg.max_iters} steps "
        f"on the CPU ...",
        flush=True,
    )
    result = train(model_cfg, train_cfg, overwrite=True)

    print("\n3/3 sampling from the trained model ...", flush=True)
    after = _sample(result["model"].eval(), tokenizer, seed)
    seconds = time.time() - t0
    print(f"\nafter training, the model writes:\n{'-' * 60}\n{after}\n{'-' * 60}")
    print(
        f"final val loss {result['final_val_loss']:.4f} (bytes; a uniform guess is "
        f"{torch.log(torch.tensor(257.0)):.2f})"
        f" | {seconds:.0f} s | checkpoint {final / 'ckpt.pt'}"
    )
    print(f"next: finegpt sample --ckpt {final} --prompt 'JULIET:'")
    return {"val_loss": result["final_val_loss"], "before": before, "after": after, "seconds": seconds}
