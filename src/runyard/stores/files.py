"""Files written safely, shared by the ``file:`` and ``chunked:`` stores.

* Replacing a file: ``runyard.fsio.atomic_write_bytes`` (temp file, fsync, ``os.replace``,
  fsync of the folder); a reader sees the old bytes or the new ones, never a mix.
* Appending JSON lines: one record per line, appended with ``O_APPEND`` by a writer that holds
  the run's lock. A writer killed mid-append leaves an unterminated last line; the next append
  cuts it off first (it was never acknowledged), and readers skip it until then. An append that
  fails part-way (a full disk) is cut off by its writer, so a retry never writes a line twice.
* Run ids become file names, so only ids that are safe as one path segment are stored.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path
from typing import Any

from runyard.errors import StoreError, ValidationError
from runyard.fsio import atomic_write_bytes as atomic_write_bytes
from runyard.fsio import fsync_dir as fsync_dir

_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
_RESERVED_IDS = frozenset({"index"})  # index.json and index.lock live beside the runs
_TAIL_BLOCK = 1 << 16


def usable_id(run_id: object) -> bool:
    """Whether ``run_id`` can name a run's files (letters, digits, '_' and '-')."""
    return (
        isinstance(run_id, str)
        and _SAFE_ID.fullmatch(run_id) is not None
        and run_id.lower() not in _RESERVED_IDS
    )


def check_id(run_id: str) -> str:
    if not usable_id(run_id):
        raise ValidationError(
            f"invalid run id {run_id!r} for a file store: use up to 128 letters, digits, '_' "
            "and '-', starting with a letter or digit (ids from runyard.model.new_id fit)"
        )
    return run_id


def dumps(value: Any) -> bytes:
    """Compact JSON (NaN and ±inf included); a value JSON cannot hold is a ValidationError."""
    try:
        return json.dumps(value, separators=(",", ":")).encode("ascii")
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"cannot store a value that is not plain JSON data: {exc}") from None


def atomic_write_json(path: Path, value: Any) -> None:
    atomic_write_bytes(path, dumps(value))


def read_bytes(path: Path) -> bytes:
    """The file's bytes; ``FileNotFoundError`` passes through, other failures are StoreError."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror or exc}") from exc


def read_json(path: Path) -> Any:
    data = read_bytes(path)
    try:
        return json.loads(data)
    except ValueError as exc:
        raise StoreError(f"{path} is not valid JSON ({exc}); restore it or delete the run") from exc


def read_json_lines(path: Path) -> list[Any]:
    """Every complete line of a JSON-lines file, in order; a missing file has none.

    An unterminated last line is a record still being written (or torn by a killed writer)
    and is skipped.
    """
    try:
        data = read_bytes(path)
    except FileNotFoundError:
        return []
    end = data.rfind(b"\n")
    if end < 0:
        return []
    try:  # one parse of the whole file as an array: far faster than a parse per line
        rows: list[Any] = json.loads(b"[" + data[:end].replace(b"\n", b",") + b"]")
        return rows
    except ValueError:
        return _parse_lines(path, data[:end])


def count_records(path: Path) -> int:
    """How many complete lines a JSON-lines file holds (a missing file: none)."""
    try:
        return read_bytes(path).count(b"\n")
    except FileNotFoundError:
        return 0


def _parse_lines(path: Path, data: bytes) -> list[Any]:
    rows = []
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except ValueError as exc:
            raise StoreError(f"{path} line {number} is not valid JSON ({exc})") from exc
    return rows


def append_records(path: Path, payload: bytes) -> None:
    """Append complete lines; the caller holds the lock that orders writers of ``path``."""
    created = not path.exists()
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            cut_torn_tail(fd)
            write_whole(fd, payload)
        finally:
            os.close(fd)
        if created:
            fsync_dir(path.parent)
    except OSError as exc:
        raise StoreError(f"cannot append to {path}: {exc.strerror or exc}") from exc


def cut_torn_tail(fd: int) -> None:
    """Truncate the file back to just after its last newline, if it does not end with one."""
    end = os.fstat(fd).st_size
    if end == 0 or os.pread(fd, 1, end - 1) == b"\n":
        return
    while end > 0:
        start = max(0, end - _TAIL_BLOCK)
        found = os.pread(fd, end - start, start).rfind(b"\n")
        if found >= 0:
            os.ftruncate(fd, start + found + 1)
            return
        end = start
    os.ftruncate(fd, 0)


def write_whole(fd: int, payload: bytes) -> None:
    """Append ``payload`` and fsync it, or, if that fails part-way (a full disk, a file size
    limit), cut the file back to where it was: complete lines of a failed append would
    otherwise stay, and be written a second time when the caller tries again."""
    start = os.fstat(fd).st_size
    try:
        write_all(fd, payload)
        os.fsync(fd)
    except OSError:
        os.ftruncate(fd, start)
        raise


def write_all(fd: int, payload: bytes) -> None:
    """One ``os.write`` normally; a short write (full disk, signal) is continued in place."""
    view = memoryview(payload)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def remove_file(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot remove {path}: {exc.strerror or exc}") from exc


def remove_leftovers(folder: Path, name: str = "*") -> None:
    """Remove the temp files of killed writers of ``name``; only call it holding their lock."""
    for leftover in folder.glob(f".tmp-{name}-*"):
        with contextlib.suppress(OSError):
            leftover.unlink()
