"""Turn measurements into calibration.json: the benches call these after measuring.

fit_compiled(rows) reads how many V-wide tensors a compiled step keeps from measured peaks (the
coefficients of the two compiled logits terms); fit_eager_cuda(rows) reads the bytes per logit an eager
CUDA step keeps; write(updates) merges sections into the file atomically.
Entry points: fit_compiled, fit_eager_cuda, write.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
from pathlib import Path

from finegpt.config import ModelConfig
from finegpt.memory import calibration, terms
from finegpt.memory.report import estimate
from finegpt.run import RunConfig


def _copies(measured: int, predicted: int, term_bytes: int, coefficient: float, per_copy_bytes: int) -> float:
    # measured = (predicted - the term) + copies * per copy: solve for copies
    return (measured - (predicted - term_bytes)) / per_copy_bytes if per_copy_bytes else coefficient


def fit_compiled(rows: list[tuple[ModelConfig, RunConfig, dict]]) -> dict[str, float]:
    """rows: (model, compiled run, measured peaks) whose train and eval peaks sit on the logits (a large
    vocab). Returns the median logits_train_copies and logits_eval_copies they imply, to 0.01."""
    train, evals = [], []
    for cfg, run, measured in rows:
        if run.loss_chunks:
            continue  # the chunked loss keeps no logits: nothing here to fit
        report = estimate(cfg, run)
        if report.phase_terms["train"].get("logits + cross-entropy"):
            n, a = terms.train_tokens(cfg, run), terms.act_size(run)
            coefficient = calibration.compiled_coefficient("logits_train_copies", run.device)
            term = report.terms["logits + cross-entropy"]
            train.append(_copies(measured["train"], report.peaks["train"], term, coefficient, n * a * cfg.vocab_size))
        if terms.eval_head_moment_bytes(cfg, run) >= terms.eval_mlp_moment_bytes(cfg, run):  # eval peaks at the loss
            n_e, a = terms.eval_tokens(cfg, run), terms.act_size(run)
            coefficient = calibration.compiled_coefficient("logits_eval_copies", run.device)
            term = int(n_e * a * cfg.vocab_size * coefficient)
            evals.append(_copies(measured["eval"], report.peaks["eval"], term, coefficient, n_e * a * cfg.vocab_size))
    out = {}
    if train:
        out["logits_train_copies"] = round(statistics.median(train), 2)
    if evals:
        out["logits_eval_copies"] = round(statistics.median(evals), 2)
    return out


def fit_eager_cuda(rows: list[tuple[ModelConfig, RunConfig, dict]]) -> dict[str, dict[str, float]]:
    """rows: (model, eager CUDA run, measured peaks) with a large vocab. Returns, per dtype, the median
    bytes per logit the measurements imply at the start of backward ('logits_train_bytes') and per eval
    token ('logits_eval_bytes'), to 0.01: the eager_cuda section of calibration.json."""
    found: dict[str, dict[str, list[float]]] = {}
    for cfg, run, measured in rows:
        if run.loss_chunks:
            continue  # the chunked loss keeps no logits: nothing here to fit
        report, V = estimate(cfg, run), cfg.vocab_size
        per_dtype = found.setdefault(run.label, {"logits_train_bytes": [], "logits_eval_bytes": []})
        if report.peak_phase == "train":  # the train peak sits on the logits (a large vocab)
            n, term = terms.train_tokens(cfg, run), report.terms["logits + cross-entropy"]
            per = term / (n * V)
            per_dtype["logits_train_bytes"].append(_copies(measured["train"], report.peaks["train"], term, per, n * V))
        if terms.eval_head_moment_bytes(cfg, run) >= terms.eval_mlp_moment_bytes(cfg, run):  # eval peaks at the loss
            n_e = terms.eval_tokens(cfg, run)
            term = n_e * terms.eval_logits_bytes(cfg, run)
            per = term / (n_e * V)
            per_dtype["logits_eval_bytes"].append(_copies(measured["eval"], report.peaks["eval"], term, per, n_e * V))
    return {
        dtype: {name: round(statistics.median(values), 2) for name, values in fits.items() if values}
        for dtype, fits in found.items()
        if any(fits.values())
    }


def write(updates: dict[str, dict], path: str | Path = calibration.PATH) -> dict:
    """Merge {section: {key: value}} into the calibration file (temp name + rename) and return it. The
    model reads the new values from the next calibration.active() on (use() swaps them in at once)."""
    path = Path(path)
    data = calibration.load(path) if path.exists() else {section: {} for section in calibration.SECTIONS}
    for section, values in updates.items():
        data.setdefault(section, {}).update(values)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)
    if path == calibration.PATH:
        calibration.reload()
    return data
