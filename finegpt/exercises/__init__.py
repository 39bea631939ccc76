"""Build it yourself: checkers for the notebooks' exercises. Each check_* runs your function on seeded
inputs against finegpt's own version (computed first, on the checker's own copies) and prints ✓, one
hint naming the mistake, or that the exercise is not attempted yet. The student's code runs with a time
limit (check_x(answer, time_limit_s=10)) and whatever it raises is reported, so a check never hangs and
never raises, and a notebook with its exercises unanswered still runs.

01 data:     check_shard_header, check_shard_reader, check_bytes_per_token
02 model:    check_param_count, check_mlp, check_block, check_causal_attention
03 memory:   check_optimizer_step_bytes, check_logits_bytes, check_largest_batch
04 train:    check_lr_schedule, check_optimizer_step
05 sample:   check_top_k, check_top_p, check_kv_decode_step
Worked solutions: notebooks/solutions/.
"""

from finegpt.exercises.attention import check_causal_attention
from finegpt.exercises.check import NOT_ATTEMPTED, Hint
from finegpt.exercises.data import check_bytes_per_token, check_shard_header, check_shard_reader
from finegpt.exercises.kv import check_kv_decode_step
from finegpt.exercises.memory import check_largest_batch, check_logits_bytes, check_optimizer_step_bytes
from finegpt.exercises.model import check_block, check_mlp, check_param_count
from finegpt.exercises.sample import check_top_k, check_top_p
from finegpt.exercises.train import check_lr_schedule, check_optimizer_step

__all__ = [
    "NOT_ATTEMPTED",
    "Hint",
    "check_block",
    "check_bytes_per_token",
    "check_causal_attention",
    "check_kv_decode_step",
    "check_largest_batch",
    "check_logits_bytes",
    "check_lr_schedule",
    "check_mlp",
    "check_optimizer_step",
    "check_optimizer_step_bytes",
    "check_param_count",
    "check_shard_header",
    "check_shard_reader",
    "check_top_k",
    "check_top_p",
]
