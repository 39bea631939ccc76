"""`finegpt train [config_file] [--key=value ...] [--resume]`: settings from a nanoGPT-style file,
then overrides; with --resume the checkpoint's own settings are the base. Entry point: train_from_cli.
"""

from __future__ import annotations

from pathlib import Path

from finegpt.config import TRAIN_KEYS, build_configs, load_config_file, nanogpt_defaults, parse_overrides


def resolve_settings(
    config_file: str | None, overrides: list[str], resume: bool
) -> tuple[dict, dict | None, list[str]]:
    """Flat settings: the resumed checkpoint's train settings (when resuming), the file, then --key=value,
    over nanoGPT train.py's defaults (compile=True) where a config file leaves them unset; the resumed
    checkpoint itself, read once here and handed to train(); and the notes saying which defaults applied.
    A resumed run keeps its saved settings: the defaults fill only what neither it nor the file sets."""
    values = {**(load_config_file(config_file) if config_file else {}), **parse_overrides(overrides)}
    if resume:
        values["init_from"] = "resume"
    base, ckpt = {}, None
    if values.get("init_from") == "resume":
        from finegpt.train.checkpoint import load_checkpoint

        ckpt = load_checkpoint(values.get("out_dir", "out"), map_location="cpu")
        saved = ckpt["config"]
        base = {k: v for k, v in saved.get("train", {}).items() if k in TRAIN_KEYS}
        if "train" in saved:  # checkpoints from before the epoch sampler drew random windows
            base.setdefault("sampling", "random")
        base.update(saved["model"])
    values = {**base, **values}
    defaults, notes = nanogpt_defaults(values, config_file) if config_file else ({}, [])
    return {**defaults, **values}, ckpt, notes


def train_from_cli(
    config_file: str | None,
    overrides: list[str],
    resume: bool = False,
    overwrite: bool = False,
    resume_changed: str = "",
) -> dict:
    from finegpt.train.loop import train

    values, ckpt, file_notes = resolve_settings(config_file, overrides, resume)
    model_cfg, train_cfg, notes = build_configs(values)
    for note in file_notes + notes:
        print(note)
    if config_file:
        print(f"config: {Path(config_file)}")
    return train(model_cfg, train_cfg, overwrite=overwrite, checkpoint=ckpt, resume_changed=resume_changed)
