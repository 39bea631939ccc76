"""The terms of a torch.compile'd step's backward graph that its generated code (CPU inductor) shows and the
eager step does not have: the logits' gradient kept to the tied sum, this micro-step's gradients as the graph's
outputs, dropout's own gradient buffer, the LM head's gradient made before the blocks'. Each is one small function
with its formula and reason (bytes per rank); report.py places them. Notation as in terms.py.
"""

from __future__ import annotations

from finegpt.config import ModelConfig
from finegpt.memory.activations import head_bytes
from finegpt.memory.eval_forward import compiled_head_mm_scratch_bytes
from finegpt.memory.state import (
    act_size,
    cpu_bf16_head_grad_copy_bytes,
    full_grad_bytes,
    measured_mm_scratch_bytes,
    param_size,
    train_tokens,
)
from finegpt.run import RunConfig


def compiled_logits_grad_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # compiled without autocast (fp32, pure bf16) or the chunked loss: the backward graph makes the logits'
    # gradient (n*V*a) first and keeps it to its last op, an addmm of the LM head's weight gradient into the tied
    # sum, so it is alive through every block's backward. Under autocast the graph makes the LM head's 16-bit
    # gradient at once (head_grad_before_blocks_bytes) and frees it. Checkpointing: compiled_ckpt_logits_grad_bytes
    if not run.compile or run.loss_chunks or run.activation_checkpointing or param_size(run) != act_size(run):
        return 0
    return train_tokens(cfg, run) * cfg.vocab_size * act_size(run)


def compiled_head_mm_forward_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # compiled on CPU, 16-bit, the full loss: the forward graph's LM head mm keeps oneDNN's scratch while it
    # runs (compiled_head_mm_scratch_bytes over the micro-batch's tokens), beside the logits it writes and, from
    # the 2nd micro-step, the last micro-step's still bound: the end of forward outweighs the start of backward
    # (3aV) where the scratch exceeds aV (75,392 B beside 2 x 65,536 B: 6L/16/1h T=32 V=512 B=2 pure bf16 acc 2)
    return compiled_head_mm_scratch_bytes(cfg, run, train_tokens(cfg, run))


def compiled_micro_step_grad_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # compiled, from the 2nd micro-step: the backward graph returns this micro-step's gradients as new tensors,
    # all alive at its end beside the ones held from before, until autograd adds them in (full_grad_bytes less
    # the tied weight's, whose in-graph dense gradient embedding_grad_bytes counts). The first micro-step's
    # become the .grad themselves ("gradients (this step)"). So too checkpointed with the chunked loss (2L/64/4h
    # T=32 V=8192 B=2 pure bf16 acc 2 chunks 4: the blocks' at the graph's end); with the full loss phases.py
    # counts every gradient there
    full_loss_ckpt = run.activation_checkpointing and not run.loss_chunks
    if not run.compile or full_loss_ckpt or run.gradient_accumulation_steps == 1:
        return 0
    return full_grad_bytes(cfg, run) - cfg.vocab_size * cfg.n_embd * param_size(run)


def compiled_dropout_grad_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # compiled with dropout: the gradient of c_proj's output is the dropout's backward into a buffer of its own
    # (n*a*C), alive beside the residual stream's gradient through the last block's MLP backward
    return train_tokens(cfg, run) * cfg.n_embd * act_size(run) if run.compile and cfg.dropout > 0 else 0


def compiled_head_at_blocks_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # compiled, not checkpointed: what of the final norm + embeddings term (head_bytes) is still saved at the last
    # block's MLP backward. With the chunked loss, none: its eager backward has freed ln_f's output (n*C*r) and the
    # graph runs ln_f's backward first, which frees its input (the last block's output, n*C*r) and its mean and
    # rstd (1L/256/4h T=1024 B=1 pure bf16 chunks 4: 2aC per token less). Without it, the whole term
    if not run.compile or run.activation_checkpointing:
        return 0
    return 0 if run.loss_chunks else head_bytes(cfg, run)


def compiled_head_grad_scratch_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # compiled under autocast on CPU, the full loss, not checkpointed: the backward graph's LM head weight
    # gradient, an aten::mm of the logits' gradient (V x n, transposed) and ln_f's output, keeps oneDNN's scratch
    # while it runs, measured on this CPU where it is (337,664 B at V 512, 256 tokens, C 16, 2 threads:
    # 6L/16/1h T=128 B=2 bf16), else the eager rule (cpu_bf16_head_grad_copy_bytes)
    if not run.compile or run.activation_checkpointing or run.loss_chunks or run.device != "cpu":
        return 0
    if act_size(run) != 2 or act_size(run) == param_size(run):
        return 0
    n, V, C = train_tokens(cfg, run), cfg.vocab_size, cfg.n_embd
    rule = cpu_bf16_head_grad_copy_bytes(cfg, run, n, compiled=True)
    return measured_mm_scratch_bytes("grad_weight", V, n, C, run.cpu_threads, rule)


def head_grad_before_blocks_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # the LM head's gradient, made before the blocks' backward: V*C*p eager or from the chunked loss (eager,
    # cast to the weight's dtype after its last chunk). Compiled: the 16-bit one (V*C*a) under autocast; none
    # without (the logits' gradient waits for the tied sum instead: compiled_logits_grad_bytes)
    V, C = cfg.vocab_size, cfg.n_embd
    if not run.compile or run.loss_chunks:
        return V * C * param_size(run)
    return 0 if compiled_logits_grad_bytes(cfg, run) else V * C * act_size(run)


def compiled_c_attn_grad_copy_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # compiled under autocast: the first block's c_attn weight gradient comes out of its mm in 16-bit
    # ((3C^2 + 3C bias) * a) and the graph's last kernel, the one that makes the embedding's dense gradient,
    # casts it into the fp32 gradient the graph returns: both alive there. fp32 and pure bf16 return the mm's
    # own output (checkpointing: recompute.py's)
    if not run.compile or run.activation_checkpointing or act_size(run) == param_size(run):
        return 0
    C = cfg.n_embd
    return (3 * C * C + 3 * C * int(cfg.bias)) * act_size(run)


def compiled_last_kernel_saved_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # compiled, not checkpointed: the forward tensors the backward graph's last kernel (the first block's ln_1
    # backward fused with the embeddings' dense gradients) still reads, freed after it. Under autocast ln_1's
    # fp32 normalized input and its rstd (n*C*4 + 4n); else the embeddings' outputs, from which it recomputes
    # the block's input, and ln_1's mean and rstd (n*C*a + T*C*a + 2na). Where the logits' gradient waits for
    # the tied sum (compiled_logits_grad_bytes), ln_f's output (n*C*a) too, saved for that final addmm
    if not run.compile or run.activation_checkpointing:
        return 0
    n, C, a = train_tokens(cfg, run), cfg.n_embd, act_size(run)
    saved = n * C * 4 + 4 * n if a < param_size(run) else n * C * a + cfg.block_size * C * a + 2 * n * a
    return saved + (n * C * a if compiled_logits_grad_bytes(cfg, run) else 0)


def compiled_last_kernel_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # what the backward graph's last kernel holds beside the gradients and the embeddings' dense one: the two
    # terms above
    return compiled_c_attn_grad_copy_bytes(cfg, run) + compiled_last_kernel_saved_bytes(cfg, run)
