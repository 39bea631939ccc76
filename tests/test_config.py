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


BOMBS = {  # what each would build if evaluated: a number of 10**8 digits and up, 10 GB of text, a deep tree
    "power.py": ("n_layer = 9**9**9**9\n", "n_layer='9**9**9**9': builds a number larger than 2**64"),
    "repeat.py": ("out_dir = 'x' * 10**10\n", "out_dir=\"'x' * 10**10\": builds a string longer than 4096"),
    "product.py": ("batch_size = 2**40 * 2**40\n", "batch_size='2**40 * 2**40': builds a number larger than"),
    "digits.py": (
        "max_iters = " + "9" * 4100 + "\n",
        "max_iters='9999999999999999999999999999999999999...': builds a number larger",
    ),
    "chain.py": ("n_layer = " + "1+" * 5000 + "1\n", "n_layer='1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1...': a line"),
    "terms.py": (
        "n_layer = (" + "+\n".join(["1"] * 300) + ")\n",
        "n_layer='1+ 1+ 1+ 1+ 1+ 1+ 1+ 1+ 1+ 1+ 1+ 1+ 1...': an expression of more than 200 parts",
    ),
    "zero.py": ("learning_rate = 6e-4 / 0\n", "learning_rate='6e-4 / 0': cannot be computed (float division by zero)"),
}


def test_config_file_arithmetic_is_bounded_in_size_and_time(tmp_path):
    """Each bomb is refused in one line naming its key. Run in a child process with a time limit: an
    unbounded evaluation would take hours or exhaust memory, and must fail the test, not hang it."""
    import subprocess
    import sys

    for name, (text, _) in BOMBS.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "huge.py").write_text("# padding\n" * 120_000)  # 1.2 MB
    script = (
        "import sys\nfrom finegpt.config import load_config_file\nfrom finegpt.errors import FinegptError\n"
        "for name in sys.argv[1:]:\n    try:\n        load_config_file(name)\n        print('ACCEPTED', name)\n"
        "    except FinegptError as e:\n        print(e)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, *BOMBS, "huge.py"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == len(BOMBS) + 1
    for line, (name, (_, start)) in zip(lines, BOMBS.items()):
        assert line.startswith(start) and f"(config='{name}' line " in line and line.endswith("."), line
    assert lines[-1] == (
        "config='huge.py': 1200000 bytes, more than a config file needs (1048576 at most). "
        "Write one `key = value` per line."
    )


def test_oversized_config_value_through_the_cli_is_one_line_and_changes_nothing(tmp_path, capsys):
    from train_fixtures import file_hashes, run_cli

    (tmp_path / "power.py").write_text(BOMBS["power.py"][0])
    before = file_hashes(tmp_path)
    rc, err = run_cli(["train", "power.py"], tmp_path, capsys)
    assert rc == 2
    assert err == (
        "error: n_layer='9**9**9**9': builds a number larger than 2**64 (config='power.py' line 1). "
        "Write the value itself.\n"
    )
    assert file_hashes(tmp_path) == before


def test_config_files_with_usual_arithmetic_still_parse(tmp_path):
    path = tmp_path / "ok.py"
    path.write_text("batch_size = 5 * 8\nmax_iters = 2**19\nmin_lr = 6e-4 / 10\nout_dir = 'out-' + 'gpt2' * 2\n")
    assert load_config_file(path) == {
        "batch_size": 40,
        "max_iters": 524288,
        "min_lr": 6e-4 / 10,
        "out_dir": "out-gpt2gpt2",
    }
