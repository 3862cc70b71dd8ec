"""``append_batch`` in the ``chunked:`` store: a batch's rows in three files, once, or not at all.

A batch appends to up to three of a run's append-only files (metrics, events, logs), and a
killed writer may stop between them. So, under the run's lock, the batch first appends its
record to ``batches.jsonl`` in the run's folder — ``[key, [sizes before], [bytes added]]``,
one size and length per stream file — and then its rows. Every writer of those files
settles the last record first (``settle``): if a stream file is shorter than the record says
it must be, the writer of that batch died part-way, so each file is cut back to its size
before the batch and the record dropped. The key is then not taken: the batch, sent again,
is appended whole. Readers may see a batch half-written until the next writer settles it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runyard.errors import StoreError
from runyard.stores.files import append_records, cut_torn_tail, dumps, read_json_lines

BATCHES = "batches.jsonl"
TAIL = 4096  # bytes read from the end of BATCHES to find its last record (one is < 300)


def keys(folder: Path) -> set[str]:
    """The keys of the batches appended to the run in ``folder`` (settled first)."""
    return {row[0] for row in read_json_lines(folder / BATCHES)}


def settle(folder: Path, streams: Sequence[str]) -> None:
    """Cut back a batch whose writer died part-way (see the module); hold the run's lock."""
    path = folder / BATCHES
    last = _last_record(path)
    if last is None:
        return
    _key, before, added = last
    sizes = [_size(folder / name) for name in streams]
    if all(size >= start + more for size, start, more in zip(sizes, before, added, strict=True)):
        return
    for name, start in zip(streams, before, strict=True):
        _cut(folder / name, start)
    _cut(path, _last_line_at(path.read_bytes()))


def append(folder: Path, key: str, streams: Sequence[str], payloads: Sequence[bytes]) -> None:
    """Record the batch, then append its rows (``payloads``, one per stream file)."""
    before = [_settled_size(folder / name) for name in streams]
    record: list[Any] = [key, before, [len(p) for p in payloads]]
    append_records(folder / BATCHES, dumps(record) + b"\n")
    for name, payload in zip(streams, payloads, strict=True):
        if payload:
            append_records(folder / name, payload)


def _last_record(path: Path) -> Any:
    """The last complete record of ``path`` (None: it has none), read from its tail: a plain
    append settles first, and reads a few hundred bytes for it, not every batch's record."""
    try:
        with path.open("rb") as file:
            size = file.seek(0, os.SEEK_END)
            file.seek(max(0, size - TAIL))
            tail = file.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror or exc}") from exc
    complete = tail[: tail.rfind(b"\n") + 1]
    start = _last_line_at(complete)
    if not complete or (start == 0 and size > TAIL):  # a record longer than the tail read
        rows = read_json_lines(path)
        return rows[-1] if rows else None
    try:
        return json.loads(complete[start:])
    except ValueError as exc:
        raise StoreError(f"{path} ends with a malformed record ({exc})") from exc


def _last_line_at(data: bytes) -> int:
    """Where the last complete line of ``data`` starts."""
    complete = data[: data.rfind(b"\n") + 1]
    return complete.rfind(b"\n", 0, len(complete) - 1) + 1


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _settled_size(path: Path) -> int:
    """The size of ``path`` once a record torn by a killed plain append is cut off."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return 0
    except OSError as exc:
        raise StoreError(f"cannot open {path}: {exc.strerror or exc}") from exc
    try:
        cut_torn_tail(fd)
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


def _cut(path: Path, size: int) -> None:
    try:
        if _size(path) > size:
            os.truncate(path, size)
    except OSError as exc:
        raise StoreError(f"cannot cut {path} back to {size} bytes: {exc.strerror or exc}"
                         ) from exc
