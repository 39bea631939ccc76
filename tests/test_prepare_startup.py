"""`finegpt prepare`'s fixed costs: with worker processes it leaves none behind (when it exits, its process
group is empty: the workers are joined, and so is the resource tracker that spawn starts beside them), and
it never imports pandas (pyarrow.compute's first call does, a second of start-up per process)."""

import os
import subprocess
import sys

import pyarrow as pa

from finegpt.data.encode import byte_lengths


def group_members(pgid: int) -> list[str]:
    """`pid command` of every live process whose process group is `pgid`, read from /proc."""
    members = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = open(f"/proc/{pid}/stat").read()
            cmdline = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode().strip()
        except OSError:  # it ended while we looked
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # state, ppid, pgrp, ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(f"{pid} {cmdline}")
    return members


def test_prepare_with_workers_leaves_no_process_in_its_group(tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("The quick brown fox jumps over the lazy dog. " * 2000)
    cmd = [sys.executable, "-m", "finegpt", "prepare", "--source", str(src), "--out", str(tmp_path / "out")]
    cmd += ["--tokenizer", "gpt2", "--workers", "2", "--val_tokens", "100", "--no_progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert (tmp_path / "out" / "meta.json").is_file()
    assert group_members(proc.pid) == []  # the group's id is the leader's pid (start_new_session)


def test_byte_lengths_read_offsets_of_sliced_null_and_chunked_arrays():
    texts = pa.array(["", "héllo", None, "ab", "€"])
    assert byte_lengths(texts).tolist() == [0, 6, 0, 2, 3]
    assert byte_lengths(texts.slice(1, 3)).tolist() == [6, 0, 2]
    assert byte_lengths(texts.cast(pa.large_string())).tolist() == [0, 6, 0, 2, 3]
    assert byte_lengths(pa.chunked_array([texts.slice(0, 2), texts.slice(3)])).tolist() == [0, 6, 2, 3]


def test_prepare_of_a_parquet_file_imports_no_pandas(tmp_path):
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": ["one document", None, "another one"] * 50}), tmp_path / "in.parquet")
    code = (
        "import sys; from finegpt.data import prepare; "
        f"prepare({str(tmp_path / 'in.parquet')!r}, {str(tmp_path / 'out')!r}, 'gpt2', val_tokens=10, workers=0, "
        "progress=False); print('pandas' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stdout.strip().splitlines()[-1] == "False", out.stderr
