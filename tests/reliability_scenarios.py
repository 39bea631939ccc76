"""The hostile situations that need more than one command (a second process, a signal, a full disk, a
changed source), with the one line finegpt answers each with. Their tests assert these lines, and
docs/reliability.md lists them (tests/test_errors_catalogue.py renders this table)."""

import re

# key: (area, situation, what finegpt does, exit code, message with <placeholders> ('' when none), test)
SCENARIOS = {
    "lock_train": (
        "run folder",
        "a second `finegpt train` on a folder another `finegpt train` is writing",
        "fails at once, naming the first process; the OS drops the lock when that process exits, however",
        2,
        "error: out_dir='<out>': is in use by another finegpt process (PID <pid> on <host>: `finegpt train`, "
        "since <time>). Wait for it to finish or stop it, or choose another --out_dir.",
        "test_run_folders.py::test_second_process_on_a_locked_run_folder_fails_at_once_naming_the_first",
    ),
    "lock_prepare": (
        "run folder",
        "a second `finegpt prepare` into a folder another prepare is writing",
        "fails at once, naming the first process",
        2,
        "error: out='<out>': is in use by another finegpt process (PID <pid> on <host>: `finegpt prepare`, "
        "since <time>). Wait for it to finish or stop it, or choose another --out.",
        "test_run_folders.py::test_second_prepare_into_a_locked_folder_fails_at_once",
    ),
    "overwrite_train_killed": (
        "overwrite",
        "`finegpt train --overwrite` killed (SIGKILL) halfway through the new run",
        "the earlier run is byte-identical; the new one was building in `overwrite.partial/`; "
        "a rerun replaces the earlier run once it finishes",
        -9,
        "",
        "test_run_folders.py::test_train_overwrite_killed_midway_leaves_the_earlier_run_byte_identical",
    ),
    "overwrite_prepare_bad_byte": (
        "overwrite",
        "`finegpt prepare --overwrite` from a jsonl source with a bad byte on line 3501, after 20 new shards",
        "the earlier shards are byte-identical (the new ones were building in `overwrite.partial/`)",
        2,
        "error: source='<file>': invalid UTF-8 at line <n> (byte 0xff). Re-encode the file as UTF-8, "
        "e.g. `iconv -f latin1 -t utf-8 in.txt > out.txt`.",
        "test_run_folders.py::test_prepare_overwrite_failing_on_a_bad_byte_leaves_the_old_shards_byte_identical",
    ),
    "overwrite_quickstart_killed": (
        "overwrite",
        "`finegpt quickstart` rerun and killed (SIGKILL) once it has prepared its data again, in a folder "
        "where the student also keeps notes",
        "the earlier quickstart's data, checkpoints and logs are byte-identical; the rerun then replaces only "
        "the files its marker lists as the quickstart's own: the notes stay",
        -9,
        "",
        "test_quickstart.py::test_quickstart_rerun_killed_midway_keeps_the_earlier_output",
    ),
    "overwrite_notebook_04": (
        "overwrite",
        "notebook 04 run again (smoke mode, through `lab.fresh_run`), its kernel killed (SIGKILL) halfway",
        "the earlier run's model is byte-identical (the new run was building beside it); an interrupted rerun "
        "resumes there (`lab.resume_run`) and replaces the earlier run only once it finishes",
        -9,
        "",
        "test_nothing_lost.py::test_notebook_04_rerun_killed_midway_keeps_the_earlier_model",
    ),
    "overwrite_train_listed": (
        "overwrite",
        "`finegpt train --overwrite` in a folder where the user keeps notes.txt and a wandb/ folder of their own",
        "removes only the earlier run's files that its run.json lists; the user's files stay byte-identical",
        0,
        "",
        "test_nothing_lost.py::test_train_overwrite_removes_only_the_files_its_earlier_run_listed",
    ),
    "overwrite_prepare_listed": (
        "overwrite",
        "`finegpt prepare --overwrite` into a data folder holding a README and a file named like a shard",
        "removes only the old shards its meta.json and manifest.json list; the user's files stay",
        0,
        "",
        "test_nothing_lost.py::test_prepare_overwrite_removes_only_the_files_its_meta_listed",
    ),
    "lock_file_deleted": (
        "run folder",
        "`rm run/.lock` while `finegpt train` writes run/, then a second `finegpt train --resume` on it",
        "the lock is an flock on the folder itself, so the second run fails at once, naming the first from the "
        "OS's lock table; the first puts the note back at its next save",
        2,
        "error: out_dir='<out>': is in use by another finegpt process (PID <pid> on <host>: `<command>`; its "
        ".lock note was deleted). Wait for it to finish or stop it, or choose another --out_dir.",
        "test_nothing_lost.py::test_deleting_the_lock_file_does_not_unlock_the_folder",
    ),
    "folder_deleted": (
        "run folder",
        "`rm -rf run` while `finegpt train` writes it (and, a second time, another run made run/ again)",
        "stops at its next save, writes nothing and never makes the folder again; the other run's files are "
        "byte-identical",
        2,
        "error: out_dir='<out>': <how> while this process was writing it, so this run stopped without saving and "
        "did not make it again. Start again with a new --out_dir, or put the folder back from a copy and resume.",
        "test_nothing_lost.py::test_a_run_whose_folder_is_deleted_stops_at_its_next_save",
    ),
    "resume_data_changed": (
        "resume",
        "`finegpt prepare --overwrite` remakes the data from another text, then `finegpt train --resume`",
        "refuses, naming the data's old and new fingerprint (a new world size or any other recorded setting: the same)",
        2,
        "error: resume='<out>': would not continue the same run, since its checkpoint was written with other "
        "settings: data fingerprint <old> -> <new> (the shards were prepared again). Resume with the "
        "checkpoint's settings (leave these out), or pass --resume_changed=data to continue anyway (logged in "
        "metrics.jsonl; the run is no longer exact).",
        "test_nothing_lost.py::test_resume_refuses_data_prepared_again_and_a_new_world_size_then_continues_on_request",
    ),
    "resume_changed_allowed": (
        "resume",
        "the same with `--resume_changed=batch_size,data` (and --batch_size=4)",
        "continues; metrics.jsonl gets a row naming each change (old, new) with exact false, and the "
        "checkpoints and run.json say exact false",
        0,
        "",
        "test_nothing_lost.py::test_resume_refuses_data_prepared_again_and_a_new_world_size_then_continues_on_request",
    ),
    "prepare_no_room": (
        "disk",
        "`finegpt prepare --tokens=300000` into a 200 KiB tmpfs",
        "refuses before anything is written",
        2,
        "error: out='<out>': has <free> free, but the shards need about <need>. Free some disk space, prepare "
        "fewer --tokens, or choose another --out.",
        "test_nothing_lost.py::test_prepare_on_a_full_disk_stops_with_one_line_and_whole_shards",
    ),
    "prepare_disk_full": (
        "disk",
        "`finegpt prepare` without a budget fills a 200 KiB tmpfs",
        "stops with one line; every shard it lists is whole, no temp file is left, and the same command "
        "resumes once there is room",
        2,
        "error: out='<out>': the disk is full (No space left on device) with <free> free: <n> shards (<tokens> "
        "tokens) are complete and no partial file is left. Free some disk space or choose another --out, then "
        "rerun the same command to resume.",
        "test_nothing_lost.py::test_prepare_on_a_full_disk_stops_with_one_line_and_whole_shards",
    ),
    "calibration_damaged": (
        "calibration",
        "calibration.json rewritten with a number as text",
        "warns once (a UserWarning) and estimates with the cited defaults until the file is restored",
        0,
        "calibration='<file>': compiled.logits_train_copies is \"three\", which the memory model cannot read. "
        "Restore the file (git checkout), or rerun the bench that wrote it. Using the cited defaults until it "
        "is restored.",
        "test_nothing_lost.py::test_a_damaged_calibration_file_warns_once_and_the_cited_defaults_apply",
    ),
    "lab_folder_read_only": (
        "lab folder",
        "`FINEGPT_HOME` on a read-only mount (a file there, or a symlink to nowhere: the catalogue above)",
        "the first lab cell stops with one line",
        "n/a",
        "FINEGPT_HOME='<path>': cannot be created (Read-only file system). Point FINEGPT_HOME at a folder you "
        "can write to, e.g. export FINEGPT_HOME=~/finegpt-lab.",
        "test_nothing_lost.py::test_a_read_only_lab_folder_is_one_line",
    ),
    "hint_quoted": (
        "paths",
        "a run folder or data folder whose name holds a space",
        "every command a hint prints quotes its paths (shlex.quote), so it can be pasted as it is",
        "n/a",
        "Resume with `finegpt train --resume --out_dir='my run'`",
        "test_nothing_lost.py::test_hints_quote_the_paths_they_print",
    ),
    "changed_source": (
        "resume",
        "`finegpt prepare` killed, a source file edited, the same command run again",
        "refuses (a resume would mix two sources); restoring the file resumes, --overwrite starts over",
        2,
        "error: source='<source>': changed since the unfinished prepare in '<out>' started: <file> is now <n> "
        "bytes, was <m>, and its content differs. Restore the old files and rerun to resume, or pass "
        "--overwrite to start over from the new ones.",
        "test_run_folders.py::test_prepare_rerun_after_kill_with_a_changed_source_refuses_then_starts_over",
    ),
    "sigint": (
        "interrupt",
        "Ctrl-C (SIGINT) during `finegpt train`",
        "finishes the step, saves a checkpoint, exits 130; `--resume` ends bit for bit where an uninterrupted run ends",
        130,
        "stopped at iter <iter> by SIGINT: checkpoint saved to '<out>/ckpt.pt'. "
        "Resume with `finegpt train --resume --out_dir=<out>`.",
        "test_interrupts.py::test_sigint_saves_the_step_and_resume_is_bitwise_identical",
    ),
    "sigterm": (
        "interrupt",
        "SIGTERM (a scheduler's stop) during `finegpt train --overwrite`",
        "saves into `overwrite.partial/` and exits 143; the earlier run is kept; resuming there finishes "
        "the run and replaces it",
        143,
        "stopped at iter <iter> by SIGTERM: checkpoint saved to '<out>/overwrite.partial/ckpt.pt'. Resume "
        "with `finegpt train --resume --out_dir=<out>/overwrite.partial` (the earlier run in '<out>' is kept "
        "until this one finishes).",
        "test_interrupts.py::test_sigterm_during_overwrite_keeps_the_earlier_run_until_the_resumed_one_finishes",
    ),
    "second_sigint": (
        "interrupt",
        "a second Ctrl-C while the first is finishing its step",
        "exits at once (130); the last good checkpoint is byte-identical and no temp file is left",
        130,
        "stopped at once by SIGINT; the last good checkpoint is '<out>/ckpt.pt'. "
        "Resume with `finegpt train --resume --out_dir=<out>`.",
        "test_interrupts.py::test_second_sigint_stops_at_once_with_the_last_good_checkpoint_intact",
    ),
    "disk_full": (
        "disk",
        "the disk fills up (a small tmpfs) while `finegpt train` runs; the next save fails",
        "removes the temp file, keeps every earlier checkpoint byte-identical, says the space needed",
        2,
        "error: out_dir='<out>': the disk is full (No space left on device): the checkpoint of iter <iter> "
        "needs about <need> and <free> is free, so it was not saved and no partial file is left. Free at "
        "least <more> (or lower keep_checkpoints), then resume from '<out>/ckpt.pt' with "
        "`finegpt train --resume --out_dir=<out>`.",
        "test_interrupts.py::test_a_save_that_finds_no_space_leaves_no_temp_file_and_names_the_space_needed",
    ),
    "file_too_large": (
        "disk",
        "the same where no tmpfs can be mounted: RLIMIT_FSIZE makes the write fail (EFBIG)",
        "the same, with the reason the OS gave",
        2,
        "error: out_dir='<out>': the file system refused a file this large (File too large): the checkpoint of "
        "iter <iter> needs about <need> and <free> is free, so it was not saved and no partial file is left. "
        "Raise the file size limit or use another disk, then resume from '<out>/ckpt.pt' with "
        "`finegpt train --resume --out_dir=<out>`.",
        "test_interrupts.py::test_a_save_that_finds_no_space_leaves_no_temp_file_and_names_the_space_needed",
    ),
    "preflight_keep": (
        "disk",
        "a tmpfs with room for three checkpoints of the model, and keep_checkpoints=3 (four at a save)",
        "refuses before anything is written; keep_checkpoints=1 then fits and trains",
        2,
        "error: out_dir='<out>': has <free> free, but keep_checkpoints=3 needs <need> (checkpoints of about "
        "<size>, one more while the next is written). Free some disk space, lower keep_checkpoints, or pick "
        "another --out_dir.",
        "test_interrupts.py::test_preflight_space_check_counts_keep_checkpoints",
    ),
    "memory": (
        "memory",
        "on a GPU: a micro-batch finegpt.memory says cannot fit the card",
        "refuses before the run folder is created, with a batch that fits",
        2,
        "error: batch_size=<b>: finegpt.memory predicts a <peak> GiB peak (<phase>), more than the <total> GiB "
        "of <device>. Use batch_size=<best> with gradient_accumulation_steps=<gas> (the same tokens per step); "
        "`finegpt memory` shows the terms.",
        "test_run_folders.py::test_memory_check_refuses_a_batch_the_card_cannot_hold",
    ),
}


def assert_scenario(key: str, text: str, one_line: bool = True, **values) -> dict:
    """text must be the scenario's message (one line; with one_line=False, its last line); values pin
    placeholders, the others match anything. Returns the placeholders' values."""
    template = SCENARIOS[key][4]
    pattern = "".join(
        f"(?P<{part[1:-1]}_{i}>.+?)" if part.startswith("<") else re.escape(part)
        for i, part in enumerate(re.split(r"(<[a-z]+>)", template))
    )
    lines = text.strip().splitlines()
    assert lines and (len(lines) == 1 or not one_line), f"want one line: {template}\ngot:\n{text}"
    found = re.fullmatch(pattern, lines[-1])
    assert found, f"\n got: {lines[-1]}\nwant: {template}"
    got = {}
    for name, value in found.groupdict().items():
        got.setdefault(name.rsplit("_", 1)[0], set()).add(value)
    for name, want in values.items():
        assert got[name] == {str(want)}, (name, got[name], want)
    return {k: v.pop() for k, v in got.items() if len(v) == 1}
