"""Data: sources -> tokenizers -> token shards; batches for training (each window once per epoch, or random);
what a token budget reads.

Entry points: get_tokenizer, iter_documents, prepare, write_shard, read_shard, load_meta, BatchLoader,
read_budget, measure_coverage, coverage_table.
"""

from finegpt.data.budget import coverage_table, measure_coverage, read_budget
from finegpt.data.loader import BatchLoader
from finegpt.data.prepare import prepare
from finegpt.data.shards import load_meta, read_shard, write_shard
from finegpt.data.sources import iter_batches, iter_documents, resolve_source
from finegpt.data.tokenizers import get_tokenizer

__all__ = [
    "BatchLoader",
    "coverage_table",
    "get_tokenizer",
    "iter_batches",
    "iter_documents",
    "load_meta",
    "measure_coverage",
    "prepare",
    "read_budget",
    "read_shard",
    "resolve_source",
    "write_shard",
]
