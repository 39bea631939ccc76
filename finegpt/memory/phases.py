"""The moments of a training step when memory can peak, and the terms alive at each: finegpt.step's order
(a micro-step fetches its batch, runs forward, prefetches the next batch, runs backward), the optimizer
step, and eval. report.estimate() sums the terms (terms.py) phase by phase with these.
Entry point: phases(T, run) -> {phase: {term name: bytes}}.
"""

from __future__ import annotations

from finegpt.run import RunConfig


def phases(T: dict[str, int], run: RunConfig) -> dict[str, dict[str, int]]:
    """For each peak, the names of the terms alive at that moment (values from T), in finegpt.step's order:
    a micro-step fetches its batch, runs forward, prefetches the next batch, runs backward; its logits and
    batch stay bound until the next micro-step rebinds them or forward_backward returns."""
    pick = lambda *names: {k: T[k] for k in names}  # noqa: E731
    persistent = pick("weights", "buffers", "optimizer states", "DDP buckets", "FSDP gathered weights")
    acts = pick("activations (all layers)", "final norm + embeddings", "batch (x, y, positions)")
    prefetched = pick("next batch (prefetched)")
    single = run.gradient_accumulation_steps == 1
    graph_grads = run.compile and run.activation_checkpointing and not run.loss_chunks
    copies_kept = (
        "autocast copies kept for backward" if run.activation_checkpointing else "autocast 16-bit weight copies"
    )
    # from the 2nd micro-step on, the previous micro-step's logits are bound until this forward returns
    previous_logits = {} if single else pick("logits still bound (last micro-step)")
    bound = pick("logits still bound (last micro-step)", "batch still bound (x, y)")
    stages = [  # the moments of a training step when memory can peak
        {  # end of forward (compiled checkpointing, flash with dropout: the safe softmax's zeros are saved)
            **pick("autocast 16-bit weight copies", "logits (forward)", "safe softmax zeros (compiled recompute)"),
            **pick("LM head matmul scratch (compiled forward)"),
            **acts,
            **previous_logits,
        },
        # start of backward (the chunked loss: one chunk's backward, its logits recomputed)
        {
            **pick(copies_kept, "logits + cross-entropy", "loss chunk (backward, recomputed)"),
            **pick("LM head gradient matmul copy (CPU 16-bit)", "safe softmax zeros (compiled recompute)"),
            **acts,
            **prefetched,
        },
        {  # end of backward: the grads, the tied embedding's dense gradient, this micro-step's logits and batch
            # (compiled checkpointing: the backward graph returns new gradients on every micro-step, added into
            # .grad after it)
            "gradients (this step)": T["gradients (this step)"] if single or graph_grads else 0,
            **pick("embedding gradient (dense, tied)", "LM head gradient (waiting for the tied sum)"),
            **pick("LM head gradient (compiled, before the tied sum)"),
            **pick("logits gradient (kept for the tied sum)", "logits gradient (compiled, kept to the tied sum)"),
            **pick("first checkpoint (compiled, to the end of backward)"),
            **pick("gradients (this micro-step, compiled graph)"),
            **bound,
            **prefetched,
        },
    ]
    if T["gradients + the first block's c_attn backward"]:  # the last matmul of backward, every grad but wpe's
        stages.append({**pick("gradients + the first block's c_attn backward"), **bound, **prefetched})
    if T["gradients + the first block's MLP backward"]:  # the blocks above done, the first block's saved
        names = ("LM head gradient (before the blocks' backward)", "embedding dropout mask", "batch (x, y, positions)")
        stages.append({**pick("gradients + the first block's MLP backward", *names), **bound, **prefetched})
    if T["softmax transients (compiled forward, last block)"]:  # compiled, the last block's softmax in forward
        names = ("autocast 16-bit weight copies", "activations (all layers)", "batch (x, y, positions)")
        stages.append({**pick("softmax transients (compiled forward, last block)", *names), **previous_logits})
    if T["attention forward (CPU flash fallback, last block)"]:  # eager CPU flash with dropout, forward
        # every block's activations (the last one's counted whole: flash_fallback_forward_bytes takes off what
        # it has not made yet) and the embeddings' dropout mask; ln_f and the logits come later
        names = ("attention forward (CPU flash fallback, last block)", "autocast 16-bit weight copies")
        saved = ("activations (all layers)", "embedding dropout mask", "batch (x, y, positions)")
        stages.append({**pick(*names, *saved), **previous_logits})
    stages += _block_backward_stages(T, run, pick, acts, bound, prefetched)
    no_gather = {k: v for k, v in persistent.items() if k != "FSDP gathered weights"}
    return {
        "train": {
            **persistent,
            **pick("gradients (previous micro-step)"),
            **max(stages, key=lambda s: sum(s.values())),
        },
        # forward_backward has returned: its logits and batch are freed, the prefetched batch is not
        "optimizer": {**no_gather, **pick("gradients (this step)", "optimizer-step temporaries"), **prefetched},
        "eval": {**persistent, **prefetched, **pick("eval forward (no grad)")},
        # iter 0: no step has run, so no optimizer state and nothing prefetched
        "first_eval": {**pick("weights", "buffers", "DDP buckets", "FSDP gathered weights", "eval forward (no grad)")},
    }


def _block_backward_stages(T: dict[str, int], run: RunConfig, pick, acts: dict, bound: dict, prefetched: dict):
    """The blocks' backward moments: the last block's MLP and attention backward, or (checkpointing) a block
    recomputed, with the compiled graph's own order."""
    stages = []
    if not run.activation_checkpointing:  # the last block's MLP backward, every activation still saved
        # ln_f's backward has run: eager, of the final norm + embeddings term only the embeddings' dropout mask;
        # compiled, what compiled_head_at_blocks_bytes keeps
        compiled_head = "final norm + embeddings (compiled, at the blocks' backward)"
        head = compiled_head if run.compile else "embedding dropout mask"
        saved = pick("activations (all layers)", head, "batch (x, y, positions)")
        stages.append(
            {
                **pick("autocast copies kept (last MLP backward)", "MLP backward transients (last block)"),
                **pick("LM head gradient (before the blocks' backward)"),
                **pick("logits gradient (compiled, kept to the tied sum)", "c_proj output gradient (compiled dropout)"),
                **saved,
                **bound,
                **prefetched,
            }
        )
    # the last block's attention backward (checkpointing recomputes it: see below)
    if T["activations (last attention backward)"] and not run.activation_checkpointing:
        stages.append(
            {
                **pick("autocast copies kept (last attention backward)", "softmax backward (math attention)"),
                **pick("activations (last attention backward)", "CPU flash-attention workspace"),
                **pick("flash-attention backward gradients (q, k, v, output, residual)"),
                **pick("math-attention backward gradients (v, output, residual)"),
                **pick("gradients before the last attention backward", "batch (x, y, positions)"),
                **pick("logits gradient (compiled, kept to the tied sum)"),
                **bound,
                **prefetched,
            }
        )
    if run.activation_checkpointing:
        stages += _recompute_stages(T, run, pick, acts, bound, prefetched)
    return stages


def _recompute_stages(T: dict[str, int], run: RunConfig, pick, acts: dict, bound: dict, prefetched: dict):
    """Checkpointing: a block recomputed, the last (all checkpoints) or the first (all grads); compiled, the one
    backward graph's own moments (recompute.py)."""
    stages = [
        {
            **pick("autocast copies (recomputed block)", "checkpoints + recomputed block (worst block)"),
            **pick("embedding dropout mask", "batch (x, y, positions)"),
            **pick(
                max(
                    (
                        "recompute transients (MLP backward)",
                        "attention backward (recomputed block)",
                    ),
                    key=T.get,
                )
            ),
            **bound,
            **prefetched,
            "LM head gradient": T["LM head gradient"],
        }
    ]
    if not run.compile and T["attention backward (recomputed block)"]:  # eager: the MLP's backward has run and
        # freed its weights' 16-bit copies before the recomputed attention's backward
        attention = {k: v for k, v in stages[0].items() if k != "recompute transients (MLP backward)"}
        attention.pop("autocast copies (recomputed block)", None)
        attention.update(pick("attention backward (recomputed block)", "autocast copies (recomputed attention)"))
        stages[0].pop("attention backward (recomputed block)", None)
        stages[0].update(pick("recompute transients (MLP backward)"))
        stages.append(attention)
    if T["attention forward (CPU flash fallback, recomputed block)"]:  # eager CPU flash with dropout: the
        # recomputed block's fp32 math fallback in forward, before its MLP is recomputed (6L/16/2h T=128 bf16)
        names = ("checkpoints + recomputed block (worst block)", "autocast copies (recomputed attention)")
        names += ("attention forward (CPU flash fallback, recomputed block)", "LM head gradient")
        stages.append({**pick(*names, "embedding dropout mask", "batch (x, y, positions)"), **bound, **prefetched})
    if T["attention weights (recompute, math)"]:  # eager: inside a block's recompute, at its T x T weights
        names = ("attention weights (recompute, math)", "autocast copies (recomputed attention)", "LM head gradient")
        stages.append({**pick(*names, "embedding dropout mask", "batch (x, y, positions)"), **bound, **prefetched})
    if run.compile:  # one backward graph: the logits' gradient, not the LM head's, the logits still bound,
        # and ln_f's output, waiting for the tied sum's addmm (chunked: the loss is done)
        head = () if run.loss_chunks else ("final norm + embeddings",)
        kept = pick("logits gradient (kept for the tied sum)", "logits still bound (last micro-step)", *head)
        kept.update(pick("LM head gradient (compiled, before the tied sum)"))  # autocast: kept in its place
        extra = pick("softmax exp (compiled recompute, pooled)", "dropout attention (compiled recompute)")
        extra.update(pick("safe softmax zeros (compiled recompute)", "next block's scores (compiled recompute)"))
        extra.update(pick("attention output copies (compiled recompute)"))
        # the chunked loss (eager) has made the LM head's gradient before the graph runs: alive through it
        # (3L/96/4h T=128 B=2 fp32 chunks 4: the bottom block's MLP backward)
        stages[-1].update({**kept, **extra, "LM head gradient": T["LM head gradient"] if run.loss_chunks else 0})
        if T["fused dropout softmax (compiled recompute)"]:  # one fused kernel, no MLP
            fused = {k: v for k, v in stages[-1].items() if k != "recompute transients (MLP backward)"}
            stages.append({**fused, **pick("fused dropout softmax (compiled recompute)")})
        if T["block above's T x T buffers (compiled pool)"]:  # a middle block's MLP backward, the next block's
            # scores not made yet
            middle = {k: v for k, v in stages[0].items() if k != "next block's scores (compiled recompute)"}
            stages.append({**middle, **pick("block above's T x T buffers (compiled pool)")})
    return stages + _compiled_recompute_stages(T, run, pick, acts, prefetched)


def _compiled_recompute_stages(T: dict[str, int], run: RunConfig, pick, acts: dict, prefetched: dict):
    """Compiled checkpointing: the backward graph's own moments at a recomputed block's attention, top or bottom,
    and at its first matmul (recompute.py)."""
    stages = []
    if T["softmax (compiled recompute)"]:  # the top block's attention recomputed, every checkpoint held
        stages.append(
            {
                **pick("softmax (compiled recompute)", "next batch (prefetched)"),
                # the chunked loss (eager) has made the LM head's gradient; else the graph makes it last
                "LM head gradient": T["LM head gradient"] if run.loss_chunks else 0,
                **pick("logits gradient (kept for the tied sum)"),
                **pick("LM head gradient (compiled, before the tied sum)"),
                **pick("logits still bound (last micro-step)"),
                **acts,
            }
        )
    if T["softmax (compiled recompute, bottom block)"]:  # the bottom block's attention recomputed, the blocks
        # above done, and what inductor's pool keeps for its MLP
        head = () if run.loss_chunks else ("final norm + embeddings",)
        names = ("softmax (compiled recompute, bottom block)", "MLP hidden gradient (compiled pool, bottom block)")
        stages.append(
            {
                **pick(*names, "embedding dropout mask", "batch (x, y, positions)", *head, "next batch (prefetched)"),
                "LM head gradient": T["LM head gradient"] if run.loss_chunks else 0,
                **pick("logits gradient (kept for the tied sum)", "LM head gradient (compiled, before the tied sum)"),
                **pick("logits still bound (last micro-step)"),
            }
        )
    if T["flash-attention backward (compiled recompute)"]:  # the top block's, every checkpoint held
        names = ("flash-attention backward (compiled recompute)", "logits gradient (kept for the tied sum)")
        stages.append(
            {
                **pick(*names, "LM head gradient (compiled, before the tied sum)"),
                **pick("activations (all layers)", "batch (x, y, positions)"),
                **pick("logits still bound (last micro-step)", "next batch (prefetched)"),
                # the chunked loss (eager) has made the LM head's gradient
                "LM head gradient": T["LM head gradient"] if run.loss_chunks else 0,
            }
        )
    if T["tied sum addmm (compiled, checkpointing)"]:  # the graph's last matmul, every block's gradient made
        names = ("gradients (this step)", "tied sum addmm (compiled, checkpointing)")
        names += ("logits gradient (kept for the tied sum)", "logits still bound (last micro-step)")
        stages.append({**pick(*names, "batch still bound (x, y)", "next batch (prefetched)")})
    if T["LM head gradient matmul (compiled, checkpointing)"]:  # the graph's first matmul, every copy made
        names = ("autocast 16-bit weight copies", "LM head gradient matmul (compiled, checkpointing)")
        stages.append({**pick(*names, "logits still bound (last micro-step)"), **acts, **prefetched})
    return stages
