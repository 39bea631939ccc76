"""finegpt.calculator, the static page's Python side, without a browser: its result is the text `finegpt
memory --json` prints, bad input names its field, its config file means the same to `finegpt memory`, and
it imports without torch or numpy (Pyodide has neither). tests/test_site.py runs it in chromium."""

import contextlib
import io
import json
import re

import pytest
from test_torch_free import ROOT, run_without_torch

from finegpt.calculator import DEFAULTS, cli_args, config_fields, config_text, page
from finegpt.cli import main as finegpt_main


def cli(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = finegpt_main(list(argv))
    return code, out.getvalue().strip(), err.getvalue().strip()


@pytest.mark.parametrize(
    "texts",
    [
        {},
        {"gpu": "T4", "dtype": "fp16", "batch_size": "4", "compile": "True"},
        {"gpu": "custom:12", "attention": "math", "optimizer": "sgd", "world_size": "4", "fsdp": "True"},
        {"gpu": "", "n_layer": "2"},  # no GPU: no verdict
    ],
)
def test_page_result_is_what_finegpt_memory_json_prints(texts):
    out = page(texts)
    assert out["result"] == cli("memory", "--json", *cli_args(texts))[1]
    assert "error" not in out
    assert set(out["bars"]) == {"eager", "compiled"}
    for mode, segments in out["bars"].items():  # allocated + overheads end at the verdict's low bytes
        allocated = sum(b for _, b, kind in segments if kind != "uncertain")
        assert allocated >= out["summary"][mode]["peak_bytes"]


@pytest.mark.parametrize(
    "texts, field",
    [
        ({"n_embd": "640"}, "n_embd"),
        ({"gpu": "T4", "dtype": "bf16"}, "dtype"),
        ({"batch_size": "0"}, "batch_size"),
        ({"gpu": "RTX 9999"}, "gpu"),
        ({"gpu": "custom:-3"}, "gpu"),
        ({"gpu": "custom:lots"}, "gpu"),
        ({"compile": "maybe"}, "compile"),
    ],
)
def test_bad_input_gives_the_cli_line_and_names_its_field(texts, field):
    out = page(texts)
    code, _, err = cli("memory", "--json", *cli_args(texts))
    assert code == 2
    assert out["result"] == err
    assert out["error_field"] == field
    assert out["error"].startswith(f"{field}=")


def test_config_text_means_the_same_to_finegpt_memory(tmp_path):
    texts = {**DEFAULTS, "gpu": "3090", "batch_size": "8", "dtype": "fp16", "compile": "True", "eval_batch_size": "4"}
    path = tmp_path / "from_page.py"
    path.write_text(config_text(texts))
    code, printed, _ = cli("memory", str(path), "--gpu", "3090", "--json")
    assert code == 0
    from_file, from_page = json.loads(printed), json.loads(page(texts)["result"])
    assert from_file.pop("notes") == [] and from_page.pop("notes") == []
    assert from_file == from_page


def test_what_ifs_and_gpu_count_are_comments_the_trainer_skips():
    text = config_text({"attention": "math", "dtype": "pure_bf16", "world_size": "4"})
    assert "# attention = 'math'" in text and "# dtype = 'pure_bf16'" in text
    assert "dtype = 'bfloat16'" in text.splitlines()
    assert "--nproc_per_node=4" in text
    assert not any(line.startswith(("attention", "world_size", "optimizer")) for line in text.splitlines())


def test_guide_config_fields_give_the_file_answer():
    texts, notes = config_fields(ROOT / "configs" / "guide_24gb.py")
    assert (texts["n_layer"], texts["n_embd"], texts["compile"]) == ("10", "640", "True")  # compile: nanoGPT's default
    assert any("compile=True" in n for n in notes)
    _, printed, _ = cli("memory", str(ROOT / "configs" / "guide_24gb.py"), "--gpu", "4090", "--json")
    from_file, from_page = json.loads(printed), json.loads(page({**texts, "gpu": "4090"})["result"])
    from_file.pop("notes"), from_page.pop("notes")
    assert from_file == from_page


def test_the_calculator_imports_neither_torch_nor_numpy():
    out = run_without_torch(
        "from finegpt.calculator import page_json\n"
        "import json; print(json.loads(page_json('{}'))['summary']['compiled']['verdict']['label'])\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy')))\n"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "[]"


def test_build_site_holds_the_page_pyodide_the_wheel_and_the_configs(tmp_path):
    import os
    import sys
    import zipfile

    sys.path.insert(0, str(ROOT / "tools"))
    import build_site

    if not (build_site.PYODIDE_DIR / "package.json").is_file():
        if os.environ.get("FINEGPT_BROWSER_TESTS") == "require" or os.environ.get("CI") in ("true", "1"):
            pytest.fail("node_modules/pyodide is missing: run `npm ci` (.ci/browser-deps does)")
        pytest.skip("node_modules/pyodide is missing: run `npm ci` (or `make site`)")
    out = build_site.build(tmp_path / "site")
    manifest = json.loads((out / "site.json").read_text())
    assert sorted(manifest["configs"]) == sorted(p.name for p in (ROOT / "configs").glob("*.py"))
    assert all((out / "pyodide" / name).is_file() for name in build_site.PYODIDE_FILES)
    names = zipfile.ZipFile(out / manifest["wheel"]).namelist()
    assert {"finegpt/calculator.py", "finegpt/memory/calibration.json", "finegpt/run.py"} <= set(names)
    for name in build_site.WEB_FILES:  # the page's own files name no other server
        assert re.findall(r"(?:https?:)?//[\w.-]+\.\w+/", (out / name).read_text()) == [], name
