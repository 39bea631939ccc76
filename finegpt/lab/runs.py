"""Notebook 04's run, rerun without losing the last one: a new run is built beside an earlier one in the
same folder, which stays byte for byte until the new run finishes and replaces it.

Entry points: fresh_run(model_cfg, train_cfg, callback), run_in_progress(out_dir), resume_run(...).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path


def fresh_run(model_cfg, train_cfg, callback=None, hooks=None) -> dict:
    """A new run into train_cfg.out_dir. An earlier run there (a trained model) is kept until this one has
        finished: interrupted or killed, the new run waits in out_dir/overwrite.partial for resume_run. hooks: the
    notebook's own model, schedule or step (finegpt.train.hooks)."""
    from finegpt.train import train

    return train(model_cfg, replace(train_cfg, init_from="scratch"), callback=callback, overwrite=True, hooks=hooks)


def run_in_progress(out_dir) -> Path:
    """Where the newest run of out_dir is: beside the earlier run while it is unfinished, else out_dir."""
    from finegpt.train.rundir import building

    return building(out_dir)


def resume_run(model_cfg, train_cfg, callback=None, hooks=None) -> dict:
    """Continue the newest run of train_cfg.out_dir from its checkpoint; once it finishes, it is the run
    in out_dir (an earlier one kept beside it is replaced only then)."""
    from finegpt.train import train

    where = run_in_progress(train_cfg.out_dir)
    return train(model_cfg, replace(train_cfg, init_from="resume", out_dir=str(where)), callback=callback, hooks=hooks)
