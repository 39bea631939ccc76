"""`RunConfig`: one training run as the memory model sees it (per rank), and `run_config`, the one place
that derives it from the TrainConfig the trainer runs.

Entry points: RunConfig (validated on construction; bad values raise one actionable line), run_config,
run_from_settings (a config file's flat dict -> the configs). The what-if knobs: finegpt.config.WHAT_IF.
"""

from __future__ import annotations

from dataclasses import dataclass

from finegpt.config import WHAT_IF, TrainConfig, build_configs, local_accumulation
from finegpt.errors import bad

DTYPES = ("fp32", "bf16", "fp16", "pure_bf16")  # fp16/bf16: autocast over fp32 weights; pure_bf16: bf16 weights
ATTENTIONS = ("flash", "math")
OPTIMIZERS = ("adamw_fused", "adamw_foreach", "sgd_momentum", "sgd")
SHARDINGS = ("ddp", "zero1", "zero2", "fsdp")
# TrainConfig.dtype spells these the torch way
TORCH_DTYPE_NAMES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}


@dataclass
class RunConfig:
    """One run's memory-relevant settings, per rank. block_size and dropout come from the ModelConfig.
    Build it from a TrainConfig with run_config(); fields marked what-if are in WHAT_IF: the memory
    model answers them (and finegpt.memory.measure runs them), but the trainer does not."""

    batch_size: int = 12  # micro-batch per GPU (nanoGPT's batch_size)
    gradient_accumulation_steps: int = 1  # per rank; TrainConfig's is the total over ranks
    dtype: str = "bf16"  # what-if: pure_bf16
    attention: str = "flash"  # what-if: math
    activation_checkpointing: bool = False
    loss_chunks: int = 0  # the loss over this many chunks of tokens, each recomputed in backward; 0: off
    optimizer: str = "adamw_fused"  # what-if: adamw_foreach, sgd_momentum, sgd
    eval_batch_size: int = 0  # 0 means batch_size
    world_size: int = 1
    sharding: str = "ddp"  # what-if: zero1, zero2
    gradient_as_bucket_view: bool = False  # what-if: True. DDP's default keeps a separate 4N bucket copy of the grads
    compile: bool = False
    gpu: str | None = None  # a GPU name resolve_gpu reads ('T4', 'Tesla T4'); None: no verdict
    device: str = "cuda"  # "cpu" only for validating against CPU measurements (dropout masks differ)
    cpu_threads: int = 1  # device "cpu": torch's intra-op threads (the CPU flash kernel keeps buffers per thread)

    def __post_init__(self) -> None:
        self.dtype = TORCH_DTYPE_NAMES.get(self.dtype, self.dtype)
        for name in ("batch_size", "gradient_accumulation_steps", "world_size", "cpu_threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                fix = "Use world_size=1 for one GPU" if name == "world_size" else f"Use {name} >= 1"
                raise bad(name, value, "must be an integer >= 1", fix)
        for name, fix in (("eval_batch_size", "Use 0 to mean batch_size"), ("loss_chunks", "Use 0 for off, or 8")):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise bad(name, value, "must be an integer >= 0", fix)
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


def run_config(train_cfg: TrainConfig, world_size: int = 1, gpu: str | None = None, **what_if) -> RunConfig:
    """The run the trainer makes of train_cfg on each of world_size ranks, for the memory model.
    dtype 'auto' is what the trainer picks on a GPU: bf16 where the GPU has it, else fp16.
    what_if: RunConfig fields the trainer does not run (WHAT_IF), or device='cpu' for CPU validation."""
    unknown = sorted(set(what_if) - {*WHAT_IF, "device"})
    if unknown:
        raise bad(unknown[0], what_if[unknown[0]], "is not a what-if knob", f"Use one of {', '.join(sorted(WHAT_IF))}")
    dtype = train_cfg.dtype
    if dtype == "auto":
        from finegpt.memory.gpus import get_gpu

        dtype = "bf16" if gpu is None or get_gpu(gpu).bf16 else "fp16"
    derived = dict(
        batch_size=train_cfg.batch_size,
        gradient_accumulation_steps=local_accumulation(train_cfg.gradient_accumulation_steps, world_size),
        dtype=dtype,
        activation_checkpointing=train_cfg.activation_checkpointing,
        loss_chunks=train_cfg.loss_chunks,
        eval_batch_size=train_cfg.eval_batch_size,
        compile=train_cfg.compile,
        world_size=world_size,
        sharding="fsdp" if train_cfg.fsdp else "ddp",
        gpu=gpu,
    )
    return RunConfig(**{**derived, **what_if})


def run_from_settings(values: dict, gpu: str | None = None):
    """nanoGPT-style settings (a config file's dict + overrides) -> (ModelConfig, RunConfig, TrainConfig, notes).
    Besides TrainConfig's keys: world_size, gpu, and the what-if keys (WHAT_IF)."""
    what_if = [k for k in WHAT_IF if k in values and (k != "dtype" or values[k] in DTYPES)]  # dtype=bf16 too
    extra = {k: values[k] for k in (*what_if, "world_size", "gpu") if k in values}
    model_cfg, train_cfg, notes = build_configs({k: v for k, v in values.items() if k not in extra})
    world_size, gpu = int(extra.pop("world_size", 1)), extra.pop("gpu", gpu)
    from finegpt.memory.gpus import resolve_gpu

    gpu_note = resolve_gpu(gpu).note if gpu is not None else None  # 'A100': which card the numbers are for
    notes = [*notes, f"note: {gpu_note}"] if gpu_note else notes
    return model_cfg, run_config(train_cfg, world_size, gpu, **extra), train_cfg, notes
