# GPT-2 small (124M) on FineWeb, nanoGPT's recipe: ~0.5M tokens per step.
#   finegpt prepare --source fineweb --name sample-10BT --tokens 10e9 --out data/fineweb
#   torchrun --standalone --nproc_per_node=8 -m finegpt train configs/gpt2_124m.py
data_dir = 'data/fineweb'
out_dir = 'out-gpt2-124m'
n_layer = 12
n_head = 12
n_embd = 768
block_size = 1024
bias = False
batch_size = 16
gradient_accumulation_steps = 32   # 16 x 1024 x 32 = 524,288 tokens per step, split across GPUs
max_iters = 19073                  # 10B tokens / 524,288 = one pass over sample-10BT
lr_decay_iters = 19073
warmup_iters = 715
learning_rate = 6e-4
min_lr = 6e-5
weight_decay = 0.1
eval_interval = 250
eval_iters = 50
log_interval = 10
compile = True
