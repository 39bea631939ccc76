"""Tracking: metrics.jsonl always; W&B offline run files and TensorBoard events hold the logged scalars;
a failing tracker warns once and never stops the run."""

import builtins
import json
import struct
import warnings

import pytest

from finegpt.config import TrainConfig
from finegpt.tracking import open_trackers

METRICS = [
    (0, {"train/loss": 4.5, "lr": 1e-3}),
    (10, {"train/loss": 3.25, "lr": 5e-4}),
    (20, {"train/loss": 2.0, "val/loss": 2.5, "lr": 2.5e-4}),
]


def log_all(trackers):
    for step, metrics in METRICS:
        trackers.log(step, metrics)
    trackers.close()


def test_jsonl_always_written_one_object_per_line(tmp_path):
    trackers = open_trackers(TrainConfig(), tmp_path, {"model": {}})
    assert trackers.names == ["jsonl"]
    log_all(trackers)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows == [{"step": step, **metrics} for step, metrics in METRICS]


def test_jsonl_is_flushed_before_close_and_nan_becomes_null(tmp_path):
    import torch

    trackers = open_trackers(TrainConfig(), tmp_path, {})
    trackers.log(3, {"loss": torch.tensor(1.5), "grad_norm": float("nan")})
    assert json.loads((tmp_path / "metrics.jsonl").read_text()) == {"step": 3, "loss": 1.5, "grad_norm": None}
    trackers.close()


def test_tensorboard_events_hold_logged_scalars(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trackers = open_trackers(TrainConfig(tensorboard=True), tmp_path, {})
    assert trackers.names == ["jsonl", "tensorboard"]
    log_all(trackers)
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert sorted(events.Tags()["scalars"]) == ["lr", "train/loss", "val/loss"]
    assert [(e.step, e.value) for e in events.Scalars("train/loss")] == [(0, 4.5), (10, 3.25), (20, 2.0)]
    assert [(e.step, e.value) for e in events.Scalars("val/loss")] == [(20, 2.5)]


def wandb_records(path):
    """Records of a .wandb transaction log: a 7-byte header, then leveldb-style chunks in 32 KiB
    blocks (crc32, uint16 length, type; FULL=1 ... LAST=4), each record a protobuf."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, block = path.read_bytes(), 32768
    assert data[:4] == b":W&B"
    pos, chunks = 7, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # block trailer padding
            pos += block - pos % block
            continue
        length, kind = struct.unpack("<HB", data[pos + 4 : pos + 7])
        chunks += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(chunks)
            chunks = b""
            yield record


def test_wandb_offline_writes_run_dir_with_logged_metrics(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = TrainConfig(wandb_log=True, wandb_project="fineweb", wandb_run_name="160M-fineweb")
    trackers = open_trackers(cfg, tmp_path, {"model": {"n_layer": 2}})
    assert trackers.names == ["jsonl", "wandb"]
    log_all(trackers)
    run_files = list((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(run_files) == 1
    history, run = [], None
    for record in wandb_records(run_files[0]):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            items = {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
            history.append({k: v for k, v in items.items() if not k.startswith("_") or k == "_step"})
        elif kind == "run":
            run = record.run
    assert run.project == "fineweb" and run.display_name == "160M-fineweb"
    assert history == [{"_step": step, **metrics} for step, metrics in METRICS]


def test_missing_tracker_package_warns_once_and_training_goes_on(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_wandb(name, *args, **kwargs):
        if name == "wandb" or name.startswith("wandb."):
            raise ImportError("No module named 'wandb'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_wandb)
    with pytest.warns(RuntimeWarning, match="pip install wandb") as caught:
        trackers = open_trackers(TrainConfig(wandb_log=True), tmp_path, {})
        log_all(trackers)
    assert len(caught) == 1 and trackers.names == []
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == len(METRICS)


def test_tracker_failing_mid_run_is_dropped_after_one_warning(tmp_path):
    trackers = open_trackers(TrainConfig(), tmp_path, {})

    class Broken:
        name = "broken"

        def log(self, step, metrics):
            raise ConnectionError("network down")

        def close(self):
            raise AssertionError("a dropped tracker is not closed")

    trackers.trackers.append(Broken())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        log_all(trackers)
    assert [str(w.message).split(" (")[0] for w in caught] == ["broken tracking stopped"]
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == len(METRICS)
