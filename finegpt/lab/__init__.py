"""The lab: what carries notebooks 01 -> 05 from one to the next, and what each proves.

A notebook's first cells call pick_mode(MODE), settings(MODE, gpu), paths(MODE), start(notebook, ...)
and check(clock); its last cell calls clock.done(). Rooms: folder (modes, the lab folder), plan
(what each notebook does per mode), clock (expected and actual time), inputs (found / missing, and
the fix), evidence (measurements of what a lesson showed), runs (04's run, rerun without losing the last),
prose (numbers the text states, printed by name; the guide's claims quoted with a verdict), student
(answers that passed their check, handed in for the notebooks after).
"""

from finegpt.lab.clock import Clock, Device, expected_s, start
from finegpt.lab.evidence import (
    attention_weights,
    corpus_words,
    head_scores,
    real_word_share,
    shakespeare_as_fineweb,
    shard_text,
)
from finegpt.lab.folder import MODES, LabPaths, choose_home, home, on_colab, paths, pick_mode
from finegpt.lab.inputs import Found, check, find_checkpoint, find_shards
from finegpt.lab.plan import LabSettings, prepare_args, probe_configs, run_configs, settings
from finegpt.lab.prose import claim, show
from finegpt.lab.runs import fresh_run, resume_run, run_in_progress
from finegpt.lab.student import hand_in, handed_in

__all__ = [
    "MODES",
    "Clock",
    "Device",
    "Found",
    "LabPaths",
    "LabSettings",
    "attention_weights",
    "check",
    "choose_home",
    "claim",
    "corpus_words",
    "expected_s",
    "find_checkpoint",
    "find_shards",
    "fresh_run",
    "hand_in",
    "handed_in",
    "head_scores",
    "home",
    "on_colab",
    "paths",
    "pick_mode",
    "prepare_args",
    "probe_configs",
    "real_word_share",
    "resume_run",
    "run_in_progress",
    "run_configs",
    "settings",
    "shakespeare_as_fineweb",
    "shard_text",
    "show",
    "start",
]
