"""`finegpt train [config_file] [--key=value ...] [--resume]`: settings from a nanoGPT-style file,
then overrides; with --resume the checkpoint's own settings are the base. Entry point: train_from_cli.
"""

from __future__ import annotations

from pathlib import Path

from finegpt.config import TRAIN_KEYS, build_configs, config_file_settings, parse_overrides


def resolve_settings(config_file: str | None, overrides: list[str], resume: bool) -> tuple[dict, list[str]]:
    """Flat settings: the resumed checkpoint's train settings (when resuming), the file (over nanoGPT
    train.py's defaults: compile=True), then --key=value; and the notes saying which defaults applied."""
    overrides = parse_overrides(overrides)
    values, notes = config_file_settings(config_file, overrides) if config_file else (dict(overrides), [])
    if resume:
        values["init_from"] = "resume"
    if values.get("init_from") == "resume":
        from finegpt.train.checkpoint import load_checkpoint

        out_dir = values.get("out_dir", "out")
        saved = load_checkpoint(out_dir)["config"]
        base = {k: v for k, v in saved.get("train", {}).items() if k in TRAIN_KEYS}
        base.update(saved["model"])
        values = {**base, **values}
    return values, notes


def train_from_cli(
    config_file: str | None, overrides: list[str], resume: bool = False, overwrite: bool = False
) -> dict:
    from finegpt.train.loop import train

    values, file_notes = resolve_settings(config_file, overrides, resume)
    model_cfg, train_cfg, notes = build_configs(values)
    notes = file_notes + notes
    for note in notes:
        print(note)
    if config_file:
        print(f"config: {Path(config_file)}")
    return train(model_cfg, train_cfg, overwrite=overwrite)
