"""The estimate path runs without PyTorch or NumPy: the same code the browser calculator runs in Pyodide.
Each test starts a fresh interpreter in which importing torch or numpy fails, as on a machine without them."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCK = """
import importlib.abc, sys
class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "numpy"):
            raise ImportError(f"{name} is not installed here")
sys.meta_path.insert(0, NoTorch())
"""


def run_without_torch(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", BLOCK + code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_estimate_path_imports_neither_torch_nor_numpy():
    out = run_without_torch(
        "import finegpt.config, finegpt.errors, finegpt.gpus, finegpt.run, finegpt.memory as M\n"
        "from finegpt.memory import calibration, guide, report, solve, summary, terms\n"
        "r = M.estimate(finegpt.config.ModelConfig(), M.RunConfig(batch_size=8, gpu='4090'))\n"
        "print(r.peak_bytes, r.verdict.label)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy')))\n"
    )
    assert out.returncode == 0, out.stderr
    peak, label, *_ = out.stdout.split()
    assert int(peak) > 0 and label
    assert out.stdout.splitlines()[-1] == "[]"


@pytest.mark.parametrize(
    "argv",
    [
        ["memory", "configs/gpt2_124m.py", "--gpu", "4090"],
        ["memory", "configs/guide_24gb.py", "--gpu", "4090", "--json"],
        ["memory", "--guide"],
        ["recommend", "--gpu", "T4"],
    ],
)
def test_finegpt_memory_and_recommend_run_without_torch(argv):
    out = run_without_torch(f"from finegpt.cli import main\nsys.exit(main({argv!r}))")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()
    if "--json" in argv:
        assert json.loads(out.stdout)["compiled"]["peak_gib"] > 0


def test_the_same_figures_with_and_without_torch():
    code = "from finegpt.cli import main\nsys.exit(main(['memory', 'configs/gpt2_124m.py', '--gpu', 'T4', '--json']))"
    without = run_without_torch(code)
    with_torch = subprocess.run(
        [sys.executable, "-c", "import sys, torch\n" + code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert without.returncode == with_torch.returncode == 0, without.stderr + with_torch.stderr
    assert json.loads(without.stdout) == json.loads(with_torch.stdout)


def test_a_cpu_estimate_without_torch_keeps_the_closed_form_scratch_rules():
    # with torch, estimate() measures this CPU's 16-bit matmul scratch (finegpt.memory.cpu_scratch); without, the rules
    out = run_without_torch(
        "import finegpt.config, finegpt.memory as M\n"
        "from finegpt.memory import state\n"
        "cfg = finegpt.config.ModelConfig(n_layer=1, n_head=2, n_embd=256, block_size=64, vocab_size=64)\n"
        "r = M.estimate(cfg, M.RunConfig(batch_size=3, dtype='pure_bf16', device='cpu', cpu_threads=2))\n"
        "print(r.peak_bytes > 0, state.CPU_MM_SCRATCH, 'finegpt.memory.cpu_scratch' in sys.modules)\n"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "{}", "False"]
