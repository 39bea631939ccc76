"""The run, resolved once: what one training run is on each rank, for the step that trains it and the memory
model that predicts it.

Entry points: RunConfig (validated on construction: names in any accepted spelling become torch dtype names, a
GPU name becomes a `Gpu`), run_config (the one place a TrainConfig becomes a RunConfig), run_from_settings (a
config file's flat dict -> the configs), torch_dtype_name, dtype_label; the names a run may use: DTYPES,
ATTENTIONS, OPTIMIZERS, SHARDINGS. Imports neither torch nor numpy (the browser calculator runs it).
"""

from __future__ import annotations

from dataclasses import dataclass

from finegpt.config import WHAT_IF, TrainConfig, build_configs, local_accumulation, tokens_per_step
from finegpt.errors import bad
from finegpt.gpus import Gpu, GpuMatch, resolve_gpu

# Every spelling of a precision a user may write -> (autocast dtype, weight dtype), in torch's names.
# fp16 / bf16 autocast over fp32 weights; pure_bf16 (a what-if): bf16 weights, no fp32 master copy.
DTYPE_SPELLINGS = {
    "float32": ("float32", "float32"),
    "fp32": ("float32", "float32"),
    "bfloat16": ("bfloat16", "float32"),
    "bf16": ("bfloat16", "float32"),
    "float16": ("float16", "float32"),
    "fp16": ("float16", "float32"),
    "pure_bf16": ("bfloat16", "bfloat16"),
}
DTYPES = ("fp32", "bf16", "fp16", "pure_bf16")  # the memory model's short labels, as the CLI prints them
ATTENTIONS = ("flash", "math")
OPTIMIZERS = ("adamw_fused", "adamw_foreach", "sgd_momentum", "sgd")  # finegpt train runs adamw_fused
SHARDINGS = ("ddp", "zero1", "zero2", "fsdp")
_LABELS = {("float32", "float32"): "fp32", ("bfloat16", "float32"): "bf16", ("float16", "float32"): "fp16"}
_LABELS[("bfloat16", "bfloat16")] = "pure_bf16"


def torch_dtype_name(dtype: str) -> str:
    """'bf16' or 'bfloat16' -> 'bfloat16' (the autocast dtype; pure_bf16 -> bfloat16). Unknown names raise."""
    if dtype not in DTYPE_SPELLINGS:
        raise bad("dtype", dtype, "is not supported", f"Use one of {', '.join(DTYPES)}")
    return DTYPE_SPELLINGS[dtype][0]


def dtype_label(dtype: str, param_dtype: str = "float32") -> str:
    """The short label the memory model prints: ('bfloat16', 'float32') -> 'bf16', both bfloat16 -> 'pure_bf16'."""
    return _LABELS[(dtype, param_dtype)]


@dataclass
class RunConfig:
    """One run's settings as each rank runs them. block_size and dropout come from the ModelConfig.
    Build it from a TrainConfig with run_config(); fields marked what-if are in WHAT_IF: the memory
    model answers them (and finegpt.memory.measure runs them), but the trainer does not.
    After construction: dtype and param_dtype are torch names, gpu is a Gpu (or None)."""

    batch_size: int = 12  # micro-batch per GPU (nanoGPT's batch_size)
    gradient_accumulation_steps: int = 1  # micro-steps on each rank (local_accumulation_steps)
    dtype: str = "bfloat16"  # autocast's dtype, or float32 for none; any DTYPE_SPELLINGS key is accepted
    attention: str = "flash"  # what-if: math
    activation_checkpointing: bool = False
    optimizer: str = "adamw_fused"  # what-if: adamw_foreach, sgd_momentum, sgd
    eval_batch_size: int = 0  # 0 means batch_size
    world_size: int = 1
    sharding: str = "ddp"  # what-if: zero1, zero2
    gradient_as_bucket_view: bool = False  # what-if: True. DDP's default keeps a separate 4N bucket copy of the grads
    compile: bool = False
    gpu: Gpu | str | None = None  # a Gpu, or a name resolve_gpu reads ('T4', 'Tesla T4'); None: no verdict
    device: str = "cuda"  # "cpu" only for validating against CPU measurements (dropout masks differ)
    param_dtype: str = "float32"  # the weights' dtype: bfloat16 for the pure_bf16 what-if
    loss_chunks: int = 0  # the loss over this many chunks of tokens, each recomputed in backward; 0: off
    cpu_threads: int = 1  # device "cpu": torch's intra-op threads (the CPU flash kernel keeps buffers per thread)

    def __post_init__(self) -> None:
        if self.dtype == "pure_bf16" or self.dtype not in DTYPE_SPELLINGS:
            torch_dtype_name(self.dtype)  # unknown names raise
            self.dtype, self.param_dtype = DTYPE_SPELLINGS[self.dtype]
        else:
            self.dtype = DTYPE_SPELLINGS[self.dtype][0]
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
            ("attention", ATTENTIONS),
            ("optimizer", OPTIMIZERS),
            ("sharding", SHARDINGS),
        ):
            if getattr(self, name) not in allowed:
                raise bad(name, getattr(self, name), "is not supported", f"Use one of {', '.join(allowed)}")
        if isinstance(self.gpu, GpuMatch):
            self.gpu = self.gpu.gpu
        elif isinstance(self.gpu, str):
            self.gpu = resolve_gpu(self.gpu).gpu  # unknown names raise with a did-you-mean
        if self.gpu is not None and self.dtype == "bfloat16" and not self.gpu.bf16:
            raise bad(
                "dtype",
                self.label,
                f"the {self.gpu.name} has no bf16 support",
                "Use dtype=fp16 (autocast with a GradScaler) or fp32",
            )

    @property
    def label(self) -> str:
        """The precision as the memory model prints it: fp32, bf16, fp16 or pure_bf16."""
        return dtype_label(self.dtype, self.param_dtype)

    @property
    def eval_micro_batch(self) -> int:
        return self.eval_batch_size or self.batch_size

    @property
    def local_accumulation_steps(self) -> int:
        return self.gradient_accumulation_steps

    @property
    def parallel(self) -> str | None:
        """How the step spreads over ranks: None for one process (nothing to shard, whatever fsdp says),
        'fsdp' (FSDP2) or 'ddp'; zero1 / zero2 are answered by the memory model only."""
        if self.world_size == 1:
            return None
        return "fsdp" if self.sharding == "fsdp" else "ddp"

    def tokens_per_step(self, block_size: int) -> int:
        """Tokens in one optimizer step over all ranks."""
        return tokens_per_step(self.batch_size, block_size, self.gradient_accumulation_steps * self.world_size)


def run_config(train_cfg: TrainConfig, world_size: int = 1, gpu: str | Gpu | None = None, **what_if) -> RunConfig:
    """The run the trainer makes of train_cfg on each of world_size ranks. dtype 'auto' is what the trainer
    picks on a GPU: bfloat16 where the GPU has it, else float16. what_if: RunConfig fields the trainer does
    not run (WHAT_IF), or device='cpu' for CPU validation."""
    unknown = sorted(set(what_if) - {*WHAT_IF, "device"})
    if unknown:
        raise bad(unknown[0], what_if[unknown[0]], "is not a what-if knob", f"Use one of {', '.join(sorted(WHAT_IF))}")
    if isinstance(gpu, (str, GpuMatch)):
        gpu = resolve_gpu(gpu).gpu if isinstance(gpu, str) else gpu.gpu
    dtype = train_cfg.dtype
    if dtype == "auto":
        dtype = "bfloat16" if gpu is None or gpu.bf16 else "float16"
    derived = dict(
        batch_size=train_cfg.batch_size,
        gradient_accumulation_steps=local_accumulation(train_cfg.gradient_accumulation_steps, world_size),
        dtype=dtype,
        activation_checkpointing=train_cfg.activation_checkpointing,
        loss_chunks=train_cfg.loss_chunks,
        eval_batch_size=train_cfg.eval_batch_size,
        compile=train_cfg.compile,
        world_size=world_size,
        sharding="fsdp" if train_cfg.fsdp and world_size > 1 else "ddp",  # one process has nothing to shard
        gpu=gpu,
    )
    return RunConfig(**{**derived, **what_if})


def run_from_settings(values: dict, gpu: str | Gpu | None = None):
    """nanoGPT-style settings (a config file's dict + overrides) -> (ModelConfig, RunConfig, TrainConfig, notes).
    Besides TrainConfig's keys: world_size, gpu, and the what-if keys (WHAT_IF). The GPU name is read once."""
    what_if = [k for k in WHAT_IF if k in values and (k != "dtype" or values[k] in DTYPES)]  # dtype=bf16 too
    extra = {k: values[k] for k in (*what_if, "world_size", "gpu") if k in values}
    model_cfg, train_cfg, notes = build_configs({k: v for k, v in values.items() if k not in extra})
    world_size, gpu = int(extra.pop("world_size", 1)), extra.pop("gpu", gpu)
    if gpu is not None and not isinstance(gpu, Gpu):
        match = resolve_gpu(gpu)
        gpu = match.gpu
        notes = [*notes, f"note: {match.note}"] if match.note else notes  # 'A100': which card the numbers are for
    return model_cfg, run_config(train_cfg, world_size, gpu, **extra), train_cfg, notes
