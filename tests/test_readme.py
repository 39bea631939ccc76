"""The README reads whole: rendered with markdown-it, it has no stray placeholder, no repeated section or
block, no broken link, and every command in its ```bash blocks is a real finegpt command with real flags
(parsed by the CLI's own argparse parser), a real make target, or a file in this repository."""

import re
import shlex
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from finegpt.cli import build_parser
from finegpt.config import MODEL_KEYS, TRAIN_KEYS, WHAT_IF, split_settings

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9]*_")  # MULTI_, TODO_, FRESH_MACHINE_TIMES: a template left behind
OTHER_COMMANDS = {"pip", "voila", "export", "srun", ".", "source"}  # not ours; named in the README on purpose
MEMORY_KEYS = TRAIN_KEYS | MODEL_KEYS | set(WHAT_IF) | {"world_size", "gpu"}


def tokens():
    return MarkdownIt("commonmark").parse(README.read_text(encoding="utf-8"))


def bash_blocks() -> list[str]:
    return [t.content for t in tokens() if t.type == "fence" and t.info.strip() == "bash"]


def commands(block: str) -> list[list[str]]:
    """Each command of a bash block as words: continuation lines joined, comments dropped, split at &&."""
    found = []
    for line in block.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        while words:
            cut = words.index("&&") if "&&" in words else len(words)
            found.append(words[:cut])
            words = words[cut + 1 :]
    return [c for c in found if c]


def finegpt_args(words: list[str]) -> list[str] | None:
    """The arguments after `finegpt`, `python -m finegpt` or `torchrun ... -m finegpt`; None for other commands."""
    if words[0] == "finegpt":
        return words[1:]
    for i in range(len(words) - 1):
        if words[i] == "-m" and words[i + 1] == "finegpt" and words[0] in ("python", "torchrun", "srun"):
            return words[i + 2 :]
    return None


def check_finegpt(args: list[str]) -> None:
    """Parse as `finegpt` does; --key=value overrides must name a setting the subcommand knows."""
    parser = build_parser()
    sub = next((parser.subcommands[a] for a in args if a in parser.subcommands), None)
    if sub is not None and sub.get_default("accepts_overrides"):  # as finegpt.cli.main reads settings
        args, settings = split_settings(args, {n for action in sub._actions for n in action.option_strings})
        args = args + settings
    parsed, extra = parser.parse_known_args(args)  # unknown flags come back in `extra`; bad choices exit
    keys = MEMORY_KEYS if parsed.command == "memory" else TRAIN_KEYS | MODEL_KEYS
    assert not extra or getattr(parsed, "accepts_overrides", False), f"unknown arguments {extra}"
    for arg in extra:
        assert arg.startswith("--") and "=" in arg, f"not a --key=value override: {arg}"
        assert arg[2:].split("=", 1)[0] in keys, f"unknown setting {arg}"
    if getattr(parsed, "config", None):
        assert (ROOT / parsed.config).is_file(), f"no config file {parsed.config}"


def make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][a-z_-]*):", (ROOT / "Makefile").read_text(), re.M))


def check_command(words: list[str]) -> None:
    args = finegpt_args(words)
    if args is not None:
        check_finegpt(args)
    elif words[0] == "make":
        assert set(words[1:]) <= make_targets(), f"not a Makefile target: {words}"
    elif words[0] == "python":
        if words[1] == "-m":
            assert words[2] in ("pytest", "venv", "pip", "http.server"), words
        elif words[1] != "-c":
            assert (ROOT / words[1]).is_file(), f"no such script {words[1]}"
    elif words[0].startswith("#!"):
        pass
    else:
        assert words[0] in OTHER_COMMANDS, f"unknown command {words[0]!r}"


@pytest.mark.parametrize("block", bash_blocks(), ids=lambda b: b.splitlines()[0][:40])
def test_every_bash_command_is_a_real_command_with_real_flags(block):
    for words in commands(block):
        check_command(words)


def test_the_command_check_catches_a_wrong_subcommand_flag_or_setting():
    for bad in [
        "finegpt trian configs/gpt2_124m.py",
        "finegpt sample --ckpt out --temprature 0.8",
        "finegpt train configs/gpt2_124m.py --learnig_rate=1e-3",
        "torchrun --standalone --nproc_per_node=4 -m finegpt train --fsdp_mode=True",
        "make quickstrat",
        "finegpt memory --world_size=8 --sharding=fsdp ...",
    ]:
        with pytest.raises((AssertionError, SystemExit)):
            for words in commands(bad):
                check_command(words)


def test_no_stray_placeholder_or_broken_fence():
    for t in tokens():
        if t.type == "inline":
            for line in t.content.splitlines():
                assert not PLACEHOLDER.match(line), f"placeholder at a line start: {line[:60]!r}"
                assert "```" not in line, f"a code fence that did not open: {line[:60]!r}"


def test_no_section_paragraph_or_block_appears_twice():
    toks = tokens()
    headings = [toks[i + 1].content for i, t in enumerate(toks) if t.type == "heading_open"]
    paragraphs = [toks[i + 1].content for i, t in enumerate(toks) if t.type == "paragraph_open"]
    fences = [t.content for t in toks if t.type == "fence"]
    for kind, items in (("heading", headings), ("paragraph", paragraphs), ("code block", fences)):
        repeated = {x for x in items if items.count(x) > 1}
        assert not repeated, f"{kind} repeated: {sorted(repeated)[0][:80]!r}"


def test_relative_links_and_images_point_at_files():
    for t in tokens():
        for child in t.children or []:
            target = child.attrs.get("href") or child.attrs.get("src")
            if target and not re.match(r"[a-z]+:", str(target)) and not str(target).startswith("#"):
                assert (ROOT / str(target)).exists(), f"broken link {target}"


def test_the_multi_gpu_section_covers_torchrun_nodes_slurm_fsdp_and_per_rank_memory():
    section = README.read_text().split("## More than one GPU")[1].split("\n## ")[0]
    for needle in ("--standalone", "--nnodes", "#SBATCH", "--fsdp=True", "finegpt memory", "--world_size"):
        assert needle in section, needle
