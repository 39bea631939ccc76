"""One training step, the same for `finegpt train` and for `finegpt.memory.measure`.

build() makes the model, optimizer and grad scaler of a run; wrap() compiles them and spreads them over
ranks (DDP, or FSDP2 with 16-bit gathered weights); forward_backward() runs the micro-steps of gradient
accumulation with the next batch prefetched; optimizer_step() unscales, clips, steps and zeroes the grads;
eval_loss() is the no-grad pass. Also here: pick_device, pick_dtype, gpu_name, Prefetch, shard, no_sync.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass, replace

import torch
import torch.distributed as dist

from finegpt.config import ModelConfig
from finegpt.errors import bad
from finegpt.model import GPT
from finegpt.run import OPTIMIZERS, RunConfig, torch_dtype_name

# ---- device and precision ----------------------------------------------------------------------------


def pick_device(device: str = "auto", local_rank: int = 0) -> torch.device:
    """'auto': CUDA, else Apple MPS, else CPU. Under torchrun each process takes cuda:LOCAL_RANK.
    A device this machine lacks is one line, not a traceback."""
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    asked = device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
    if device == "cuda":
        device = f"cuda:{local_rank}"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise bad("device", asked, "CUDA is not available on this machine", "Use device='cpu' or 'auto'")
    index = device.split(":")[1] if device.startswith("cuda:") else ""
    if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
        n = torch.cuda.device_count()
        raise bad("device", asked, f"this machine has {n} CUDA device(s), cuda:0 to cuda:{n - 1}", "Use 'cuda'")
    if device == "mps" and not has_mps:
        raise bad("device", asked, "Apple MPS is not available on this machine", "Use device='cpu' or 'auto'")
    return torch.device(device)


def pick_dtype(device: torch.device, dtype: str = "auto") -> torch.dtype:
    """'auto': bf16 on GPUs that have it (Ampere+), fp16 + GradScaler on older ones (T4), fp32 elsewhere.
    MPS stays fp32: autocast there covers too few ops to be worth the surprises."""
    if dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    chosen = getattr(torch, torch_dtype_name(dtype))
    if device.type == "cpu" and chosen == torch.float16:
        raise bad("dtype", dtype, "float16 autocast is a GPU feature", "Use dtype='float32' or 'bfloat16' on CPU")
    if device.type == "cuda" and chosen == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        raise bad("dtype", dtype, "this GPU has no bfloat16", "Use dtype='float16' (with a GradScaler) or 'auto'")
    return chosen


def gpu_name(device: torch.device) -> str | None:
    """torch.cuda.get_device_name() of a CUDA device (what finegpt.memory.peak_flops reads), None elsewhere."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else None


def autocast(device: torch.device, dtype: torch.dtype):
    """16-bit autocast over fp32 weights, or nothing for fp32."""
    return nullcontext() if dtype == torch.float32 else torch.autocast(device.type, dtype=dtype)


# ---- batches -----------------------------------------------------------------------------------------


def to_device(batch, device: torch.device) -> tuple:
    if device.type == "cuda":  # pinned host memory lets the copy overlap the GPU's work
        return tuple(t.pin_memory().to(device, non_blocking=True) for t in batch)
    return tuple(t.to(device) for t in batch)


class Prefetch:
    """Training batches fetched one micro-step ahead, so the host's work overlaps the device's.
    loader.get_batch(step) is a pure function of step: fetching early changes nothing the model sees.
    busy_s: host seconds spent fetching (window reads + copy), to report the data path's share."""

    def __init__(self, loader, device: torch.device):
        self.loader, self.device = loader, device
        self.ahead, self.busy_s = None, 0.0

    def _fetch(self, step: int):
        t = time.perf_counter()
        batch = to_device(self.loader.get_batch(step), self.device)
        self.busy_s += time.perf_counter() - t
        return step, batch

    def get(self, step: int):
        ahead, self.ahead = self.ahead, None
        return (ahead if ahead is not None and ahead[0] == step else self._fetch(step))[1]

    def prefetch(self, step: int) -> None:
        self.ahead = self._fetch(step)


# ---- the model, optimizer and scaler of a run ---------------------------------------------------------


@dataclass
class Parts:
    """What a step works on. `model` runs the forward (maybe compiled, maybe DDP-wrapped); `raw_model` is
    the GPT under it, whose state dict a checkpoint saves. dtype: autocast's (float32: none)."""

    model: torch.nn.Module
    raw_model: GPT
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    device: torch.device
    dtype: torch.dtype

    @property
    def ctx(self):
        return autocast(self.device, self.dtype)


def build(
    model_cfg: ModelConfig,
    run: RunConfig,
    device: torch.device,
    *,
    weight_decay: float = 0.1,
    learning_rate: float = 6e-4,
    betas: tuple[float, float] = (0.9, 0.95),
    make_model=None,
) -> Parts:
    """The GPT of `run` on `device` (its weights in run.param_dtype: fp32 under autocast, bf16 for the pure-bf16
    what-if, which runs without autocast), its optimizer and a GradScaler that is on for fp16 only. Seed torch
    before calling: this draws the init. make_model(model_cfg): a module with GPT's interface to build instead."""
    param_dtype = getattr(torch, run.param_dtype)
    dtype = getattr(torch, run.dtype) if param_dtype == torch.float32 else torch.float32  # autocast's dtype
    attention, optimizer = run.attention, run.optimizer
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(param_dtype)
    try:  # initialized on the host, so one seed gives the same weights on every device
        model = GPT(model_cfg, attention=attention) if make_model is None else make_model(model_cfg)
    finally:
        torch.set_default_dtype(default_dtype)
    if device.type != "cpu":  # .to() would copy, and cannot swap the fake tensors finegpt.memory measures with
        model = model.to(device)
    model.activation_checkpointing = run.activation_checkpointing
    model.loss_chunks = run.loss_chunks  # the loss in chunks, each chunk's logits recomputed in backward (0: off)
    if optimizer in ("adamw_fused", "adamw_foreach"):  # fused: where PyTorch has the kernel for the device
        fused = None if optimizer == "adamw_fused" else False
        opt = model.configure_optimizers(weight_decay, learning_rate, betas, device.type, fused=fused)
    elif optimizer in ("sgd_momentum", "sgd"):
        momentum = 0.9 if optimizer == "sgd_momentum" else 0.0
        opt = torch.optim.SGD(model.parameters(), lr=learning_rate, momentum=momentum, foreach=True)
    else:
        raise bad("optimizer", optimizer, "is not supported", f"Use one of {', '.join(OPTIMIZERS)}")
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    return Parts(model, model, opt, scaler, device, dtype)


def mixed_precision(device: torch.device, dtype: torch.dtype):
    """FSDP2's policy: 16-bit gathered weights for compute on GPU, gradients reduced in fp32; fp32 on CPU."""
    from torch.distributed.fsdp import MixedPrecisionPolicy

    if device.type == "cuda" and dtype in (torch.bfloat16, torch.float16):
        return MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32)
    return MixedPrecisionPolicy()


def shard(model: GPT, optimizer: torch.optim.Optimizer, device: torch.device, dtype: torch.dtype):
    """fully_shard each block, then the root (which owns the tied wte / lm_head weight, so it stays one
    parameter), in place; return an optimizer of the same kind and groups over the shards. State the old
    optimizer held (a resumed DDP or one-process checkpoint) is carried over, split across ranks."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_optimizer_state_dict,
        set_optimizer_state_dict,
    )
    from torch.distributed.fsdp import fully_shard

    names = {id(p): name for name, p in model.named_parameters()}
    full_state = get_optimizer_state_dict(model, optimizer) if optimizer.state else None  # keyed by name
    group_names = [[names[id(p)] for p in g["params"]] for g in optimizer.param_groups]
    for t in [*model.parameters(), *model.buffers()]:  # every rank shards rank 0's weights, as DDP would
        dist.broadcast(t.data, src=0)
    mp = mixed_precision(device, dtype)
    for block in model.transformer.h:
        fully_shard(block, mp_policy=mp)
    fully_shard(model, mp_policy=mp)
    params = dict(model.named_parameters())  # the same names, now DTensor shards
    groups = [
        {**{k: v for k, v in g.items() if k != "params"}, "params": [params[n] for n in group]}
        for g, group in zip(optimizer.param_groups, group_names)
    ]
    sharded = type(optimizer)(groups)
    if full_state is not None:
        set_optimizer_state_dict(model, sharded, full_state, options=StateDictOptions(full_state_dict=True))
    return sharded


def sharded_scaler(scaler: torch.amp.GradScaler) -> torch.amp.GradScaler:
    """fp16 under FSDP: a rank sees only its own shard of the gradients, so the inf check must be
    all-reduced before every rank decides to skip a step; ShardedGradScaler does that."""
    if not scaler.is_enabled():
        return scaler
    from torch.distributed.fsdp.sharded_grad_scaler import ShardedGradScaler

    sharded = ShardedGradScaler(getattr(scaler, "_device", "cuda"))
    sharded.load_state_dict(scaler.state_dict())
    return sharded


def wrap(parts: Parts, run: RunConfig) -> Parts:
    """torch.compile (run.compile), then spread over the ranks of an initialized process group as run.parallel
    says: 'ddp' wraps the compiled model in DDP (run.gradient_as_bucket_view), 'fsdp' shards the GPT under it in
    place with FSDP2 and rebuilds the optimizer over the shards; None (one process) does neither. Load weights
    and optimizer state before."""
    parallel = run.parallel
    model = torch.compile(parts.raw_model) if run.compile else parts.raw_model
    if parallel == "fsdp":
        optimizer = shard(parts.raw_model, parts.optimizer, parts.device, parts.dtype)
        return replace(parts, model=model, optimizer=optimizer, scaler=sharded_scaler(parts.scaler))
    if parallel == "ddp":
        from torch.nn.parallel import DistributedDataParallel as DDP

        dev = parts.device
        ids = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else None
        model = DDP(model, device_ids=ids, gradient_as_bucket_view=run.gradient_as_bucket_view)
    return replace(parts, model=model)


# ---- the step ----------------------------------------------------------------------------------------


def no_sync(model: torch.nn.Module, last_micro_step: bool):
    """Skip the gradient all-reduce (DDP) or reduce-scatter (FSDP2) on all but the last micro-step of an
    accumulation. FSDP2 then holds full-size gradients until the last micro-step: fewer messages, more memory."""
    root = getattr(model, "_orig_mod", model)
    if hasattr(root, "set_requires_gradient_sync"):  # an FSDP2 module
        root.set_requires_gradient_sync(last_micro_step)
        return nullcontext()
    if last_micro_step or not hasattr(model, "no_sync"):
        return nullcontext()
    return model.no_sync()


def forward_backward(parts: Parts, batches: Prefetch, first_micro_step: int, gas: int) -> torch.Tensor:
    """gas micro-steps (numbered from first_micro_step) of forward + backward into the gradients; returns
    the step's loss (the mean over its micro-batches), detached. As in nanoGPT's train.py, `logits` stays
    bound through backward into the next forward, and the next batch is fetched during the forward, so it
    is on the device through backward, the optimizer step and eval: finegpt.memory counts both."""
    loss_sum = torch.zeros((), device=parts.device)
    for k in range(gas):
        X, Y = batches.get(first_micro_step + k)
        with no_sync(parts.model, k == gas - 1), parts.ctx:
            logits, loss = parts.model(X, Y)
            loss = loss / gas  # the step's gradient is the mean over its micro-batches
        batches.prefetch(first_micro_step + k + 1)  # while the GPU runs the forward (CUDA is asynchronous)
        parts.scaler.scale(loss).backward()
        loss_sum += loss.detach().float()
    return loss_sum


def optimizer_step(parts: Parts, grad_clip: float = 1.0) -> None:
    """Unscale, clip the global grad norm (grad_clip 0: off), step (skipped by the scaler on an fp16
    overflow), and free the grads (set_to_none: they cost nothing until the next backward)."""
    if grad_clip > 0:
        parts.scaler.unscale_(parts.optimizer)
        torch.nn.utils.clip_grad_norm_(parts.raw_model.parameters(), grad_clip)
    parts.scaler.step(parts.optimizer)
    parts.scaler.update()
    parts.optimizer.zero_grad(set_to_none=True)


def train_step(
    parts: Parts, batches: Prefetch, iter_num: int, gas: int, grad_clip: float = 1.0, *, check=None, phase=None
):
    """Iteration iter_num's optimizer step, in the order the trainer runs it and the memory meter reads it:
    phase("train"), gas micro-steps into the gradients; check(loss), where the trainer stops on a loss that is
    not finite before the weights change; phase("optimizer"), the update. Returns the step's loss (detached).
    phase(name) marks where each phase begins: finegpt.memory reads its peaks there."""
    phase = phase or (lambda name: None)
    phase("train")
    loss = forward_backward(parts, batches, iter_num * gas, gas)
    if check is not None:
        check(loss)
    phase("optimizer")
    optimizer_step(parts, grad_clip)
    return loss


@torch.no_grad()
def eval_loss(parts: Parts, loader, iters: int) -> torch.Tensor:
    """Mean loss over loader.get_batch(0 .. iters-1) in eval mode (dropout off), as nanoGPT's estimate_loss:
    the last logits stay bound into the next forward. The model is left in train mode."""
    losses = torch.zeros(iters, device=parts.device)
    parts.model.eval()
    for k in range(iters):
        X, Y = to_device(loader.get_batch(k), parts.device)
        with parts.ctx:
            logits, loss = parts.model(X, Y)
        losses[k] = loss.float()
    parts.model.train()
    return losses.mean()
