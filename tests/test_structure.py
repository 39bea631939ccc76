"""The package's shape: imports point one way (a lower room never imports a higher one), and no function
is longer than a reader can hold (about 80 lines) unless a comment above it says why."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "finegpt"

# Lowest first. A room may import only rooms on lower layers; docs/architecture.md draws this.
LAYERS = [
    {"errors", "files", "progress"},
    {"configfile", "gpus"},
    {"config", "folders"},
    {"data", "model", "tracking", "run"},
    {"step"},
    {"memory"},
    {"train"},
    {"eval"},
    {"sample"},
    {"plots"},
    {"widgets", "quickstart", "diagrams", "exercises", "calculator"},
    {"cli", "lab"},
    {"__main__"},
]
LAYER = {room: i for i, rooms in enumerate(LAYERS) for room in rooms}
MAX_FUNCTION_LINES = 80
WHY_LONG = "# long function:"


def room_of(path: Path) -> str:
    return path.relative_to(PACKAGE).with_suffix("").parts[0]


def imported_rooms(source: str) -> set[str]:
    """finegpt rooms a module imports, at the top or inside functions (a lazy import still points somewhere)."""
    rooms = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + ([f"finegpt.{a.name}" for a in node.names] if node.module == "finegpt" else [])
        else:
            continue
        rooms |= {n.split(".")[1] for n in names if n.startswith("finegpt.")}
    return rooms


def upward_imports(room: str, source: str) -> list[str]:
    return sorted(r for r in imported_rooms(source) - {room} if LAYER[r] >= LAYER[room])


def modules():
    return sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE)


def test_every_room_has_a_layer():
    rooms = {room_of(p) for p in modules()}
    assert rooms == set(LAYER), f"add to LAYERS (and docs/architecture.md): {sorted(rooms - set(LAYER))}"


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_room_imports_a_higher_one(path):
    assert upward_imports(room_of(path), path.read_text()) == []


def test_the_import_check_catches_a_lower_room_importing_a_higher_one():
    assert upward_imports("memory", "def f():\n    from finegpt.train.loop import train\n") == ["train"]
    assert upward_imports("step", "from finegpt import memory\n") == ["memory"]
    assert upward_imports("train", "from finegpt.memory import estimate\nimport finegpt.step\n") == []


def long_functions(source: str) -> list[str]:
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            if length > MAX_FUNCTION_LINES and WHY_LONG not in lines[first - 2]:
                found.append(f"{node.name} ({length} lines)")
    return found


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_function_is_longer_than_80_lines_unless_a_comment_says_why(path):
    assert long_functions(path.read_text()) == []


def test_the_length_check_counts_lines_and_reads_the_why_comment():
    body = "def f():\n" + "    x = 1\n" * MAX_FUNCTION_LINES
    assert long_functions(body) == [f"f ({MAX_FUNCTION_LINES + 1} lines)"]
    assert long_functions(f"{WHY_LONG} one table, row by row\n{body}") == []


def test_the_picture_in_architecture_md_shows_these_layers():
    doc = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    picture = doc.split("## The rooms and the one direction of imports")[1].split("```")[1]
    rows = []
    for line in picture.splitlines():
        words = line.split()
        rooms = set()
        for word in words:
            if word not in LAYER:
                break
            rooms.add(word)
        if rooms:
            rows.append(rooms)
    assert rows[::-1] == [layer for layer in LAYERS if layer != {"__main__"}]


def test_architecture_md_lists_every_module_as_the_code_describes_it():
    import importlib.util

    spec = importlib.util.spec_from_file_location("module_list", PACKAGE.parent / "tools" / "module_list.py")
    module_list = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module_list)
    doc = module_list.DOC.read_text(encoding="utf-8")
    assert module_list.rewritten(doc) == doc, "run `python tools/module_list.py` and commit docs/architecture.md"
    for path in modules():
        if path.name != "__main__.py":
            assert f"`{path.relative_to(PACKAGE.parent).as_posix()}`" in doc
