# The popular guide's "best config for a 24 GB GPU", exactly as published.
# It claims ~160M parameters and ~20-22 GB on one RTX 4090. Check it:
#   finegpt memory configs/guide_24gb.py --gpu 4090
out_dir='out-fineweb-160M'; eval_interval=1000; eval_iters=200; log_interval=100
always_save_checkpoint=True; wandb_log=True; wandb_project='fineweb'; wandb_run_name='160M-fineweb'
dataset='fineweb'; gradient_accumulation_steps=16; batch_size=32; block_size=1024
n_layer=10; n_head=10; n_embd=640; dropout=0.0; learning_rate=6e-4
max_iters=50000; warmup_iters=2000; lr_decay_iters=50000; min_lr=6e-5; beta2=0.99
