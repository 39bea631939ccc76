"""Is my model as good as GPT-2? Val loss and perplexity on prepared shards, OpenAI's GPT-2 loaded
into finegpt's GPT as a baseline, and HellaSwag completion accuracy.

Entry points: evaluate (loss.py), load_gpt2 (gpt2.py), hellaswag (hellaswag.py).
"""

from finegpt.eval.gpt2 import GPT2_SIZES, load_gpt2
from finegpt.eval.hellaswag import hellaswag
from finegpt.eval.loss import evaluate, shard_info

__all__ = ["evaluate", "shard_info", "load_gpt2", "GPT2_SIZES", "hellaswag"]
