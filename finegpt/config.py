"""Configs: `ModelConfig` and `TrainConfig` with nanoGPT's names and defaults, validated, built from a flat
dict of settings (a config file's, read by finegpt.configfile, and `--key=value` overrides).

Entry points: ModelConfig, TrainConfig, split_settings (--key=value or --key value), parse_overrides,
build_configs, config_dict; the arithmetic every room shares: GIB, padded_vocab, local_accumulation,
tokens_per_step; WHAT_IF, the memory model's knobs the trainer lacks.
load_config_file and config_file_settings are re-exported from finegpt.configfile.
"""

from __future__ import annotations

import ast
import difflib
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from finegpt.configfile import config_file_settings, load_config_file, nanogpt_defaults  # noqa: F401 (re-exported)
from finegpt.errors import FinegptError, bad

GIB = 2**30  # bytes in a GiB, as PyTorch's memory stats and nvidia-smi count


# The memory model's knobs that the trainer does not run: `finegpt memory` answers "what if I ...?" with them
# (RunConfig fields), `finegpt train` has no such settings.
WHAT_IF = {
    "attention": "math: an explicit T x T softmax per head (the trainer runs flash: SDPA)",
    "optimizer": "adamw_foreach, sgd_momentum or sgd (the trainer runs adamw_fused)",
    "sharding": "zero1 or zero2, analytic only (the trainer runs ddp, or fsdp with fsdp=True)",
    "gradient_as_bucket_view": "True: DDP's grads as views into its buckets (the trainer keeps DDP's default)",
    "dtype": "pure_bf16: bf16 weights, no fp32 master copy (the trainer autocasts over fp32 weights)",
}


def padded_vocab(vocab_size: int, multiple: int = 64) -> int:
    """A tokenizer's vocab rounded up to a multiple of 64 (50257 -> 50304, 257 -> 320): the LM head's
    matmul runs faster on a dimension that is a multiple of 64 (nanoGPT's note); the extra rows never train."""
    return -(-vocab_size // multiple) * multiple


def local_accumulation(gradient_accumulation_steps: int, world_size: int) -> int:
    """Micro-steps per rank: TrainConfig counts gradient accumulation over all ranks, so tokens per
    optimizer step do not change with the number of processes; each rank runs its share."""
    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
        raise bad("world_size", world_size, "must be an integer >= 1", "Use world_size=1 for one GPU")
    if gradient_accumulation_steps % world_size:
        raise bad(
            "gradient_accumulation_steps",
            gradient_accumulation_steps,
            f"not divisible by the {world_size} processes",
            f"Use a multiple of {world_size}, e.g. {world_size * max(1, gradient_accumulation_steps // world_size)}",
        )
    return gradient_accumulation_steps // world_size


def tokens_per_step(batch_size: int, block_size: int, gradient_accumulation_steps: int) -> int:
    """Tokens in one optimizer step: micro-batch x block x accumulation, the accumulation counted over all
    ranks (TrainConfig's convention; a RunConfig passes its micro-steps per rank x world_size)."""
    return batch_size * block_size * gradient_accumulation_steps


def _positive_int(name: str, value, example: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise bad(name, value, "must be a positive integer", f"Use {name} >= 1 ({example})")


def head_suggestion(n_embd: int, n_head: int) -> str:
    """The fix for n_embd % n_head != 0: nearby head counts that divide n_embd, or the next n_embd."""
    divisors = [h for h in range(1, n_embd + 1) if n_embd % h == 0]
    even = [h for h in divisors if h % 2 == 0]  # even head counts are the usual choice
    pool = even if even and n_head % 2 == 0 else divisors
    near = sorted(sorted(pool, key=lambda h: (abs(h - n_head), -h))[:4])
    heads = ", ".join(str(h) for h in near[:-1]) + f" or {near[-1]}" if len(near) > 1 else str(near[0])
    next_embd = -(-n_embd // n_head) * n_head
    return f"Use n_head {heads}, or n_embd {next_embd}"


@dataclass
class ModelConfig:
    """nanoGPT's GPTConfig. vocab_size 50304 is GPT-2's 50257 padded up to a multiple of 64 (padded_vocab)."""

    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    block_size: int = 1024
    vocab_size: int = 50304
    dropout: float = 0.0
    bias: bool = True  # True: like GPT-2. False: a bit better and faster (nanoGPT's note)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        _positive_int("n_layer", self.n_layer, "GPT-2 small uses 12")
        _positive_int("n_head", self.n_head, "GPT-2 small uses 12")
        _positive_int("n_embd", self.n_embd, "GPT-2 small uses 768")
        _positive_int("block_size", self.block_size, "GPT-2 uses 1024")
        _positive_int("vocab_size", self.vocab_size, "GPT-2 uses 50304, bytes 320")
        if self.n_embd % self.n_head:
            raise bad(
                "n_embd",
                self.n_embd,
                f"not divisible by n_head={self.n_head}",
                head_suggestion(self.n_embd, self.n_head),
            )
        if not isinstance(self.dropout, (int, float)) or not 0.0 <= self.dropout < 1.0:
            raise bad("dropout", self.dropout, "must be in [0, 1)", "Use 0.0 for pretraining, 0.1-0.2 for small data")
        if not isinstance(self.bias, bool):
            raise bad("bias", self.bias, "must be True or False", "Use bias=True (GPT-2) or bias=False")


# ---- parameter counts: arithmetic on a ModelConfig (finegpt.model builds the modules) --------------


def param_breakdown(cfg: ModelConfig) -> dict[str, int]:
    """Parameters per component. The LM head is tied to the token embedding, so it adds none."""
    C, L, b = cfg.n_embd, cfg.n_layer, int(cfg.bias)
    attention = 3 * C * C + 3 * C * b + C * C + C * b  # c_attn (C -> 3C) and c_proj (C -> C)
    mlp = 4 * C * C + 4 * C * b + 4 * C * C + C * b  # c_fc (C -> 4C) and c_proj (4C -> C)
    norms = 2 * (C + C * b)  # ln_1 and ln_2
    return {
        "token_embedding": cfg.vocab_size * C,
        "position_embedding": cfg.block_size * C,
        "attention": L * attention,
        "mlp": L * mlp,
        "layernorm": L * norms + (C + C * b),  # + ln_f
        "lm_head (tied)": 0,
    }


def count_params(cfg: ModelConfig, non_embedding: bool = True) -> int:
    """nanoGPT's convention (non_embedding=True) leaves out the position embedding only: the
    token embedding is kept because it is tied to the LM head, which does real work."""
    parts = param_breakdown(cfg)
    return sum(parts.values()) - (parts["position_embedding"] if non_embedding else 0)


# The sampling defaults, for the CLI, the widgets and finegpt.sample: nanoGPT's sample.py's, top_p off.
SAMPLING = dict(max_new_tokens=200, temperature=0.8, top_k=200, top_p=None, seed=1337)

DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "float32", "bfloat16", "float16")
SAMPLINGS = ("epoch", "random")  # every window once per epoch, in a seeded order; nanoGPT's random windows


@dataclass
class TrainConfig:
    """nanoGPT's train.py settings, plus finegpt's own (data_dir, eval_batch_size, sampling, keep_checkpoints,
    tensorboard, activation_checkpointing, fsdp, seed, deterministic). Defaults are nanoGPT's GPT-2 124M run
    except dataset (the embedded plays), device and dtype ('auto': detected), compile (False; config files
    follow train.py's True) and wandb_project."""

    # I/O
    out_dir: str = "out"
    data_dir: str = ""  # shards from `finegpt prepare`; '' means data/<dataset>
    dataset: str = "shakespeare"
    eval_interval: int = 2000
    log_interval: int = 1
    eval_iters: int = 200
    eval_only: bool = False
    always_save_checkpoint: bool = True
    init_from: str = "scratch"  # 'scratch' or 'resume'
    keep_checkpoints: int = 3  # how many step checkpoints to keep beside `latest`
    # tracking
    wandb_log: bool = False
    wandb_project: str = "finegpt"
    wandb_run_name: str = "run"
    tensorboard: bool = False
    # batch: tokens per optimizer step = batch_size * block_size * gradient_accumulation_steps; the
    # accumulation is counted over all ranks (each runs local_accumulation(...) of it), batch_size per rank
    gradient_accumulation_steps: int = 40
    batch_size: int = 12
    eval_batch_size: int = 0  # 0 means batch_size
    sampling: str = "epoch"  # 'epoch': each window once per epoch (llm.c); 'random': nanoGPT's random windows
    # AdamW
    learning_rate: float = 6e-4
    max_iters: int = 600000
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0  # 0 disables clipping
    # learning-rate schedule: linear warmup, then cosine down to min_lr
    decay_lr: bool = True
    warmup_iters: int = 2000
    lr_decay_iters: int = 600000
    min_lr: float = 6e-5
    # time box: > 0 trains for this many minutes, evals and checkpoints included; after a warm-up the loop
    # sets max_iters and lr_decay_iters from its own measured speed (finegpt.train.timebox). 0: off
    max_minutes: float = 0.0
    # system
    backend: str = "auto"  # DDP: 'nccl' on CUDA, 'gloo' on CPU
    device: str = "auto"
    dtype: str = "auto"  # bf16 where supported, else fp16 with a GradScaler; fp32 on CPU
    compile: bool = False  # nanoGPT's train.py says True, and so do config files (NANOGPT_TRAIN_DEFAULTS)
    activation_checkpointing: bool = False
    loss_chunks: int = 0  # >= 1: the loss over that many chunks of tokens, logits recomputed in backward; 0: off
    fsdp: bool = False
    seed: int = 1337
    deterministic: bool = False

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        for name, example in [
            ("batch_size", "12 for 124M on 40 GB"),
            ("gradient_accumulation_steps", "e.g. 40"),
            ("max_iters", "e.g. 5000"),
            ("eval_interval", "e.g. 250"),
            ("log_interval", "e.g. 10"),
            ("eval_iters", "e.g. 200"),
        ]:
            _positive_int(name, getattr(self, name), example)
        for name in ("warmup_iters", "lr_decay_iters", "eval_batch_size", "keep_checkpoints", "loss_chunks"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise bad(name, value, "must be an integer >= 0", f"Use {name}=0 or more")
        if (
            isinstance(self.max_minutes, bool)
            or not isinstance(self.max_minutes, (int, float))
            or not (0 <= self.max_minutes < float("inf"))
        ):
            raise bad("max_minutes", self.max_minutes, "must be a number of minutes >= 0", "Use e.g. 45, or 0 for off")
        if not self.learning_rate > 0:
            raise bad("learning_rate", self.learning_rate, "must be > 0", "Use 6e-4 for ~100M models")
        if not 0 <= self.min_lr <= self.learning_rate:
            raise bad(
                "min_lr",
                self.min_lr,
                f"must be between 0 and learning_rate={self.learning_rate}",
                "Use about learning_rate / 10",
            )
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise bad(name, getattr(self, name), "must be in [0, 1)", "Use beta1=0.9, beta2=0.95")
        if self.device not in DEVICES and not str(self.device).startswith("cuda:"):
            raise bad("device", self.device, "is not a known device", f"Use one of {', '.join(DEVICES)} or cuda:N")
        if self.dtype not in DTYPES:
            raise bad("dtype", self.dtype, "is not a known dtype", f"Use one of {', '.join(DTYPES)}")
        if self.sampling not in SAMPLINGS:
            raise bad("sampling", self.sampling, "is not a sampler", f"Use one of {', '.join(SAMPLINGS)}")
        if self.init_from not in ("scratch", "resume"):
            raise bad("init_from", self.init_from, "is not supported", "Use 'scratch' or 'resume'")
        if not isinstance(self.out_dir, str) or not self.out_dir.strip():  # an unset $OUT would mean the cwd
            raise bad(
                "out_dir",
                self.out_dir,
                "is empty",
                "Name a folder, e.g. --out_dir=out (an unset shell variable gives an empty value)",
            )

    def resolved_data_dir(self) -> str:
        return self.data_dir or str(Path("data") / self.dataset)


# ---- nanoGPT-style config files --------------------------------------------------------------

MODEL_KEYS = {f.name for f in fields(ModelConfig)}
TRAIN_KEYS = {f.name for f in fields(TrainConfig)}
# Keys nanoGPT's own train.py reads that finegpt does not need: accepted, with a note.
NANOGPT_ONLY = {
    "wandb_mode": "set WANDB_MODE in the environment instead",
}


def split_settings(argv: list[str], options: set[str]) -> tuple[list[str], list[str]]:
    """(the other arguments, the settings as --key=value): a setting is any --key not in `options` (a
    command's own flags), written --key=value or --key value (a value may hold spaces); the rest, options
    and positionals such as a config file, are returned in order for the command's parser."""
    rest, settings, i = [], [], 0
    while i < len(argv):
        word, key = argv[i], argv[i].split("=", 1)[0]
        if not word.startswith("--") or key in options:
            rest.append(word)
        elif "=" in word:
            settings.append(word)
        elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            settings.append(f"{word}={argv[i + 1]}")
            i += 1
        else:
            raise FinegptError(f"{word[2:]}=: has no value. Write {word}=VALUE or {word} VALUE.")
        i += 1
    return rest, settings


def parse_overrides(args: list[str]) -> dict:
    """`--key=value` strings to a dict. Values are Python literals; anything else is a string."""
    values = {}
    for arg in args:
        if not arg.startswith("--") or "=" not in arg:
            raise bad("override", arg, "is not of the form --key=value", "Write e.g. --batch_size=8")
        key, raw = arg[2:].split("=", 1)
        try:
            values[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            values[key] = raw
    return values


def _coerce(key: str, value, default):
    """Match a value to the field's type: 2e9 -> int where the field is an int, 1 -> 1.0 for floats."""
    kind = type(default)
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise bad(key, value, "must be True or False", f"Write {key}=True or {key}=False")
    if kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind):
        article = "an" if kind.__name__[0] in "aeiou" else "a"
        raise bad(key, value, f"must be {article} {kind.__name__}", f"Write e.g. {key}={default!r}")
    return value


def build_configs(
    values: dict, model_defaults: ModelConfig | None = None
) -> tuple[ModelConfig, TrainConfig, list[str]]:
    """Split a flat dict of settings into (ModelConfig, TrainConfig, notes). Unknown keys raise.

    Unset model keys take nanoGPT's train.py defaults, which a config file overrides: the same as
    GPTConfig's but bias=False. So a nanoGPT config file means here what it means there."""
    known = MODEL_KEYS | TRAIN_KEYS
    notes, model_kw, train_kw = [], {}, {}
    base_model = asdict(model_defaults or ModelConfig(bias=False))
    base_train = {f.name: f.default for f in fields(TrainConfig)}
    for key, value in values.items():
        if key in NANOGPT_ONLY:
            notes.append(f"note: {key} is read by nanoGPT's train.py only; finegpt ignores it ({NANOGPT_ONLY[key]}).")
        elif key in MODEL_KEYS:
            model_kw[key] = _coerce(key, value, base_model[key])
        elif key in TRAIN_KEYS:
            train_kw[key] = _coerce(key, value, base_train[key])
        else:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"Did you mean {close[0]}?" if close else "See `finegpt train --help` for the keys"
            raise bad(key, value, "unknown config key", hint)
    model = ModelConfig(**{**base_model, **model_kw})
    return model, TrainConfig(**train_kw), notes


def config_dict(model: ModelConfig, train: TrainConfig | None = None) -> dict:
    """Plain data for checkpoints and logs (never pickled objects)."""
    return {"model": asdict(model), **({"train": asdict(train)} if train is not None else {})}
