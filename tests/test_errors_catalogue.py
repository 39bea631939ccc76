"""Bad input across the CLI, config files, shards, checkpoints and the memory functions behind the widgets.

Each case must give one line `<field>=<value>: <problem>. <fix>.`, exit the CLI with 2 and no traceback,
and change no file that existed. docs/reliability.md is generated from CASES and, for the cases that need
more than one command, tests/reliability_scenarios.py; regenerate it with
`FINEGPT_WRITE_DOCS=1 python -m pytest tests/test_errors_catalogue.py -k doc`.
"""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from reliability_scenarios import SCENARIOS
from train_fixtures import TINY_MODEL, english_text, make_data, one_torch_thread, overrides  # noqa: F401

from finegpt.cli import main
from finegpt.errors import FinegptError

DOC = Path(__file__).resolve().parents[1] / "docs" / "reliability.md"
TINY = " ".join(
    overrides(
        {
            **TINY_MODEL,
            "batch_size": 2,
            "gradient_accumulation_steps": 1,
            "device": "cpu",
            "max_iters": 1,
            "eval_iters": 1,
        }
    )
)

# (area, input, field the message must start with). Inputs starting with "finegpt " run the CLI in the
# workspace below; the others are Python expressions evaluated with finegpt's config and memory names.
CASES = [
    ("config", "finegpt train --n_embd=640 --n_head=12", "n_embd"),
    ("config", "finegpt train --learnig_rate=1e-3", "learnig_rate"),
    ("config", "finegpt train --batch_size=0", "batch_size"),
    ("config", "finegpt train --batch_size=eight", "batch_size"),
    ("config", "finegpt train --compile=yes", "compile"),
    ("config", "finegpt train --dropout=1.5", "dropout"),
    ("config", "finegpt train --learning_rate=1e-4 --min_lr=1e-3", "min_lr"),
    ("config", "finegpt train --device=tpu", "device"),
    ("config", "finegpt train --dtype=float8", "dtype"),
    ("config", "finegpt train --init_from=gpt2", "init_from"),
    ("config file", "finegpt train missing_config.py", "config"),
    ("config file", "finegpt train typo_key.py", "batch_sise"),
    ("config file", "finegpt train runs_code.py", "config"),
    ("config file", "finegpt train bad_syntax.py", "config"),
    ("config file", "finegpt train huge_power.py", "n_layer"),
    ("config file", "finegpt train huge_string.py", "out_dir"),
    ("config file", "finegpt train long_line.py", "n_layer"),
    ("data", "finegpt train --data_dir=data/fineweb", "data_dir"),
    ("data", f"finegpt train {TINY} --data_dir=data --out_dir=new --vocab_size=128", "vocab_size"),
    ("data", f"finegpt train {TINY} --data_dir=data --out_dir=new --block_size=8192", "block_size"),
    ("data", f"finegpt train {TINY} --data_dir=data_noval --out_dir=new", "data_dir"),
    ("data", "finegpt train --resume --out_dir=run --data_dir=data_gpt2", "data_dir"),
    ("shards", f"finegpt train {TINY} --data_dir=data_truncated --out_dir=new", "shard"),
    ("shards", f"finegpt train {TINY} --data_dir=data_foreign --out_dir=new", "shard"),
    ("shards", f"finegpt train {TINY} --data_dir=data_mixed --out_dir=new", "shard"),
    ("shards", "finegpt prepare --source=story.txt --out=data", "out"),
    ("shards", "finegpt prepare --source=missing.txt --out=data_new", "source"),
    ("output", f"finegpt train {TINY} --data_dir=data --out_dir=notes.txt", "out_dir"),
    ("output", f"finegpt train {TINY} --data_dir=data --out_dir=run", "out_dir"),
    ("output", f"finegpt train {TINY} --data_dir=data --out_dir=moved_aside", "out_dir"),
    ("output", f"finegpt train {TINY} --data_dir=data --out_dir=", "out_dir"),
    ("output", "finegpt prepare --source=story.txt --out=", "out"),
    ("output", "finegpt quickstart --out=", "out"),
    ("device", f"finegpt train {TINY} --data_dir=data --out_dir=new --dtype=float16", "dtype"),
    ("checkpoint", "finegpt train --resume --out_dir=empty", "out_dir"),
    ("checkpoint", "finegpt train --resume --out_dir=broken", "checkpoint"),
    ("checkpoint", "finegpt train --resume --out_dir=pickled", "checkpoint"),
    ("checkpoint", "finegpt sample --ckpt=broken/ckpt.pt", "checkpoint"),
    ("checkpoint", "finegpt sample --ckpt=nowhere", "checkpoint"),
    ("checkpoint", "finegpt sample --ckpt=nanogpt/ckpt.pt", "checkpoint"),
    ("checkpoint", "finegpt train --resume --out_dir=nanogpt", "checkpoint"),
    ("checkpoint", "finegpt sample --ckpt=weights.pt", "checkpoint"),
    ("checkpoint", "finegpt sample --ckpt=notes.txt", "checkpoint"),
    ("device", "CUDA_VISIBLE_DEVICES= finegpt sample --ckpt=run --device=cuda", "device"),
    ("distributed", "local_accumulation(gradient_accumulation_steps=5, world_size=2)", "gradient_accumulation_steps"),
    ("memory", "estimate(ModelConfig(n_layer=2, n_head=2, n_embd=64), RunConfig(batch_size=0))", "batch_size"),
    ("memory", "RunConfig(dtype='bf16', gpu='T4')", "dtype"),
    ("memory", "RunConfig(gpu='RTX 9090')", "gpu"),
    ("memory", "RunConfig(sharding='zero3')", "sharding"),
    ("memory", "ModelConfig(n_layer=10, n_head=10, n_embd=644)", "n_embd"),
    ("range", f"finegpt train {TINY} --data_dir=data --out_dir=new --seed=-1", "seed"),
    ("range", f"finegpt train {TINY} --data_dir=data --out_dir=new --batch_size=1e12", "batch_size"),
    ("range", f"finegpt train {TINY} --data_dir=data --out_dir=new --eval_iters=1e11", "eval_iters"),
    ("range", f"finegpt train {TINY} --data_dir=data --out_dir=new --learning_rate=1e999", "learning_rate"),
    ("range", "finegpt prepare --source=story.txt --out=data_new --shuffle_buffer=100 --seed=-1", "seed"),
    ("range", "finegpt quickstart --out=new --seed=-1", "seed"),
    ("shards", f"finegpt train {TINY} --data_dir=data_oov --out_dir=new", "shard"),
    ("shards", "finegpt check data_oov", "shard"),
    ("shards", "finegpt eval --ckpt=run --data_dir=data_oov --split=train --device=cpu", "shard"),
    ("shards", f"finegpt train {TINY} --data_dir=data_meta_empty --out_dir=new", "data_dir"),
    ("shards", "finegpt check data_meta_list", "data_dir"),
    ("source", "finegpt prepare --source=text_not_string.jsonl --out=data_new", "text_column"),
    ("source", "finegpt prepare --source=int_text.parquet --out=data_new", "text_column"),
    ("config file", "finegpt train latin1.py", "config"),
    ("prompt", "finegpt sample --ckpt=run --prompt=FILE:latin1_prompt.txt", "prompt"),
    ("prompt", "read_prompt(b'caf\\xe9'.decode('utf-8', 'surrogateescape'))", "prompt"),
    ("checkpoint", "finegpt train --resume --out_dir=no_optimizer", "checkpoint"),
    ("calibration", "use({'compiled': {'logits_train_copies': 'three'}})", "calibration"),
    ("lab folder", "make_home(Path('notes.txt'), 'FINEGPT_HOME')", "FINEGPT_HOME"),
    ("lab folder", "make_home(Path('dangling'), 'FINEGPT_HOME')", "FINEGPT_HOME"),
    ("resume", "finegpt train --resume --out_dir=run --batch_size=4", "resume"),
    ("resume", "finegpt train --resume --out_dir=run --gradient_accumulation_steps=2", "resume"),
    ("resume", "finegpt train --resume --out_dir=run --seed=8 --sampling=random", "resume"),
    ("resume", "finegpt train --resume --out_dir=run --block_size=16", "resume"),
    ("resume", "finegpt train --resume --out_dir=run --data_dir=data_copy", "resume"),
    ("resume", "finegpt train --resume --out_dir=run --batch_size=4 --resume_changed=batch_sise", "resume_changed"),
]


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pwned > pwned.txt",))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """Prepared data, a finished run and broken variants of both, made once; cases must not change them."""
    root = tmp_path_factory.mktemp("catalogue")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        (root / "story.txt").write_text(english_text(8000))
        make_data(root / "data", n_train=6000, n_val=1000)
        assert (
            main(
                [
                    "train",
                    "--data_dir=data",
                    "--out_dir=run",
                    "--eval_interval=1",
                    "--keep_checkpoints=2",
                    "--dtype=float32",
                    *TINY.replace("--max_iters=1", "--max_iters=2").split(),
                ]
            )
            == 0
        )
        shutil.copytree(root / "run", root / "moved_aside")
        (root / "moved_aside" / "ckpt.pt").rename(root / "moved_aside" / "ckpt.pt.broken")  # the advice for #26
        shutil.copytree(root / "run", root / "broken")  # a copy: its ckpt.pt is no longer the step file's twin
        (root / "broken" / "ckpt.pt").write_bytes((root / "run" / "ckpt.pt").read_bytes()[:4096])
        (root / "pickled").mkdir()
        torch.save({"model": {}, "iter_num": 0, "config": {}, "payload": _RunsCode()}, root / "pickled" / "ckpt.pt")
        (root / "empty").mkdir()
        shutil.copytree(root / "data", root / "data_truncated")
        shard = root / "data_truncated" / "train_000000.bin"
        shard.write_bytes(shard.read_bytes()[:-100])
        shutil.copytree(root / "data", root / "data_foreign")
        shard = root / "data_foreign" / "train_000000.bin"
        shard.write_bytes(b"\x00" * len(shard.read_bytes()))
        from finegpt.data import prepare

        prepare("story.txt", root / "data_gpt2", "gpt2", val_tokens=200, workers=0, progress=False)
        shutil.copytree(root / "data", root / "data_mixed")  # one shard of another dataset, headers intact
        shutil.copy(root / "data_gpt2" / "train_000000.bin", root / "data_mixed" / "train_000000.bin")
        prepare("story.txt", root / "data_noval", "bytes", val_fraction=0, progress=False)
        (root / "nanogpt").mkdir()
        nanogpt_state = {"model": {}, "model_args": {"n_layer": 2}, "iter_num": 5, "best_val_loss": 2.0}
        torch.save({**nanogpt_state, "config": {"batch_size": 12}}, root / "nanogpt" / "ckpt.pt")
        torch.save({"transformer.wte.weight": torch.zeros(4, 2)}, root / "weights.pt")
        (root / "huge_power.py").write_text("n_layer = 9**9**9**9\n")
        (root / "huge_string.py").write_text("out_dir = 'x' * 10**10\n")
        (root / "long_line.py").write_text("n_layer = " + "1+" * 5000 + "1\n")
        (root / "notes.txt").write_text("not a directory\n")
        (root / "typo_key.py").write_text("batch_sise = 8\n")
        (root / "runs_code.py").write_text("import os\nbatch_size = os.system('echo pwned > pwned.txt')\n")
        (root / "bad_syntax.py").write_text("batch_size = = 8\n")
        _hostile_inputs(root)
    finally:
        os.chdir(cwd)
    return root


def _hostile_inputs(root: Path) -> None:
    """Readable files that are wrong inside: an id past the vocab, meta.json of the wrong shape, text that is
    no text, a latin-1 byte, a checkpoint without its optimizer state, a symlink to nowhere."""
    import json

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from finegpt.data.shards import HEADER_BYTES

    shutil.copytree(root / "data", root / "data_oov")
    shard = root / "data_oov" / "train_000000.bin"
    raw = bytearray(shard.read_bytes())
    raw[HEADER_BYTES + 2 * 3000 : HEADER_BYTES + 2 * 3001] = np.uint16(300).tobytes()  # token 3000 := 300
    shard.write_bytes(bytes(raw))
    shutil.copytree(root / "data", root / "data_meta_empty")
    (root / "data_meta_empty" / "meta.json").write_text("{}\n")
    shutil.copytree(root / "data", root / "data_meta_list")
    meta = json.loads((root / "data" / "meta.json").read_text())
    meta["shards"][0]["tokens"] = "6000"
    (root / "data_meta_list" / "meta.json").write_text(json.dumps(meta))
    shutil.copytree(root / "data", root / "data_copy")  # the same shards elsewhere: a changed data_dir
    lines = [json.dumps({"text": f"document {i}"}) for i in range(5)] + [json.dumps({"text": 42})]
    (root / "text_not_string.jsonl").write_text("\n".join(lines) + "\n")
    pq.write_table(pa.table({"text": pa.array(range(100), type=pa.int64())}), root / "int_text.parquet")
    (root / "latin1.py").write_bytes(b"batch_size = 4\nwandb_run_name = 'caf\xe9'\n")
    (root / "latin1_prompt.txt").write_bytes(b"ROMEO: caf\xe9\n")
    shutil.copytree(root / "run", root / "no_optimizer")
    ckpt = torch.load(root / "run" / "ckpt.pt", weights_only=True)
    del ckpt["optimizer"]
    torch.save(ckpt, root / "no_optimizer" / "weights_only.pt")
    os.replace(root / "no_optimizer" / "weights_only.pt", root / "no_optimizer" / "ckpt.pt")
    os.symlink(root / "nowhere", root / "dangling")


def tree_hashes(root: Path) -> dict:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def run_case(inp: str, root: Path, capsys) -> tuple[int, str]:
    """(exit code, stderr) of a CLI case; (2, 'error: ' + message) for a Python expression that raises."""
    from finegpt.config import ModelConfig, local_accumulation
    from finegpt.lab.folder import make_home
    from finegpt.memory import RunConfig, estimate
    from finegpt.memory.calibration import use
    from finegpt.sample import read_prompt

    names = {
        "ModelConfig": ModelConfig,
        "RunConfig": RunConfig,
        "estimate": estimate,
        "local_accumulation": local_accumulation,
        "make_home": make_home,
        "Path": Path,
        "read_prompt": read_prompt,
        "use": lambda c: use(c).__enter__(),
    }
    if inp.startswith("CUDA_VISIBLE_DEVICES= finegpt "):  # a machine without CUDA, even where there is one
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
        done = subprocess.run(
            [sys.executable, "-m", "finegpt", *inp.split()[2:]], cwd=root, env=env, capture_output=True, text=True
        )
        return done.returncode, done.stderr
    cwd = os.getcwd()
    os.chdir(root)
    capsys.readouterr()
    try:
        if inp.startswith("finegpt "):
            try:
                rc = main(inp.split()[1:])
            except SystemExit as e:  # argparse's own usage errors
                rc = e.code
            return rc, capsys.readouterr().err
        try:
            eval(inp, names)
        except FinegptError as e:
            return 2, f"error: {e}\n"
        return 0, ""
    finally:
        os.chdir(cwd)


@pytest.mark.parametrize("area,inp,field", CASES, ids=[c[1][:60] for c in CASES])
def test_bad_input_gives_one_line_naming_field_and_fix(area, inp, field, workspace, capsys):
    before = tree_hashes(workspace)
    rc, err = run_case(inp, workspace, capsys)
    assert rc == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"error: {field}="), lines[0]
    assert lines[0].endswith((".", "?")), lines[0]
    after = tree_hashes(workspace)
    assert {k: v for k, v in after.items() if k in before} == before  # nothing that existed changed
    assert not (workspace / "pwned.txt").exists()
    assert not (workspace / "new").exists()  # a failed run leaves no output directory behind


def test_catalogue_covers_at_least_25_cases():
    assert len(CASES) >= 25
    assert {"config", "config file", "shards", "checkpoint", "memory"} <= {area for area, _, _ in CASES}


def test_debug_shows_the_traceback(workspace, capsys):
    cwd = os.getcwd()
    os.chdir(workspace)
    try:
        with pytest.raises(FinegptError, match="n_embd=640"):
            main(["--debug", "train", "--n_embd=640", "--n_head=12"])
    finally:
        os.chdir(cwd)


def test_cli_process_exits_2_with_one_line_and_no_traceback(tmp_path):
    cmd = [sys.executable, "-m", "finegpt", "train", "--n_embd=640", "--n_head=12"]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr == (
        "error: n_embd=640: not divisible by n_head=12. Use n_head 8, 10, 16 or 20, or n_embd 648.\n"
    )
    debug = subprocess.run([*cmd, "--debug"], cwd=tmp_path, capture_output=True, text=True)
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def render_doc(rows) -> str:
    head = [
        "# Reliability: what finegpt says when the input is wrong, and what it never loses",
        "",
        "Every bad input below gives one line naming the field and the fix; the CLI exits with code 2",
        "and shows no traceback (add `--debug` to see it), and no existing file is changed: every check that",
        "can fail (device, data, shards, vocab, a resumed checkpoint, memory on a GPU, the out_dir and its disk",
        "space) runs before the run folder is created or changed. Checkpoints are written to a temp file,",
        "fsynced and renamed; a run killed at any step resumes bit for bit (`tests/test_train_kill.py`); a",
        "truncated checkpoint is reported with the previous good one, and a checkpoint carrying pickled code",
        "is refused.",
        "",
        "A run folder records its owner in `run.json` and is locked while `train`, `prepare` or `quickstart`",
        "writes it: an OS lock (flock) on the folder's own directory, so deleting `.lock` (a note naming the",
        "holder) cannot break it, and a run whose folder is deleted stops at its next save without making it",
        "again; the OS drops the lock when the process exits, however it exits (where a directory cannot be",
        "flocked, as on NFS, the `.lock` file carries the lock instead). `--overwrite`, a quickstart",
        "rerun and notebook 04 build the new result in `<folder>/overwrite.partial/` and move it over the old",
        "one only once it is complete; of the old result they remove only the files its own list names",
        "(`run.json`'s files, `meta.json`'s shards, the quickstart's marker), never a file someone else put",
        "there. The stage is marked complete, with what it will remove, before the move, so a crash during",
        "the move is finished by the next command on that folder. A checkpoint records what decides the",
        "batch stream (the shards' fingerprint, data_dir, batch_size, gradient_accumulation_steps,",
        "block_size, sampling, seed, world size); `--resume` refuses any change unless `--resume_changed`",
        "names it, which is logged in `metrics.jsonl` and marks the run as no longer exact. `prepare`",
        "records each local source file's size, mtime and BLAKE2b hash, and a resume refuses sources that",
        "changed (a dataset streamed from the hub can only be checked by its name). Every shard is checked",
        "against its `meta.json`, and a sample of its token ids against the vocab, when a loader opens it",
        "(`finegpt check DATA_DIR` reads every id). Config files are data with limits: numbers below 2**64,",
        "strings of at most 4096 characters, 200 parts per expression, lines of 4196 characters, 1 MiB per",
        "file; they are read in UTF-8 or the encoding a PEP 263 line names.",
        "",
        "Generated from the tables in `tests/test_errors_catalogue.py` and `tests/reliability_scenarios.py` by",
        "`FINEGPT_WRITE_DOCS=1 python -m pytest tests/test_errors_catalogue.py -k doc`; the test fails when",
        "this file and the tables disagree. The commands run inside a scratch directory holding prepared",
        "bytes-tokenizer shards (`data/`), a finished tiny run (`run/`), a copy with a truncated",
        "`ckpt.pt` (`broken/`), a copy whose `ckpt.pt` was moved aside (`moved_aside/`), a checkpoint with a",
        "pickled payload (`pickled/`), a nanoGPT checkpoint (`nanogpt/`), broken shard copies, the same text",
        "prepared with GPT-2's tokenizer (`data_gpt2/`) and with `val_fraction=0` (`data_noval/`).",
        "",
        "| # | area | input | message |",
        "|---|---|---|---|",
    ]
    body = [
        f"| {i} | {area} | `{inp.replace(TINY, '<tiny model>')}` | {msg.replace('|', '&#124;')} |"
        for i, (area, inp, msg) in enumerate(rows, 1)
    ]
    scenarios = [
        "",
        "## Second processes, interrupts, full disks, changed sources",
        "",
        "These need more than one command, so each has a test (last column, in `tests/`) that creates the",
        "situation for real (a second process, a signal sent to a child process, a tmpfs that fills up, a file",
        "edited between a kill and the rerun) and checks the exit code, the message and that every earlier",
        "file is byte-identical afterwards. `<...>` stands for what varies: paths, PIDs, sizes, iterations.",
        "",
        "| # | area | situation | what finegpt does | exit | message | test |",
        "|---|---|---|---|---|---|---|",
    ]
    html = str.maketrans({"<": "&lt;", ">": "&gt;", "|": "&#124;"})  # <out> is a placeholder, not a tag
    scenarios += [
        f"| {i} | {area} | {situation} | {does} | {code} | "
        f"{(msg.removeprefix('error: ') or ('(killed: none)' if code == -9 else '(none)')).translate(html)} "
        f"| `{test}` |"
        for i, (area, situation, does, code, msg, test) in enumerate(SCENARIOS.values(), len(rows) + 1)
    ]
    return "\n".join(head + body + scenarios) + "\n"


def test_reliability_doc_matches_catalogue(workspace, capsys):
    rows = []
    for area, inp, _ in CASES:
        _, err = run_case(inp, workspace, capsys)
        msg = err.strip().removeprefix("error: ").replace(str(workspace) + os.sep, "")
        rows.append((area, inp, msg))
    text = render_doc(rows)
    if os.environ.get("FINEGPT_WRITE_DOCS") == "1":
        DOC.write_text(text)
    assert DOC.is_file() and DOC.read_text() == text, (
        "docs/reliability.md is out of date; regenerate it with FINEGPT_WRITE_DOCS=1 (see the module docstring)"
    )
