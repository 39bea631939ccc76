"""Measure one real training step of finegpt's GPT: peak bytes allocated per phase.

Entry points: measure(model_cfg, run, device="cpu"|"cuda"|"fake"), LiveBytes, train_step.
On CUDA the allocator's peak stats are read; on CPU a dispatch mode tracks live storages (the
profiler's allocation events for a compiled step, see profiled.py);
"fake" runs the same step under FakeTensorMode, so a 1B model costs no memory at all.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch._guards import active_fake_mode
from torch.distributed.tensor import DTensor
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from finegpt.config import ModelConfig
from finegpt.memory.run import RunConfig
from finegpt.model import GPT

PHASES = ("train", "optimizer", "eval")


class LiveBytes(TorchDispatchMode):
    """Bytes of every storage created under this mode and still alive, and the peak of that.

    Frees are noticed lazily (a weak reference expires), so they are collected before each op
    runs: the peak is then the live set right after the op that allocated it. FSDP2 frees and
    re-allocates gathered weights with storage.resize_, which no dispatch mode sees, so resize_ is
    watched too; DTensor ops are let through to run as local ops, which are counted."""

    def __init__(self):
        super().__init__()
        self.live: dict[int, tuple[StorageWeakRef, int]] = {}
        self.now_bytes = 0
        self.peak_bytes = 0
        self.history: list | None = None  # set to [] to record (op, live bytes after it)
        self._fake_on_entry = None

    def reset_peak(self) -> None:
        self._collect()
        self.peak_bytes = self.now_bytes

    def __enter__(self):
        self._fake_on_entry = active_fake_mode()  # DTensor's shape propagation runs in a fake mode of its own
        self._resize = torch.UntypedStorage.resize_

        def resize_(storage, size):
            before = storage.nbytes()
            self._resize(storage, size)
            ref = StorageWeakRef(storage)
            if ref.cdata in self.live:
                self.live[ref.cdata] = (self.live[ref.cdata][0], storage.nbytes())
                self.now_bytes += storage.nbytes() - before
                self.peak_bytes = max(self.peak_bytes, self.now_bytes)

        torch.UntypedStorage.resize_ = resize_
        return super().__enter__()

    def __exit__(self, *exc):
        torch.UntypedStorage.resize_ = self._resize
        return super().__exit__(*exc)

    def _collect(self) -> None:
        for key in [k for k, (ref, _) in self.live.items() if ref.expired()]:
            self.now_bytes -= self.live.pop(key)[1]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if any(issubclass(t, DTensor) for t in types):
            return NotImplemented  # DTensor runs its local ops, which come back through this mode
        if active_fake_mode() is not self._fake_on_entry:
            return func(*args, **(kwargs or {}))
        self._collect()
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                ref = StorageWeakRef(storage)
                if ref.cdata not in self.live:
                    self.live[ref.cdata] = (ref, storage.nbytes())
                    self.now_bytes += storage.nbytes()
        self.peak_bytes = max(self.peak_bytes, self.now_bytes)
        if self.history is not None:
            self.history.append((str(func), self.now_bytes))
        return out


class _CudaBytes:
    """The same interface over torch.cuda's allocator statistics."""

    def __init__(self, device):
        self.device = device

    def reset_peak(self) -> None:
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)

    @property
    def peak_bytes(self) -> int:
        torch.cuda.synchronize(self.device)
        return torch.cuda.max_memory_allocated(self.device)

    @property
    def reserved_bytes(self) -> int:
        return torch.cuda.max_memory_reserved(self.device)


def build(model_cfg: ModelConfig, run: RunConfig, device: str):
    """The model, optimizer and grad scaler exactly as a training run makes them. With world_size > 1
    this is one rank of a data-parallel run whose process group is already initialized."""
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16 if run.dtype == "pure_bf16" else torch.float32)
    try:  # built in place: .to() would copy, and cannot swap fake tensors
        with torch.device(device):
            model = GPT(model_cfg, attention=run.attention)
    finally:
        torch.set_default_dtype(default_dtype)
    model.activation_checkpointing = run.activation_checkpointing
    if run.world_size > 1 and run.sharding == "fsdp":  # FSDP2: each block, then the root
        from torch.distributed.fsdp import fully_shard

        for block in model.transformer.h:
            fully_shard(block)
        fully_shard(model)
    elif run.world_size > 1 and run.sharding != "ddp":
        raise NotImplementedError(f"measuring sharding={run.sharding!r} is not implemented; ddp and fsdp are")
    device_type = torch.device(device).type
    if run.optimizer.startswith("adamw"):
        optimizer = model.configure_optimizers(
            0.1, 6e-4, (0.9, 0.95), device_type, fused=run.optimizer == "adamw_fused"
        )
    else:
        optimizer = torch.optim.SGD(
            model.parameters(), lr=6e-4, foreach=True, momentum=0.9 if run.optimizer == "sgd_momentum" else 0.0
        )
    scaler = torch.amp.GradScaler(device_type, enabled=run.dtype == "fp16")
    if run.compile:
        torch._dynamo.reset()  # a fresh compile per run, as in a new process (and no recompile limit)
        model = torch.compile(model)
    if run.world_size > 1 and run.sharding == "ddp":
        from torch.nn.parallel import DistributedDataParallel as DDP

        model = DDP(model, gradient_as_bucket_view=run.gradient_as_bucket_view)
    return model, optimizer, scaler


def autocast(run: RunConfig, device_type: str):
    if run.dtype in ("bf16", "fp16"):
        return torch.autocast(device_type, dtype=torch.bfloat16 if run.dtype == "bf16" else torch.float16)
    return nullcontext()


def train_step(
    model, optimizer, scaler, get_batch, run: RunConfig, device_type: str, tracker=None, held: dict | None = None
) -> dict:
    """nanoGPT's loop body: G micro-steps of forward + backward, then clip, step, zero_grad.
    As in nanoGPT's train.py (and finegpt's), the last micro-step's logits and batch stay bound through
    the optimizer step, the next eval and the next forward: pass the same `held` dict to every step."""
    peaks = {}
    G = run.gradient_accumulation_steps
    held = {} if held is None else held
    if tracker:
        tracker.reset_peak()
    for k in range(G):
        if hasattr(model, "set_requires_gradient_sync"):  # FSDP2, as finegpt train: reduce-scatter on the last only
            model.set_requires_gradient_sync(k == G - 1)
        x, y = get_batch(run.batch_size)
        held.update(x=x, y=y)  # the loop rebinds X, Y here, freeing the previous batch
        with autocast(run, device_type):
            logits, loss = model(x, y)
            loss = loss / G
        held["logits"] = logits  # ... and `_` (the logits) here, freeing the previous ones
        scaler.scale(loss).backward()
    del logits, loss, x, y
    if tracker:
        peaks["train"] = tracker.peak_bytes
        tracker.reset_peak()
    scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    if tracker:
        peaks["optimizer"] = tracker.peak_bytes
    return peaks


@torch.no_grad()
def eval_step(model, get_batch, run: RunConfig, device_type: str, tracker=None) -> dict:
    """Two eval batches, as nanoGPT's estimate_loss: the last logits stay bound into the next forward."""
    if tracker:
        tracker.reset_peak()
    model.eval()
    for _ in range(2):
        x, y = get_batch(run.eval_micro_batch)
        with autocast(run, device_type):
            logits, loss = model(x, y)
    model.train()
    return {"eval": tracker.peak_bytes} if tracker else {}


def measure(model_cfg: ModelConfig, run: RunConfig, device: str = "cpu", seed: int = 0) -> dict:
    """Peak bytes allocated per phase ('train', 'optimizer', 'eval') and overall ('peak') in the
    second of two training steps (the first creates the optimizer state), then an eval pass; and
    'first_eval', the iteration-0 eval before any step (no optimizer state, no held logits).
    device "fake": the CPU step under FakeTensorMode, allocating nothing. With run.world_size > 1,
    call it on every rank of an initialized process group: each rank measures its own peaks."""
    torch.manual_seed(seed)
    fake = device == "fake"
    device_type = "cpu" if fake else torch.device(device).type
    if device_type == "cuda":
        tracker, modes = _CudaBytes(torch.device(device)), [nullcontext()]
    elif run.compile and not fake:  # inductor's buffers are invisible to a dispatch mode: read the allocator
        from finegpt.memory.profiled import ProfiledBytes

        tracker = ProfiledBytes()
        modes = [nullcontext(), tracker]
    else:
        from torch._subclasses.fake_tensor import FakeTensorMode

        tracker = LiveBytes()
        modes = [FakeTensorMode() if fake else nullcontext(), tracker]
    T, V = model_cfg.block_size, model_cfg.vocab_size
    dev = "cpu" if fake else device

    def get_batch(B):
        x = torch.randint(V, (B, T), device=dev)  # (B, T)
        return x, torch.randint(V, (B, T), device=dev)

    held = {}  # what the loop keeps bound between steps (see train_step)
    with modes[0], modes[1] if len(modes) > 1 else nullcontext():
        model, optimizer, scaler = build(model_cfg, run, dev)
        if run.compile:  # compiles the eval graph outside the measured eval
            eval_step(model, get_batch, run, device_type)
        first_eval = eval_step(model, get_batch, run, device_type, tracker)  # iter 0: no optimizer state yet
        train_step(model, optimizer, scaler, get_batch, run, device_type, held=held)
        peaks = train_step(model, optimizer, scaler, get_batch, run, device_type, tracker, held=held)
        peaks.update(eval_step(model, get_batch, run, device_type, tracker))
        peaks["first_eval"] = first_eval["eval"]
        if device_type == "cuda":
            peaks["reserved"] = tracker.reserved_bytes
        del model, optimizer
        held.clear()
    peaks["peak"] = max(peaks[p] for p in PHASES)
    return peaks


def _rank_worker(rank: int, model_cfg: ModelConfig, run: RunConfig, store_path: str, queue) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store_path}", rank=rank, world_size=run.world_size)
    try:
        queue.put((rank, measure(model_cfg, run, device="cpu")))
    finally:
        dist.destroy_process_group()


def measure_ranks(model_cfg: ModelConfig, run: RunConfig, store_path: str) -> list[dict]:
    """measure() on every rank of a CPU (gloo) data-parallel run of run.world_size processes; one dict
    per rank. store_path: a file that does not exist yet, for the rendezvous."""
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_rank_worker, args=(r, model_cfg, run, store_path, queue)) for r in range(run.world_size)
    ]
    for p in procs:
        p.start()
    results = dict(queue.get(timeout=300) for _ in procs)
    for p in procs:
        p.join()
    return [results[r] for r in range(run.world_size)]
