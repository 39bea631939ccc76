"""The scratch a 16-bit matmul keeps on CPU while it runs (oneDNN's packed operands and accumulators),
measured with the profiler's allocator events: the peak bytes inside one call less its output.

Three calls per shape, as an nn.Linear without bias makes them (x: M x K, weight W: N x K, grad: M x N):
forward x @ W^T, the input's gradient grad @ W, the weight's gradient grad^T @ x. Prints one row per shape;
finegpt.memory.state.cpu_bf16_panel_scratch_bytes is the rule read from these rows.

usage: python bench/cpu_mm_scratch.py --threads 2 --rows 16,32 --k 64,256,1536 --n 16,64,384 [--dtype bfloat16]

--mlp C1,C2,..: instead, the two weight gradients of an MLP of width C over --rows tokens (c_proj's: C x 4C,
c_fc's: 4C x C, each grad^T @ x), the shapes finegpt.memory.state.cpu_bf16_wgrad_scratch_bytes models.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from finegpt.memory.cpu_scratch import profiled_scratch_bytes  # noqa: E402  (the allocator events, replayed)


def linear_scratch(M: int, K: int, N: int, dtype: torch.dtype) -> dict[str, int]:
    x, w, grad = torch.randn(M, K, dtype=dtype), torch.randn(N, K, dtype=dtype), torch.randn(M, N, dtype=dtype)
    return {
        "forward": profiled_scratch_bytes(lambda: torch.mm(x, w.t())),  # F.linear: x @ W^T, W transposed in place
        "grad_input": profiled_scratch_bytes(lambda: torch.mm(grad, w)),  # MmBackward0: grad @ W
        "grad_weight": profiled_scratch_bytes(lambda: torch.mm(grad.t(), x)),  # MmBackward0: grad^T @ x, N x K
    }


def main(argv=None) -> None:
    ints = lambda s: [int(v) for v in s.split(",")]  # noqa: E731
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rows", type=ints, default=ints("2,8,16,24,32"), help="M, the tokens")
    parser.add_argument("--k", type=ints, default=ints("32,64,256,1536"), help="K, the input features")
    parser.add_argument("--n", type=ints, default=ints("16,32,64,384,2048"), help="N, the output features")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--mlp", type=ints, default=None, help="C: the MLP's weight gradients instead")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.mlp:
        print("| threads | tokens | C | c_proj grad_weight (C x 4C) | c_fc grad_weight (4C x C) |  (bytes)")
        print("|---|---|---|---|---|")
        for M, C in itertools.product(args.rows, args.mlp):
            c_proj = linear_scratch(M, 4 * C, C, getattr(torch, args.dtype))["grad_weight"]
            c_fc = linear_scratch(M, C, 4 * C, getattr(torch, args.dtype))["grad_weight"]
            print(f"| {args.threads} | {M} | {C} | {c_proj} | {c_fc} |", flush=True)
        return
    print(f"| threads | M | K | N | forward | grad_input | grad_weight |  (bytes, torch {torch.__version__})")
    print("|---|---|---|---|---|---|---|")
    for M, K, N in itertools.product(args.rows, args.k, args.n):
        s = linear_scratch(M, K, N, getattr(torch, args.dtype))
        print(f"| {args.threads} | {M} | {K} | {N} | {s['forward']} | {s['grad_input']} | {s['grad_weight']} |")


if __name__ == "__main__":
    main()
