"""`finegpt quickstart`: the README's first command. Offline, on a laptop CPU, in a few minutes:
the embedded Shakespeare -> byte-level shards -> a tiny GPT -> text, before and after training.

Entry point: quickstart(). The same steps by hand are `finegpt prepare`, `finegpt train`, `finegpt sample`.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import torch

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


def _sample(model, tokenizer, seed: int) -> str:
    from finegpt.sample import generate_text

    return generate_text(model, tokenizer, PROMPT, max_new_tokens=300, temperature=0.8, top_k=None, seed=seed)[0]


def quickstart(out: str | Path = "out-quickstart", max_iters: int | None = None, seed: int = 1337) -> dict:
    """Prepare, train and sample; returns {"val_loss", "before", "after", "seconds"}."""
    from finegpt.data import get_tokenizer, prepare
    from finegpt.model import GPT
    from finegpt.train import train

    out = Path(out)
    if out.exists() and not (out / ".finegpt-quickstart").exists() and any(out.iterdir()):
        raise bad("out", str(out), "exists and was not made by the quickstart", "Pass another --out")
    if out.exists():  # a previous quickstart's own files: start over
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / ".finegpt-quickstart").touch()
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
        f" | {seconds:.0f} s | checkpoint {result['checkpoint']}"
    )
    print(f"next: finegpt sample --ckpt {out} --prompt 'JULIET:'")
    return {"val_loss": result["final_val_loss"], "before": before, "after": after, "seconds": seconds}
