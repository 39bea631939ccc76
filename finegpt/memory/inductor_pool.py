"""CPU inductor's no-grad forward, where its memory planning departs from the graph's own order: which
buffers wait in its reuse pool (a buffer whose last use is done is kept for the next allocation of its size
when that does not raise the peak inductor itself estimates) and where its softmax kernel writes over its
input or stores no exp. Each is one small function with its formula and reason, per eval token; notation as in
terms.py. Read by eval_forward.py.
"""

from __future__ import annotations

from finegpt.config import ModelConfig
from finegpt.memory.state import act_size, eval_tokens
from finegpt.run import RunConfig


def blocks_whose_scores_wait(cfg: ModelConfig, run: RunConfig) -> list[int]:
    # CPU inductor, fp32 math attention, no grad: a buffer whose last use is done waits in inductor's pool for
    # the next allocation of its size when that does not raise the graph's peak *as inductor estimates it*.
    # Its estimate counts the scores and their softmax as two fp32 T x T buffers (2 * 4HT per token: the
    # generated kernel writes the softmax in place, one). So a block's scores (4HT) and, where q, k, v are
    # views of c_attn's output, that output (3aC) wait through the block's MLP for the next block's: accepted
    # when the MLP's estimated bytes (10aC + 8 in the first block, 11aC + 8 in the second, 13aC + 8 from the
    # third, + the pooled qkv) + 4HT fit under the estimated peak, a later block's softmax: 2 * 4HT + qkv (3aC)
    # or, split, v's copy (aC) + the residual pieces (aC with two blocks, else 3aC) + the row max (4H).
    # 16-bit softmaxes keep their input: estimate and code agree, nothing waits (2L/32/1h T=512 B=2, measured)
    if not (run.compile and run.device == "cpu" and run.attention == "math" and act_size(run) == 4):
        return []
    C, H, T, a = cfg.n_embd, cfg.n_head, cfg.block_size, act_size(run)
    scores = 4 * H * T
    views = H == 1 or eval_tokens(cfg, run) <= T
    qkv = 3 * a * C if views else 0
    pieces = 1 if cfg.n_layer == 2 else 3
    estimated_peak = 2 * scores + (qkv if views else a * C) + pieces * a * C + 4 * H
    estimated_mlp = [(10, 11, 13)[min(block, 2)] * a * C + 8 + qkv for block in range(cfg.n_layer - 1)]
    return [block for block, mlp in enumerate(estimated_mlp) if mlp + scores <= estimated_peak]


def pooled_scores_mlp_token_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # ... and the largest MLP moment with them, per token: the MLP's real bytes (its hidden 4aC with 2aC beside
    # it in the first block, 3aC split; 3aC in the second; 5aC from the third) + the scores (4HT; one sequence
    # and one head, the softmax's input too) + qkv where it waits (3aC)
    blocks = blocks_whose_scores_wait(cfg, run)
    if not blocks:
        return 0
    C, H, T, a = cfg.n_embd, cfg.n_head, cfg.block_size, act_size(run)
    views = H == 1 or eval_tokens(cfg, run) <= T
    qkv = 3 * a * C if views else 0
    waiting = 4 * H * T + unfused_softmax_input_token_bytes(cfg, run)
    beside = max((2 if views else 3, 3, 5)[min(block, 2)] for block in blocks) * a * C
    return 4 * a * C + beside + waiting + qkv


def pooled_unstored_scores_token_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # 16-bit, one sequence and one head (unstored_exp_token_bytes), 2+ blocks: a block's scores and softmax
    # (2aHT per token) and c_attn's output, whose views q, k, v are (3aC), wait in inductor's pool through the
    # block's MLP for the next block's (4L/32/1h T=512 B=1 pure bf16: at the 3rd block's c_fc matmul)
    if not unstored_exp_token_bytes(cfg, run) or cfg.n_layer < 2:
        return 0
    a = act_size(run)
    return 2 * a * cfg.n_head * cfg.block_size + 3 * a * cfg.n_embd


def unfused_softmax_input_token_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # ... but with one sequence and one head, no grad, fp32: the bmm's (1, T, T) scores and the softmax's
    # (1, 1, T, T) output differ in layout, so inductor does not write the softmax over its input: while the
    # kernel runs, both fp32 T x T tensors are alive beside q, k, v (4HT per token more; 2L/32/1h T=512 B=1,
    # 6L/16/1h T=1024 B=1: generated code); the input is freed before softmax @ v
    if not (run.compile and run.device == "cpu" and run.attention == "math" and act_size(run) == 4):
        return 0
    return 4 * cfg.block_size if run.eval_micro_batch * cfg.n_head == 1 else 0


def unstored_exp_token_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # ... 16-bit with one sequence and one head (B*H = 1), no grad: the softmax's kernel recomputes the exp in
    # its second pass instead of storing it, so no fp32 T x T buffer (4HT per token; generated code of
    # 1L/128/1h T=512 and 4L/32/1h T=512 pure bf16, 1L/128/1h T=128 bf16, each at B=1; B=2 or H=4 store it)
    if run.attention != "math" or act_size(run) != 2 or run.eval_micro_batch * cfg.n_head != 1:
        return 0
    return 4 * cfg.n_head * cfg.block_size
