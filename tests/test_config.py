"""Config validation, nanoGPT-style config files and --key=value overrides."""

import pytest

from finegpt.config import ModelConfig, TrainConfig, build_configs, load_config_file, parse_overrides
from finegpt.errors import FinegptError

GUIDE_24GB = """\
out_dir='out-fineweb-160M'; eval_interval=1000; eval_iters=200; log_interval=100
always_save_checkpoint=True; wandb_log=True; wandb_project='fineweb'; wandb_run_name='160M-fineweb'
dataset='fineweb'; gradient_accumulation_steps=16; batch_size=32; block_size=1024
n_layer=10; n_head=10; n_embd=640; dropout=0.0; learning_rate=6e-4
max_iters=50000; warmup_iters=2000; lr_decay_iters=50000; min_lr=6e-5; beta2=0.99
"""

NANOGPT_TRAIN_GPT2 = """\
# config for training GPT-2 (124M) down to very nice loss of ~2.85 on 1 node of 8X A100 40GB
wandb_log = True
wandb_project = 'owt'
wandb_run_name='gpt2-124M'

# these make the total batch size be ~0.5M
# 12 batch size * 1024 block size * 5 gradaccum * 8 GPUs = 491,520
batch_size = 12
block_size = 1024
gradient_accumulation_steps = 5 * 8

# this makes total number of tokens be 300B
max_iters = 600000
lr_decay_iters = 600000

# eval stuff
eval_interval = 1000
eval_iters = 200
log_interval = 10

# weight decay
weight_decay = 1e-1
"""


def test_defaults_are_nanogpts():
    m, t = ModelConfig(), TrainConfig()
    assert (m.n_layer, m.n_head, m.n_embd, m.block_size, m.vocab_size) == (12, 12, 768, 1024, 50304)
    assert (t.batch_size, t.gradient_accumulation_steps, t.learning_rate, t.min_lr) == (12, 40, 6e-4, 6e-5)
    assert (t.beta1, t.beta2, t.weight_decay, t.grad_clip, t.warmup_iters) == (0.9, 0.95, 0.1, 1.0, 2000)


def test_n_embd_not_divisible_by_n_head_names_field_and_fix():
    with pytest.raises(FinegptError) as e:
        ModelConfig(n_layer=12, n_head=12, n_embd=640)
    assert str(e.value) == "n_embd=640: not divisible by n_head=12. Use n_head 8, 10, 16 or 20, or n_embd 648."


@pytest.mark.parametrize("field,value", [("n_layer", 0), ("n_head", -1), ("block_size", 0), ("vocab_size", 2.5)])
def test_sizes_must_be_positive_integers(field, value):
    with pytest.raises(FinegptError, match=rf"^{field}=.*must be a positive integer\. Use {field} >= 1"):
        ModelConfig(**{field: value})


@pytest.mark.parametrize("kwargs,field", [({"dropout": 1.0}, "dropout"), ({"bias": "yes"}, "bias")])
def test_bad_model_values(kwargs, field):
    with pytest.raises(FinegptError, match=rf"^{field}="):
        ModelConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"batch_size": 0}, "batch_size"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"min_lr": 1.0}, "min_lr"),
        ({"device": "tpu"}, "device"),
        ({"dtype": "fp8"}, "dtype"),
        ({"beta2": 1.0}, "beta2"),
        ({"warmup_iters": -1}, "warmup_iters"),
    ],
)
def test_bad_train_values(kwargs, field):
    with pytest.raises(FinegptError, match=rf"^{field}="):
        TrainConfig(**kwargs)


def test_guide_config_file_parses_to_its_values(tmp_path):
    path = tmp_path / "guide_24gb.py"
    path.write_text(GUIDE_24GB)
    model, train, notes = build_configs(load_config_file(path))
    assert (model.n_layer, model.n_head, model.n_embd, model.block_size) == (10, 10, 640, 1024)
    assert (train.batch_size, train.gradient_accumulation_steps, train.max_iters) == (32, 16, 50000)
    assert train.wandb_log is True and train.beta2 == 0.99 and train.resolved_data_dir().endswith("fineweb")
    assert notes == []


def test_nanogpt_config_with_arithmetic_parses(tmp_path):
    path = tmp_path / "train_gpt2.py"
    path.write_text(NANOGPT_TRAIN_GPT2)
    _, train, _ = build_configs(load_config_file(path))
    assert train.gradient_accumulation_steps == 40 and train.weight_decay == 0.1


def test_config_file_is_never_executed(tmp_path):
    path = tmp_path / "evil.py"
    marker = tmp_path / "pwned"
    path.write_text(f"batch_size = __import__('pathlib').Path({str(marker)!r}).touch()\n")
    with pytest.raises(FinegptError, match="line 1: only literal values are allowed"):
        load_config_file(path)
    assert not marker.exists()


def test_unknown_key_suggests_the_close_one():
    with pytest.raises(FinegptError) as e:
        build_configs({"n_layers": 4})
    assert str(e.value) == "n_layers=4: unknown config key. Did you mean n_layer?"


def test_nanogpt_only_keys_are_accepted_with_a_note():
    _, _, notes = build_configs({"wandb_mode": "offline"})
    assert len(notes) == 1 and notes[0].startswith("note: wandb_mode")


def test_overrides_parse_literals_and_coerce_types():
    values = parse_overrides(
        ["--batch_size=8", "--learning_rate=1e-3", "--max_iters=2e3", "--out_dir=out-x", "--compile=True"]
    )
    model, train, _ = build_configs(values)
    assert (train.batch_size, train.learning_rate, train.max_iters, train.out_dir, train.compile) == (
        8,
        1e-3,
        2000,
        "out-x",
        True,
    )


@pytest.mark.parametrize("arg", ["batch_size=8", "--batch_size"])
def test_malformed_override_is_refused(arg):
    with pytest.raises(FinegptError, match="is not of the form --key=value"):
        parse_overrides([arg])


def test_wrong_type_override_is_refused():
    with pytest.raises(FinegptError, match=r"^batch_size='big': must be an int. Write e.g. batch_size=12"):
        build_configs(parse_overrides(["--batch_size=big"]))


def test_config_files_take_nanogpt_train_py_defaults_for_unset_model_keys(tmp_path):
    path = tmp_path / "c.py"
    path.write_text("n_layer = 4\n")
    model, _, _ = build_configs(load_config_file(path))
    assert (model.n_layer, model.n_embd, model.bias, model.vocab_size) == (4, 768, False, 50304)
