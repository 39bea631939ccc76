"""Per-rank memory under DDP and FSDP2: each of 2 gloo ranks measures its own peaks with
finegpt.memory.measure and they match estimate()'s per-rank figures."""

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from finegpt.config import ModelConfig
from finegpt.memory import RunConfig, estimate, measure

CFG = ModelConfig(n_layer=2, n_head=2, n_embd=64, block_size=64, vocab_size=512, dropout=0.0, bias=True)
RUNS = {
    f"{sharding}_g{G}": RunConfig(
        batch_size=4, gradient_accumulation_steps=G, dtype="fp32", device="cpu", world_size=2, sharding=sharding
    )
    for sharding in ("ddp", "fsdp")
    for G in (1, 2)
}
SLACK_BYTES = 1024  # 0-d tensors (loss, grad norm, Adam's step counts) the model leaves out


def _rank(rank: int, store_path: str, queue) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store_path}", rank=rank, world_size=2)
    try:
        queue.put((rank, {name: measure(CFG, run, device="cpu") for name, run in RUNS.items()}))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """{rank: {run name: measured peaks}}: each rank measures only itself."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    store = tmp_path_factory.mktemp("ranks") / "store"
    procs = [ctx.Process(target=_rank, args=(r, str(store), queue)) for r in range(2)]
    for p in procs:
        p.start()
    results = dict(queue.get(timeout=240) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    return results


@pytest.mark.parametrize("name", ["ddp_g1", "ddp_g2"])
def test_ddp_per_rank_peaks_match_estimate(measured, name):
    predicted = estimate(CFG, RUNS[name]).peaks
    for rank in (0, 1):
        for phase in ("train", "optimizer", "eval"):
            assert 0 <= measured[rank][name][phase] - predicted[phase] <= SLACK_BYTES, (rank, phase)


# The root module's full-size fp32 gradient (the input of the last reduce-scatter of backward) is freed
# when gloo completes that collective. About one run in six, that happens only after
# the optimizer step has begun, so the step's measured peak is the estimate plus those bytes.
ROOT_FULL_GRAD_BYTES = 4 * (CFG.vocab_size * CFG.n_embd + CFG.block_size * CFG.n_embd + 2 * CFG.n_embd)


@pytest.mark.parametrize("name", ["fsdp_g1", "fsdp_g2"])
def test_fsdp_per_rank_peaks_match_estimate(measured, name):
    predicted = estimate(CFG, RUNS[name]).peaks
    for rank in (0, 1):
        for phase in ("train", "optimizer", "eval"):
            extra = measured[rank][name][phase] - predicted[phase]
            if phase == "optimizer" and extra > SLACK_BYTES:
                extra -= ROOT_FULL_GRAD_BYTES  # the late free described above
            assert 0 <= extra <= SLACK_BYTES, (rank, phase)


def test_fsdp_optimizer_step_holds_half_of_ddps_weights_grads_and_states():
    ddp, fsdp = estimate(CFG, RUNS["ddp_g1"]), estimate(CFG, RUNS["fsdp_g1"])
    batch = ddp.terms["next batch (prefetched)"]  # the loop's next micro-batch: not sharded
    # (4N weights + 4N grads + 8N states) / 2
    assert 2 * (fsdp.peaks["optimizer"] - batch) == ddp.peaks["optimizer"] - ddp.terms["DDP buckets"] - batch


def test_fsdp_accumulation_holds_full_size_gradients_between_micro_steps():
    """finegpt train skips the reduce-scatter on non-final micro-steps: 4N unsharded, not 4N / 2."""
    g1, g2 = estimate(CFG, RUNS["fsdp_g1"]), estimate(CFG, RUNS["fsdp_g2"])
    assert g2.terms["gradients (previous micro-step)"] == 4 * 136_960
    assert g2.peaks["train"] - g1.peaks["train"] == 4 * 136_960
