"""`RunConfig`: the training-run knobs the memory model needs besides the model's shape.

Entry point: RunConfig (validated on construction; bad values raise one actionable line).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from finegpt.errors import bad

DTYPES = ("fp32", "bf16", "fp16", "pure_bf16")  # fp16/bf16: autocast over fp32 weights; pure_bf16: bf16 weights
ATTENTIONS = ("flash", "math")
OPTIMIZERS = ("adamw_fused", "adamw_foreach", "sgd_momentum", "sgd")
SHARDINGS = ("ddp", "zero1", "zero2", "fsdp")
# TrainConfig.dtype spells these the torch way
TORCH_DTYPE_NAMES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}


@dataclass
class RunConfig:
    """One run's memory-relevant settings. block_size and dropout come from the ModelConfig."""

    batch_size: int = 12  # micro-batch per GPU (nanoGPT's batch_size)
    gradient_accumulation_steps: int = 1
    dtype: str = "bf16"
    attention: str = "flash"
    activation_checkpointing: bool = False
    optimizer: str = "adamw_fused"
    eval_batch_size: int = 0  # 0 means batch_size
    world_size: int = 1
    sharding: str = "ddp"
    gradient_as_bucket_view: bool = False  # DDP's default keeps a separate 4N bucket copy of the grads
    compile: bool = False
    gpu: str | None = None  # a key of GPUS; None: no verdict
    device: str = "cuda"  # "cpu" only for validating against CPU measurements (dropout masks differ)

    def __post_init__(self) -> None:
        self.dtype = TORCH_DTYPE_NAMES.get(self.dtype, self.dtype)
        for name in ("batch_size", "gradient_accumulation_steps", "world_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                fix = "Use world_size=1 for one GPU" if name == "world_size" else f"Use {name} >= 1"
                raise bad(name, value, "must be an integer >= 1", fix)
        if (
            isinstance(self.eval_batch_size, bool)
            or not isinstance(self.eval_batch_size, int)
            or self.eval_batch_size < 0
        ):
            raise bad("eval_batch_size", self.eval_batch_size, "must be an integer >= 0", "Use 0 to mean batch_size")
        for name, allowed in (
            ("device", ("cuda", "cpu")),
            ("dtype", DTYPES),
            ("attention", ATTENTIONS),
            ("optimizer", OPTIMIZERS),
            ("sharding", SHARDINGS),
        ):
            if getattr(self, name) not in allowed:
                raise bad(name, getattr(self, name), "is not supported", f"Use one of {', '.join(allowed)}")
        if self.gpu is not None:
            from finegpt.memory.gpus import get_gpu

            gpu = get_gpu(self.gpu)  # unknown names raise with a did-you-mean
            if self.dtype in ("bf16", "pure_bf16") and not gpu.bf16:
                raise bad(
                    "dtype",
                    self.dtype,
                    f"the {gpu.name} has no bf16 support",
                    "Use dtype=fp16 (autocast with a GradScaler) or fp32",
                )

    @property
    def eval_micro_batch(self) -> int:
        return self.eval_batch_size or self.batch_size


RUN_ONLY_KEYS = {"attention", "optimizer", "world_size", "sharding", "gradient_as_bucket_view", "gpu"}


def run_from_settings(values: dict, gpu: str | None = None):
    """nanoGPT-style settings (a config file's dict + overrides) -> (ModelConfig, RunConfig, TrainConfig, notes).
    Keys the memory model needs beyond TrainConfig (attention, optimizer, world_size, sharding, gpu)
    may be mixed in. dtype 'auto' means bf16 where the GPU has it, else fp16."""
    from finegpt.config import build_configs

    extra = {k: values[k] for k in RUN_ONLY_KEYS if k in values}
    model_cfg, train_cfg, notes = build_configs({k: v for k, v in values.items() if k not in RUN_ONLY_KEYS})
    gpu = extra.pop("gpu", gpu)
    from finegpt.memory.gpus import get_gpu, resolve_gpu

    gpu_note = resolve_gpu(gpu).note if gpu is not None else None  # 'A100': which card the numbers are for
    notes = [*notes, f"note: {gpu_note}"] if gpu_note else notes
    dtype = train_cfg.dtype
    if dtype == "auto":
        dtype = "bf16" if gpu is None or get_gpu(gpu).bf16 else "fp16"
    known = {f.name for f in fields(RunConfig)}
    from finegpt.train.distributed import local_accumulation

    # finegpt train's gradient_accumulation_steps is the total, split across ranks; RunConfig's is per rank
    per_rank = local_accumulation(train_cfg.gradient_accumulation_steps, int(extra.get("world_size", 1)))
    run = RunConfig(
        batch_size=train_cfg.batch_size,
        gradient_accumulation_steps=per_rank,
        dtype=dtype,
        activation_checkpointing=train_cfg.activation_checkpointing,
        eval_batch_size=train_cfg.eval_batch_size,
        compile=train_cfg.compile,
        sharding=extra.pop("sharding", "fsdp" if train_cfg.fsdp else "ddp"),
        gpu=gpu,
        **{k: v for k, v in extra.items() if k in known},
    )
    return model_cfg, run, train_cfg, notes
