"""Data: sources -> tokenizers -> token shards; random-window batches for training.

Entry points: get_tokenizer, iter_documents, prepare, write_shard, read_shard, load_meta, BatchLoader.
"""

from finegpt.data.loader import BatchLoader
from finegpt.data.prepare import prepare
from finegpt.data.shards import load_meta, read_shard, write_shard
from finegpt.data.sources import iter_batches, iter_documents, resolve_source
from finegpt.data.tokenizers import get_tokenizer

__all__ = [
    "BatchLoader",
    "get_tokenizer",
    "iter_batches",
    "iter_documents",
    "load_meta",
    "prepare",
    "read_shard",
    "resolve_source",
    "write_shard",
]
