"""Measure one real training step of finegpt's GPT: peak bytes allocated per phase.

Entry points: measure(model_cfg, run, device="cpu"|"cuda"|"fake"), measure_ranks, LiveBytes.
The step is finegpt.step's, the one the trainer runs; this module only reads the peaks between its
phases. On CUDA the allocator's peak stats are read; on CPU the profiler's allocation events (ProfiledBytes,
profiled.py); "fake" runs the same step under FakeTensorMode, so a 1B model costs no memory at all, tracked by
LiveBytes, a dispatch mode (which reads one V x C gradient more at a tied embedding's sum, see _tracker).
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch._guards import active_fake_mode
from torch.distributed.tensor import DTensor
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from finegpt import step
from finegpt.config import ModelConfig
from finegpt.run import RunConfig

PHASES = ("train", "optimizer", "eval", "first_eval")
EVAL_ITERS = 2  # estimate_loss's peak is its second batch: the first one's logits are still bound


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


class RandomBatches:
    """A loader of random (x, y) int64 batches of shape (B, T), made where the step would read them (host)."""

    def __init__(self, model_cfg: ModelConfig, batch_size: int):
        self.shape, self.vocab_size = (batch_size, model_cfg.block_size), model_cfg.vocab_size

    def get_batch(self, micro_step: int):
        return torch.randint(self.vocab_size, self.shape), torch.randint(self.vocab_size, self.shape)  # (B, T)


def build(model_cfg: ModelConfig, run: RunConfig, device: torch.device) -> step.Parts:
    """The model, optimizer and scaler as finegpt.step builds them for a run, wrapped for run.world_size
    ranks of an initialized process group. Knobs the trainer does not run (WHAT_IF) are passed through."""
    if run.world_size > 1 and run.sharding not in ("ddp", "fsdp"):
        raise NotImplementedError(f"measuring sharding={run.sharding!r} is not implemented; ddp and fsdp are")
    if run.compile:  # a fresh compile per run, as in a new process: past 8 compiles dynamo silently runs eager
        torch._dynamo.reset()
    parts = step.build(model_cfg, run, device)  # the trainer's two lines (finegpt.train.loop._train)
    return step.wrap(parts, run)


def _peaks(parts: step.Parts, run: RunConfig, model_cfg: ModelConfig, tracker, evals: bool = True) -> dict:
    """The loop's order: the iteration-0 eval (no optimizer state yet, nothing prefetched), two training
    steps (the first creates the optimizer state), then an eval pass; finegpt.step's own functions, with
    the tracker read at the boundaries of the phases. evals=False: the two training steps only."""
    peaks, eval_batches = {}, RandomBatches(model_cfg, run.eval_micro_batch)
    if evals:
        if run.compile:  # compile the eval graph before the measured eval (compiling is not the step)
            step.eval_loss(parts, eval_batches, 1)
        tracker.reset_peak()
        step.eval_loss(parts, eval_batches, EVAL_ITERS)
        peaks["first_eval"] = tracker.peak_bytes
    batches = step.Prefetch(RandomBatches(model_cfg, run.batch_size), parts.device)
    G = run.local_accumulation_steps
    step.train_step(parts, batches, 0, G)  # the first step creates the optimizer state
    current = []

    def phase(name: str) -> None:  # the step's own phase marks: close the last phase's peak, start this one's
        if current:
            peaks[current.pop()] = tracker.peak_bytes
        tracker.reset_peak()
        current.append(name)

    step.train_step(parts, batches, 1, G, phase=phase)
    phase("done")
    current.clear()
    if evals:
        tracker.reset_peak()
        step.eval_loss(parts, eval_batches, EVAL_ITERS)
        peaks["eval"] = tracker.peak_bytes
    return peaks


def _tracker(dev: torch.device, run: RunConfig, fake: bool):
    """What reads the peaks, and the modes to run the step under: the CUDA allocator's stats; on CPU the
    profiler's allocation events (ProfiledBytes: the allocator's own account. A dispatch mode sees no
    inductor buffer, stops dynamo compiling, and changes what it watches: under one, autograd sums the two
    gradients of the tied embedding out of place, a V x C tensor more than a plain run holds); LiveBytes
    under FakeTensorMode for device 'fake', which carries that same extra V x C (fake tensors are subclasses),
    and for gloo ranks: gloo copies buffers on its own thread at moments that vary run to run, which the
    dispatch mode does not count, as a rank on NCCL (which reduces in place) would not hold them."""
    if dev.type == "cuda":
        return _CudaBytes(dev), [nullcontext()]
    if not fake and run.world_size == 1:
        from finegpt.memory.profiled import ProfiledBytes

        tracker = ProfiledBytes()
        return tracker, [nullcontext(), tracker]
    from torch._subclasses.fake_tensor import FakeTensorMode

    tracker = LiveBytes()
    return tracker, [FakeTensorMode() if fake else nullcontext(), tracker]


def measure(
    model_cfg: ModelConfig, run: RunConfig, device: str = "cpu", seed: int = 0, *, tracker=None, evals: bool = True
) -> dict:
    """Peak bytes allocated per phase and overall ('peak'): 'first_eval', the iteration-0 eval before any
    step (no optimizer state, no prefetched batch); 'train' and 'optimizer' of the second of two training
    steps; 'eval', the eval pass after them (evals=False: the training phases only). device "fake": the
    CPU step under FakeTensorMode, allocating nothing. tracker: a CPU tracker to read instead of the
    default (ProfiledBytes on CPU, LiveBytes under "fake"), entered around the run. With run.world_size > 1,
    call it on every rank of an initialized process group: each rank measures its own peaks."""
    torch.manual_seed(seed)
    fake = device == "fake"
    dev = torch.device("cpu" if fake else device)
    if tracker is None:
        tracker, modes = _tracker(dev, run, fake)
    else:
        modes = [nullcontext(), tracker]
    with modes[0], modes[1] if len(modes) > 1 else nullcontext():
        parts = build(model_cfg, run, dev)
        peaks = _peaks(parts, run, model_cfg, tracker, evals)
        if dev.type == "cuda":
            peaks["reserved"] = tracker.reserved_bytes
        del parts
    peaks["peak"] = max(peaks[p] for p in PHASES if p in peaks)
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
