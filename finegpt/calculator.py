"""The static calculator page's Python side; it runs in the browser, in Pyodide (tools/build_site.py builds
the page). The page's state is the text of its fields, read as `finegpt memory` reads --key=value; it shows
what `finegpt memory --json` prints for them. Entry points: FIELDS, DEFAULTS, page (page_json: the
one call the page makes per change), config_fields, config_text, cli_args, controls_json.
"""

from __future__ import annotations

import json
import time
from dataclasses import fields

from finegpt.config import TRAIN_KEYS, ModelConfig, TrainConfig, config_file_settings, parse_overrides
from finegpt.errors import FinegptError
from finegpt.memory import GIB, GPUS, RunConfig, bar_segments, eager_and_compiled, summary_from_settings

# The page's fields in the order it shows them, with its default text: GPT-2 small on one RTX 4090.
# 'gpu' is `finegpt memory --gpu` (a preset key or custom:<GiB>); every other key is an override --key=value.
DEFAULTS = {
    "gpu": "4090",
    "n_layer": "12",
    "n_head": "12",
    "n_embd": "768",
    "block_size": "1024",
    "vocab_size": "50304",
    "bias": "False",
    "dropout": "0.0",
    "batch_size": "16",
    "gradient_accumulation_steps": "32",
    "eval_batch_size": "0",
    "max_iters": "19073",
    "dtype": "auto",
    "compile": "False",
    "attention": "flash",
    "activation_checkpointing": "False",
    "optimizer": "adamw_fused",
    "world_size": "1",
    "fsdp": "False",
}
FIELDS = tuple(DEFAULTS)
CHOICES = {  # the page's drop-downs; anything else typed into the URL gets the CLI's error
    "gpu": (*GPUS, "custom"),
    "dtype": ("auto", "fp32", "bf16", "fp16", "pure_bf16"),
    "attention": ("flash", "math"),
    "optimizer": ("adamw_fused", "adamw_foreach", "sgd_momentum", "sgd"),
}
ERROR_FIELD = {"memory_gib": "gpu"}  # custom:<GiB> is checked as memory_gib
TRAIN_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "pure_bf16": "bfloat16"}


def cli_args(texts: dict[str, str]) -> list[str]:
    """The `finegpt memory` arguments that mean the same as the page's fields (after --json)."""
    texts = {**DEFAULTS, **texts}
    gpu = [f"--gpu={texts['gpu']}"] if texts["gpu"] else []
    return gpu + [f"--{k}={v}" for k, v in texts.items() if k != "gpu"]


def _settings(texts: dict[str, str]) -> tuple[str | None, dict]:
    """Field texts -> (gpu, values) exactly as the CLI parses `--gpu=G --key=value ...`."""
    texts = {**DEFAULTS, **texts}
    return texts["gpu"] or None, parse_overrides([f"--{k}={v}" for k, v in texts.items() if k != "gpu"])


def page(texts: dict[str, str]) -> dict:
    """Everything the page draws for its fields: `result`, the text `finegpt memory --json` prints (or, for
    bad input, the one line the CLI prints, with the field it names in `error_field`), the summary, the
    stacked bars of the eager and compiled peaks (finegpt.memory.bar_segments), and the config file."""
    t0 = time.perf_counter()
    texts = {**DEFAULTS, **texts}
    out = {"fields": texts, "cli": "finegpt memory --json " + " ".join(cli_args(texts))}
    try:
        gpu, values = _settings(texts)
        model_cfg, run, summary = summary_from_settings(values, gpu)
    except FinegptError as e:
        field = str(e).split("=", 1)[0]
        field = ERROR_FIELD.get(field, field)
        out.update(result=f"error: {e}", error=str(e), error_field=field if field in texts else None)
        out["python_ms"] = (time.perf_counter() - t0) * 1e3
        return out
    reports = eager_and_compiled(model_cfg, run)
    out.update(result=json.dumps(summary), summary=summary, config_text=config_text(texts))
    out["bars"] = {mode: [[label, b, kind] for label, b, kind in bar_segments(r)] for mode, r in reports.items()}
    any_report = reports["eager"]
    if any_report.verdict is not None:
        out["gpu"] = {"name": any_report.gpu, "memory_gib": any_report.memory_bytes / GIB}
    out["python_ms"] = (time.perf_counter() - t0) * 1e3
    return out


def page_json(texts_json: str) -> str:
    """page() with JSON in and out: the one call the page's JavaScript makes."""
    return json.dumps(page(json.loads(texts_json)))


def controls_json() -> str:
    """What the page builds its controls from: the fields' default texts, the drop-downs' choices, and each
    GPU preset's memory in GiB (shown in its drop-down)."""
    gpus = {key: gpu.memory_gib for key, gpu in GPUS.items()}
    return json.dumps({"defaults": DEFAULTS, "choices": CHOICES, "gpu_memory_gib": gpus})


def config_fields_json(path: str) -> str:
    """config_fields with JSON out, for the page's config-file buttons."""
    return json.dumps(config_fields(path))


def config_text(texts: dict[str, str]) -> str:
    """The fields as a nanoGPT-style config file that `finegpt train` reads (and `finegpt memory` answers
    the same for). What the trainer does not run (what-ifs, the GPU count) is written as comments."""
    texts = {**DEFAULTS, **texts}
    gpu, values = _settings(texts)
    what_if = {k: values[k] for k in ("attention", "optimizer") if values[k] != DEFAULTS[k]}
    if values["dtype"] == "pure_bf16":
        what_if["dtype"] = "pure_bf16"
    lines = ["# finegpt's memory calculator: `finegpt train this.py` runs it"]
    if gpu:
        lines.append(f"# checked for: finegpt memory this.py --gpu={gpu}")
    for key, value in values.items():
        if key == "dtype":
            value = TRAIN_DTYPES.get(value, value)
        if key in TRAIN_KEYS or key in {f.name for f in fields(ModelConfig)}:
            lines.append(f"{key} = {value!r}")
    if values["world_size"] != 1:
        lines.append(f"# on {values['world_size']} GPUs: torchrun --standalone --nproc_per_node={values['world_size']}")
        lines.append("#   -m finegpt train this.py (gradient_accumulation_steps is the total over all GPUs)")
    if what_if:
        lines.append("# what-ifs: `finegpt memory` reads these lines uncommented, `finegpt train` does not run them")
        lines += [f"# {k} = {v!r}" for k, v in what_if.items()]
    return "\n".join(lines) + "\n"


def config_fields(path: str) -> tuple[dict[str, str], list[str]]:
    """A config file (the guide's configs) as field texts, and notes: the nanoGPT defaults it takes
    (compile=True) and its settings that do not change memory. Fields it leaves unset take the values
    `finegpt memory` gives them (ModelConfig(bias=False), TrainConfig's defaults), not the page's."""
    values, notes = config_file_settings(path)
    base = {f.name: f.default for cls in (RunConfig, TrainConfig, ModelConfig) for f in fields(cls)}
    base.update(bias=False, world_size=1)  # build_configs' ModelConfig(bias=False); one GPU
    texts = {k: str(values.get(k, base.get(k))) for k in FIELDS if k != "gpu"}
    unused = sorted(k for k in values if k not in DEFAULTS)
    if unused:
        notes.append(f"not used by the memory model: {', '.join(unused)}")
    return texts, notes
