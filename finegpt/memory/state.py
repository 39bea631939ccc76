"""The memory terms a run holds for its whole life, and the element sizes every term reads.

Element sizes and token counts (param_size, act_size, ...); persistent state (weights, gradients, optimizer
states and temporaries, DDP buckets, FSDP's gathered weights, autocast's 16-bit weight copies); and what
nvidia-smi adds outside the allocator's peak. Notation as in terms.py.
"""

from __future__ import annotations

from finegpt.config import GIB, ModelConfig, count_params, param_breakdown
from finegpt.memory.calibration import gpu_measured, measured_overhead, widen
from finegpt.run import RunConfig

MIB = 2**20

# ---- element sizes and token counts ---------------------------------------------------------


def param_size(run: RunConfig) -> int:
    return 2 if run.label == "pure_bf16" else 4  # autocast keeps fp32 master weights


def act_size(run: RunConfig) -> int:
    return 4 if run.label == "fp32" else 2  # matmul outputs (and the logits): 16-bit under autocast or pure bf16


def resid_size(run: RunConfig) -> int:
    return param_size(run)  # residual stream: fp32 + bf16 promotes to fp32 under autocast


def mask_size(run: RunConfig, elem: int) -> int:
    return elem if run.device == "cpu" else 1  # dropout masks: bool on CUDA, input dtype on CPU


def softmax_size(run: RunConfig) -> int:
    # CUDA autocast runs softmax in fp32; CPU autocast keeps it 16-bit
    if run.label == "fp32" or (run.label in ("bf16", "fp16") and run.device == "cuda"):
        return 4
    return 2


def train_tokens(cfg: ModelConfig, run: RunConfig) -> int:
    return run.batch_size * cfg.block_size  # n = B*T per micro-step


def eval_tokens(cfg: ModelConfig, run: RunConfig) -> int:
    return run.eval_micro_batch * cfg.block_size  # n_e = eval_batch_size*T per eval batch


def sharded(nbytes: int, run: RunConfig, *kinds: str) -> int:
    # a rank keeps 1/world_size of what the listed shardings split (ceil: the last shard is padded)
    return -(-nbytes // run.world_size) if run.world_size > 1 and run.sharding in kinds else nbytes


def fsdp(run: RunConfig) -> bool:
    return run.world_size > 1 and run.sharding == "fsdp"


# ---- persistent state -----------------------------------------------------------------------


def weight_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # N * 4 (fp32 master weights; tied lm_head counted once), N * 2 for pure bf16; FSDP keeps 1/world
    return sharded(count_params(cfg, non_embedding=False) * param_size(run), run, "fsdp")


def buffer_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # math attention registers a bool causal mask T*T per layer
    return cfg.n_layer * cfg.block_size**2 if run.attention == "math" else 0


def full_grad_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # one gradient per parameter, in the parameter's dtype: N * 4 (N * 2 pure bf16), unsharded
    return count_params(cfg, non_embedding=False) * param_size(run)


def grads_in_buckets(run: RunConfig) -> bool:
    return run.world_size > 1 and run.sharding == "ddp" and run.gradient_as_bucket_view


def grad_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # this step's gradients per rank: ZeRO-2 and FSDP reduce-scatter them to 1/world; with DDP's
    # gradient_as_bucket_view they are views into the buckets and cost nothing more
    return 0 if grads_in_buckets(run) else sharded(full_grad_bytes(cfg, run), run, "zero2", "fsdp")


def held_grad_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # gradient accumulation: from the 2nd micro-step the previous ones' gradients are held; FSDP2 skips
    # the reduce-scatter on all but the last micro-step, so it holds them full size
    if run.gradient_accumulation_steps == 1:
        return 0
    return full_grad_bytes(cfg, run) if fsdp(run) else grad_bytes(cfg, run)


def optimizer_state_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # AdamW: exp_avg + exp_avg_sq = 2 * param bytes; SGD momentum buffer 1x; plain SGD none
    per = {"adamw_fused": 2, "adamw_foreach": 2, "sgd_momentum": 1, "sgd": 0}[run.optimizer]
    total = per * count_params(cfg, non_embedding=False) * param_size(run)
    return sharded(total, run, "zero1", "zero2", "fsdp")


def decayed_params(cfg: ModelConfig) -> int:
    # nanoGPT's first param group: the 2-D tensors (matmuls, embeddings); biases and norms are the second
    parts, b = param_breakdown(cfg), int(cfg.bias)
    return sum(parts.values()) - parts["layernorm"] - cfg.n_layer * 9 * cfg.n_embd * b


def optimizer_temp_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # foreach AdamW builds a temporary per tensor (the denominator sqrt(v)) for one param group at a
    # time: the decayed group's size, about 4N; the fused kernel updates in place
    if run.optimizer != "adamw_foreach":
        return 0
    return sharded(decayed_params(cfg) * param_size(run), run, "zero1", "zero2", "fsdp")


def ddp_bucket_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # DDP's flat all-reduce buckets hold a copy of every grad (4N), allocated when DDP wraps the model:
    # zero_grad cannot free them. With gradient_as_bucket_view=True the grads are views into them instead
    if run.world_size == 1 or run.sharding != "ddp":
        return 0
    return full_grad_bytes(cfg, run)


def fsdp_param_size(run: RunConfig) -> int:
    # FSDP2's MixedPrecisionPolicy (finegpt.step.mixed_precision) gathers 16-bit weights on GPU; CPU stays fp32
    return 2 if fsdp(run) and run.device == "cuda" and run.label != "fp32" else param_size(run)


def fsdp_gathered_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # FSDP2 gathers weights whole while they work. At the start of backward (and in eval) that is the
    # root's (embeddings / tied lm_head, ln_f: the root is not resharded after forward) and one block's
    # (the last, prefetched for its backward): (V*C + T*C + ln_f + one block) * gathered element size
    if not fsdp(run):
        return 0
    parts, ln_f = param_breakdown(cfg), cfg.n_embd * (1 + int(cfg.bias))
    block = (parts["attention"] + parts["mlp"] + parts["layernorm"] - ln_f) // cfg.n_layer
    root = parts["token_embedding"] + parts["position_embedding"] + ln_f
    return (root + block) * fsdp_param_size(run)


def autocast_copy_bytes(cfg: ModelConfig, run: RunConfig, blocks: int | None = None) -> int:
    # autocast caches a 16-bit copy of every matmul weight (and bias): 2 * (12LC^2 + VC + biases);
    # `blocks` counts how many blocks' copies are alive (checkpointing frees them; lm_head's stays).
    # Compiled, the graph saves the weights' copies for backward, not the biases'
    if run.label not in ("bf16", "fp16") or fsdp_param_size(run) == 2:
        return 0  # fp32, or FSDP2 already gathers 16-bit weights: nothing for autocast to cast
    parts, C, b = param_breakdown(cfg), cfg.n_embd, int(cfg.bias)
    blocks = cfg.n_layer if blocks is None else blocks
    per_block = (parts["attention"] + parts["mlp"]) // cfg.n_layer - (9 * C * b if run.compile else 0)
    return 2 * (blocks * per_block + parts["token_embedding"])  # lm_head is the tied wte


# ---- CPU only: the flash-attention kernel's buffers -----------------------------------------------


def cpu_flash_fallback(cfg: ModelConfig, run: RunConfig) -> bool:
    # eager CPU SDPA with dropout in training runs its math kernel in fp32, not the flash kernel (eval has no
    # dropout, so it stays flash); activations.attention_act_bytes counts what the fallback saves
    return run.device == "cpu" and run.attention == "flash" and cfg.dropout > 0 and not run.compile


def cpu_flash_workspace_bytes(cfg: ModelConfig, run: RunConfig, backward: bool = True) -> int:
    # PyTorch's CPU flash attention (FlashAttentionKernel.cpp) allocates per thread, for q blocks of qS rows
    # (32, 64 from T 192, 256 from T 768) and kv blocks of kvS = min(T, 512): forward fp32 scores + max + sum
    # + output qS*(kvS + 2 + hs); backward fp32 scores and their gradient 2*qS*kvS and the row sums dsum (qS).
    # For 16-bit inputs: forward a 16-bit copy of the scores (qS*kvS); backward 16-bit copies of the scores
    # and of their gradient (2*qS*kvS) and the bf16 matmul's packing scratch (cpu_flash_gemm_scratch_bytes).
    # In training with dropout the math fallback runs instead (cpu_flash_fallback). CUDA's kernels keep none
    if run.device != "cpu" or run.attention != "flash" or (backward and cpu_flash_fallback(cfg, run)):
        return 0
    T, hs = cfg.block_size, cfg.n_embd // cfg.n_head
    qS = min(T, 256 if T >= 768 else 64 if T >= 192 else 32)
    kvS = min(T, 512)
    per_thread = 4 * (2 * qS * kvS + qS if backward else qS * (kvS + 2 + hs))
    reduced, gemm = 0, 0
    if act_size(run) == 2:
        reduced = 2 * (2 * qS * kvS) if backward else 2 * qS * kvS
    if act_size(run) == 2 and backward:  # one scratch buffer for all threads, measured on this CPU where it is
        rule = run.cpu_threads * cpu_flash_gemm_scratch_bytes(qS, kvS)
        gemm = measured_mm_scratch_bytes("flash_backward", T, hs, 0, run.cpu_threads, rule)
    return run.cpu_threads * (per_thread + reduced) + gemm


def cpu_flash_gemm_scratch_bytes(qS: int, kvS: int) -> int:
    # the CPU bf16 matmul inside the flash backward packs its operands into a scratch buffer per call (per
    # thread), measured with the profiler: 128 B per kv column up to 256 columns, then 640 B per q row, + 5 KiB.
    # An upper bound: the buffer is one for all threads and depends on the head size too (2 threads, T = 256:
    # 59,136 B at hs <= 64, 91,904 B at hs = 128), so where torch is at hand the kernel's own is measured
    # (cpu_scratch.flash_backward_scratch_bytes)
    return 5248 + 128 * (kvS if kvS < 256 else 5 * qS)


def cpu_flash_forward_copies_bytes(cfg: ModelConfig, run: RunConfig, tokens: int) -> int:
    # CPU flash forward, 16-bit inputs: beside its workspace the kernel makes two contiguous copies the size of
    # q (tokens*C*a each, k and v) and a per-thread 16-bit kv block (kvS*hs), all freed when it returns; none
    # below T = 64, where a kv block does not fill oneDNN's 64-wide pack
    if run.device != "cpu" or run.attention != "flash" or act_size(run) != 2 or cfg.block_size < 64:
        return 0
    kvS, hs = min(cfg.block_size, 512), cfg.n_embd // cfg.n_head
    return 2 * tokens * cfg.n_embd * 2 + run.cpu_threads * kvS * hs * 2


# oneDNN's 16-bit (bf16) matmul scratch as measured on this CPU: (kind, M, K, N, threads) -> bytes of an
# (M x K) @ (K x N) matmul, kind 'forward' (x @ W^T), 'grad_input' (grad @ W) or 'grad_weight' (grad^T @ x).
# Empty unless finegpt.memory.cpu_scratch (torch) has filled it: estimate() asks it to for CPU runs in a
# process that has torch, so the rules below stay the default and the estimate path stays torch-free
CPU_MM_SCRATCH: dict[tuple[str, int, int, int, int], int] = {}


def measured_mm_scratch_bytes(kind: str, M: int, K: int, N: int, threads: int, rule_bytes: int) -> int:
    # a CPU 16-bit matmul's scratch: measured per shape where this process has measured it (exact: oneDNN picks
    # its blocking per shape above 32 rows, with no closed form), else the closed-form rule's bytes
    return CPU_MM_SCRATCH.get((kind, M, K, N, threads), rule_bytes)


def cpu_bf16_pack_bytes(cfg: ModelConfig, run: RunConfig, tokens: int) -> int:
    # eager CPU, 16-bit, no grad: the MLP's c_proj, input A (tokens x 4C) times weight B (4C x C), keeps oneDNN's
    # scratch while it runs, measured with the profiler (+ 5 KiB): one thread packs B where B <= A, else it
    # copies blocks of at most 32 rows of A (2*4C*min(tokens, 32) + 16*4C); more threads, the smaller of B and
    # a copy of A per thread (an upper bound within a few hundred KiB). CUDA's matmuls keep none
    if run.device != "cpu" or act_size(run) != 2 or run.compile:
        return 0
    K, N = 4 * cfg.n_embd, cfg.n_embd
    if tokens <= 32:
        rule = cpu_bf16_panel_scratch_bytes(tokens, K, N, run.cpu_threads)
    else:
        A, B = 2 * tokens * K, 2 * K * N
        if run.cpu_threads > 1:
            rule = min(run.cpu_threads * A, B) + 5120
        else:
            rule = (B if B <= A else 2 * K * min(tokens, 32) + 16 * K) + 5120
    return measured_mm_scratch_bytes("forward", tokens, K, N, run.cpu_threads, rule)


def cpu_bf16_panel_scratch_bytes(rows: int, K: int, N: int, threads: int) -> int:
    # a 16-bit x @ W^T on CPU over at most 32 rows (x rows x K, W N x K; PyTorch hands it to oneDNN's AMX
    # matmul when rows*K*N > 4096): each thread it uses, one per 32 output columns, packs a 32-column panel
    # of W (2*K*32, K to a multiple of 32) beside an fp32 accumulator of the rows up to a multiple of 16 times
    # min(N, 32) columns, + 384 bytes + 640 a thread. Above 32 rows its blocking search picks other layouts
    # per shape. Measured with `python bench/cpu_mm_scratch.py --threads T --rows 2,8,16,24,32
    # --k 64,96,256,1536 --n 16,32,64,384,2048` (T 1 and 2): exact for K >= 64 (K 16, 32: within 1 KiB)
    if rows * K * N <= 4096:
        return 0  # PyTorch's own kernel, no scratch
    panels = min(threads, -(-N // 32))
    acc = 4 * -(-rows // 16) * 16 * min(N, 32)
    return panels * (2 * -(-K // 32) * 32 * 32 + acc) + 384 + 640 * panels


def cpu_bf16_narrow_grad_input_scratch_bytes(rows: int, inner: int, out: int, threads: int) -> int:
    # a 16-bit input gradient grad @ W on CPU (grad rows x inner, W inner x out) with a narrow output (out <= 64)
    # over at most 32 rows: oneDNN packs W whole in 32-column panels, one a thread at least (2*inner*32 each),
    # + up to 5760 bytes; at out 33 to 64 only up to 8192 inner rows (1 MiB), beyond which it blocks the inner
    # dimension (measured 1.1 to 1.6 MB at inner 16384 to 50304, 2 threads: not modelled). Measured with
    # `python bench/cpu_mm_scratch.py --threads T --rows 2,8,16,32 --k 16,32,64 --n 256,2048,8192,50304`
    # (grad_input's K is this out, N this inner; T 1 and 2): within 6 KiB above, but at one thread, out 64,
    # 16 or 32 rows and inner 8192, where it packs less. Wider outputs and more rows: not modelled (0)
    if rows > 32 or out > 64 or rows * inner * out <= 4096:
        return 0
    if out > 32:
        return 2 * min(inner, 8192) * 64 + 5760
    return 2 * inner * 32 * threads + 5760


def cpu_bf16_mm_wgrad_scratch_bytes(rows: int, tokens: int, cols: int, threads: int) -> int:
    # a 16-bit weight gradient on CPU, grad^T (rows x tokens) @ x (tokens x cols), through oneDNN: each thread
    # reorders its rows of grad^T (2 bytes a row and token) beside 128 bytes a token and 5248 fixed, the
    # threads less 512 bytes apiece. Each thread takes every row where rows <= cols, else its share (blocks
    # of 128 rows from 256 on; over 256 tokens the threads share them otherwise: every row, an upper bound
    # within 25 %); 256 rows at most; one thread rounds rows above 64 to a multiple of 64. Tokens
    # count from 32, and from 512 on 64 bytes a row more. Tokens an odd multiple of 16 (48, 80, ..): 148 bytes
    # a token, 7104 fixed and, a row, 288 (rows <= cols) or 96 (one thread) / 160 (more) beside, 640 less a
    # thread. Measured on the MLP's two shapes (cols = 4 rows: c_proj's, rows = 4 cols: c_fc's) with
    # `python bench/cpu_mm_scratch.py --threads T --mlp 16,32,48,64,96,128,192,256,384
    # --rows 16,32,48,64,96,128,192,256,512,1024,2048,4096` and `--mlp 16,32,64 --rows 24,40,48,80,112,144,176,240`
    # (T 1 and 2): to 256 tokens, c_proj's shape exact (odd multiples of 16 with C >= 96: up to 96 KiB over);
    # c_fc's over by up to 8 KiB to C 128 (C 192: up to 64 KiB), 3 KiB under at C 48, 48 tokens, one thread.
    # At 512 and 1024 tokens within 9 % under to 25 % over. Above, oneDNN blocks the tokens per shape (no
    # closed form; measured 0.3-2.1 MB): counted as 1536 tokens, under where C is 16 (up to 2.6x at 4096)
    if rows * tokens * cols <= 4096:
        return 0  # PyTorch's own kernel, no scratch
    if rows <= cols or threads == 1 or tokens > 256:
        m = rows
    else:
        m = -(-rows // threads) if rows <= 128 else -(-rows // (128 * threads)) * 128
    if threads == 1 and m > 64:
        m = -(-m // 64) * 64
    m, k = min(m, 256), -(-tokens // 16) * 16
    if k > 32 and k % 32:
        per_row = 288 if rows <= cols else (96 if threads == 1 else 160)
        return threads * ((148 + 2 * m) * k + per_row * m + 7104) - 640 * (threads - 1)
    k = min(max(k, 32), 1536)
    return threads * ((128 + 2 * m) * k + (64 * m if k >= 512 else 0) + 5248) - 512 * (threads - 1)


def cpu_bf16_wgrad_scratch_bytes(cfg: ModelConfig, run: RunConfig, tokens: int, rows: int, cols: int) -> int:
    # eager CPU, 16-bit matmuls: a weight gradient, grad_out^T (rows x tokens) @ input (tokens x cols), goes
    # through oneDNN, which reorders the transposed operand per thread (cpu_bf16_mm_wgrad_scratch_bytes)
    if run.device != "cpu" or act_size(run) != 2 or run.compile:
        return 0
    rule = cpu_bf16_mm_wgrad_scratch_bytes(rows, tokens, cols, run.cpu_threads)
    return measured_mm_scratch_bytes("grad_weight", rows, tokens, cols, run.cpu_threads, rule)


def cpu_bf16_c_attn_backward_scratch_bytes(cfg: ModelConfig, run: RunConfig) -> int:
    # eager CPU 16-bit: c_attn's two matmuls keep oneDNN's scratch (measured on this CPU where it is). Its weight
    # gradient, grad^T (3C x n) @ x (n x C), made in 16-bit (3C^2 a) where the gradients count it at p (1st
    # micro-step); its input gradient, grad (n x 3C) @ W (3C x C), before the weight's with a bias (AddmmBackward0)
    n, C, a, p, threads = train_tokens(cfg, run), cfg.n_embd, act_size(run), param_size(run), run.cpu_threads
    if run.device != "cpu" or a != 2 or run.compile:
        return 0
    counted = 3 * C * C * p if run.gradient_accumulation_steps == 1 else 0
    rule_w = cpu_bf16_mm_wgrad_scratch_bytes(3 * C, n, C, threads)
    weight = 3 * C * C * a - counted + measured_mm_scratch_bytes("grad_weight", 3 * C, n, C, threads, rule_w)
    pack_in = measured_mm_scratch_bytes("grad_input", n, 3 * C, C, threads, 6 * C * C + 5120)
    inputs = pack_in - counted if cfg.bias else 3 * C * C * a - counted + pack_in
    return max(0, weight, inputs)


def compiled_wgrad_scratch_bytes(cfg: ModelConfig, run: RunConfig, rows: int, cols: int) -> int:
    # compiled CPU, 16-bit: inductor's backward graph calls the same aten::mm for a weight gradient, with
    # oneDNN's same scratch (cpu_bf16_mm_wgrad_scratch_bytes; measured on this CPU where it is)
    if run.device != "cpu" or act_size(run) != 2 or not run.compile:
        return 0
    n = train_tokens(cfg, run)
    rule = cpu_bf16_mm_wgrad_scratch_bytes(rows, n, cols, run.cpu_threads)
    return measured_mm_scratch_bytes("grad_weight", rows, n, cols, run.cpu_threads, rule)


def cpu_bf16_head_grad_copy_bytes(cfg: ModelConfig, run: RunConfig, tokens: int, compiled: bool = False) -> int:
    # eager CPU, 16-bit: the LM head's weight gradient over at most 32 tokens with C <= 32 (the shapes measured)
    # keeps a copy of its V x C output a thread in oneDNN, C padded to a multiple of 32 (`compiled`: inductor's
    # backward graph calls the same aten::mm). Eager, the measured scratch of that shape where there is one
    if run.device != "cpu" or act_size(run) != 2 or (run.compile and not compiled):
        return 0
    C, V = cfg.n_embd, cfg.vocab_size
    rule = 0 if tokens > 32 or C > 32 else run.cpu_threads * V * (-(-C // 32) * 32) * 2
    return rule if compiled else measured_mm_scratch_bytes("grad_weight", V, tokens, C, run.cpu_threads, rule)


# ---- outside the allocator's peak: what nvidia-smi adds, each a (low, high) range ---------------


def cuda_context_range(run: RunConfig) -> tuple[int, int]:
    # CUDA context + loaded kernels: ~0.3 GiB with lazy module loading (PyTorch's default on CUDA >= 11.7)
    # to 0.7 GiB for one tensor on older stacks (discuss.pytorch.org/t/73021: 723 MiB). Compiled, inductor's
    # Triton kernels load as more modules: 0.4-1.0 GiB. A GPU measurement (calibration.json) widens it
    low, high = (0.4, 1.0) if run.compile else (0.3, 0.8)
    key = "cuda_context_gib_compiled" if run.compile else "cuda_context_gib_eager"
    low, high = widen((low, high), measured_overhead(key))
    return int(low * GIB), int(high * GIB)


def cublas_workspace_range(run: RunConfig) -> tuple[int, int]:
    # allocated through the caching allocator, per cuBLAS handle (the forward's thread and autograd's
    # backward thread each have one): cuBLAS 8 MiB (discuss.pytorch.org/t/178671: 8519680 B) + cuBLASLt
    # 1-32 MiB (pytorch/pytorch#120925: 32 MiB on Hopper); the CPU measurements cannot see them
    return 2 * 9 * MIB, 2 * 40 * MIB


def reserve_factor_range(run: RunConfig) -> tuple[float, float]:
    # the caching allocator keeps freed blocks for reuse and rounds requests up (to 512 B and 2 MiB
    # segments): reserved = allocated * 1.05-1.20 for static shapes. A GPU measurement widens it
    key = "reserved_factor_compiled" if run.compile else "reserved_factor_eager"
    return widen((1.05, 1.20), measured_overhead(key))


def nccl_bytes(run: RunConfig) -> int:
    # NCCL's buffers: about 3 GiB per GPU seen with 8-GPU DDP, scaled down for fewer ranks
    return int(3 * GIB * (run.world_size - 1) / 7) if run.world_size > 1 else 0


def compiled_uncertainty_bytes(compiled_terms_bytes: int, run: RunConfig) -> int:
    # a CUDA run's compiled terms, while only CPU inductor has measured them: +5 % (the CPU grid's
    # acceptance); none once a GPU has measured them, or for a CPU run (the backend they were measured on)
    return 0 if run.device == "cpu" or gpu_measured() else compiled_terms_bytes // 20
