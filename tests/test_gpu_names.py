"""GPU names as people write them: nvidia-smi, shop listings, memory suffixes, any case and dashes."""

import pytest

from finegpt import widgets
from finegpt.cli import main
from finegpt.errors import FinegptError
from finegpt.memory import GPUS, detected_gpu_key, get_gpu, gpu_from_device_name, resolve_gpu

# (what a person or a tool wrote, the preset it means)
REAL_WORLD_NAMES = [
    # torch.cuda.get_device_name() / nvidia-smi --query-gpu=name
    ("Tesla T4", "T4"),
    ("NVIDIA A100-SXM4-80GB", "A100-80"),
    ("NVIDIA A100-SXM4-40GB", "A100-40"),
    ("NVIDIA A100-PCIE-40GB", "A100-40"),
    ("NVIDIA A100 80GB PCIe", "A100-80"),
    ("Tesla V100-SXM2-16GB", "V100-16"),
    ("Tesla V100-PCIE-32GB", "V100-32"),
    ("Tesla V100S-PCIE-32GB", "V100-32"),
    ("NVIDIA H100 80GB HBM3", "H100"),
    ("NVIDIA H100 PCIe", "H100"),
    ("NVIDIA H200", "H200"),
    ("NVIDIA GeForce RTX 4090", "4090"),
    ("NVIDIA GeForce RTX 4070 Ti", "4070ti"),
    ("NVIDIA GeForce RTX 3060", "3060"),
    ("NVIDIA RTX A6000", "A6000"),
    ("NVIDIA RTX A4000", "A4000"),
    ("NVIDIA A10G", "A10G"),
    ("NVIDIA A10", "A10G"),
    ("NVIDIA L4", "L4"),
    # shop listings and what people type
    ("RTX 4090 24GB", "4090"),
    ("ASUS TUF Gaming GeForce RTX 4090 OC Edition 24GB GDDR6X", "4090"),
    ("GeForce RTX 3060 12 GB", "3060"),
    ("RTX 3080 10GB", "3080"),
    ("rtx3090", "3090"),
    ("a100 80gb", "A100-80"),
    ("A100 40GB", "A100-40"),
    ("v100-16gb", "V100-16"),
    ("V100 32G", "V100-32"),
    ("t4 16gb", "T4"),
    ("H100-SXM5-80GB", "H100"),
    ("h200 141gb", "H200"),
    ("4070 ti", "4070ti"),
    ("rtx_a6000", "A6000"),
    # the preset keys themselves, in any case
    ("a100-80", "A100-80"),
    ("V100-16", "V100-16"),
    ("4090", "4090"),
    ("h100", "H100"),
]


@pytest.mark.parametrize("name, key", REAL_WORLD_NAMES)
def test_real_world_gpu_names_resolve_to_their_preset(name, key):
    match = resolve_gpu(name)
    assert (match.key, match.note) == (key, None)
    assert get_gpu(name) is GPUS[key] and gpu_from_device_name(name) is GPUS[key]


@pytest.mark.parametrize(
    "name, key, other",
    [("A100", "A100-40", "A100-80"), ("V100", "V100-16", "V100-32"), ("nvidia a100", "A100-40", "A100-80")],
)
def test_a_bare_name_with_two_sizes_takes_the_smaller_and_says_so(name, key, other):
    match = resolve_gpu(name)
    assert match.key == key
    assert f"taking {key}" in match.note and f"Write {other} for the" in match.note


@pytest.mark.parametrize(
    "name, suggested",
    [
        ("4900", ["4090"]),  # two keys swapped
        ("3060 Ti", ["3060"]),  # another card (8 GB), but the same line
        ("NVIDIA GeForce RTX 4090 Laptop GPU", ["4090"]),  # the laptop part has 16 GB
        ("NVIDIA H100 NVL", ["H100"]),
        ("4060", []),  # a changed digit is another card: no 4080 or 4090 offered
        ("A800", []),
        ("L40S", []),
        ("banana", []),
    ],
)
def test_unknown_names_suggest_only_cards_of_the_same_line(name, suggested):
    with pytest.raises(FinegptError) as e:
        resolve_gpu(name)
    message = str(e.value)
    assert message.startswith(f"gpu={name!r}: unknown GPU.") and "custom:<GiB>" in message
    hint = message.split("Did you mean ")[1].split("?")[0].split(" or ") if "Did you mean" in message else []
    assert hint == suggested
    assert gpu_from_device_name(name) is None


def test_a_size_no_preset_has_is_refused_with_the_sizes_that_exist():
    with pytest.raises(FinegptError) as e:
        resolve_gpu("RTX 3080 12GB")
    assert str(e.value) == (
        "gpu='RTX 3080 12GB': no 12 GB variant of this card among the presets. "
        "Use 3080 (10 GB), or custom:12 for a 12 GB card."
    )


def test_custom_cards_and_presets_pass_through():
    assert resolve_gpu("custom:24").gpu.memory_gib == 24.0
    assert resolve_gpu(GPUS["T4"]) == ("T4", GPUS["T4"], None)
    assert detected_gpu_key(default="T4") == "T4"  # no CUDA GPU on the test machines


def test_cli_and_widget_print_the_note_for_an_ambiguous_name(capsys):
    assert main(["memory", "--gpu", "A100", "--n_layer=2", "--n_head=2", "--n_embd=64"]) == 0
    out = capsys.readouterr().out
    assert "note: 'A100' comes in 40 GB and 80 GB; taking A100-40" in out and "A100 40GB" in out
    assert main(["recommend", "--gpu", "V100"]) == 0
    assert "note: 'V100' comes in 16 GB and 32 GB; taking V100-16" in capsys.readouterr().out
    assert main(["memory", "--gpu", "Tesla T4", "--n_layer=2", "--n_head=2", "--n_embd=64"]) == 0
    assert "comes in" not in capsys.readouterr().out  # one T4: no note about which card was taken
    view = widgets.memory_view(gpu="A100", dtype="bf16")
    assert view.error is None and "note: 'A100' comes in 40 GB and 80 GB" in view.lines[-1]
    ui = widgets.memory_ui(gpu="A100")
    assert ui.controls["gpu"].value == "A100-40" and "note: " in ui.children[-1].value
