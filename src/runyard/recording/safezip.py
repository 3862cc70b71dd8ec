"""Unpacking a zip that came from elsewhere, and checking it is an intact BagIt bag.

An imported bundle is untrusted input. ``extract`` refuses, before it writes anything, a
member with an absolute path, a drive, a backslash, a NUL, a ``..``, ``.`` or empty part, a
symbolic link or any other non-regular type, an encrypted member, a compression other than
stored or deflate, a name given twice, a file that is also the folder of another member, or
more members than ``max_members``. It then writes each file into a fresh folder (created
exclusively, never following a link), counting the bytes as they come out of the
decompressor: the sizes a zip declares mean nothing (a zip bomb lies about them), so the
running total is held to ``max_bytes`` and a member never gets more than it declared (its
CRC is checked at its end). ``verify_bag`` then has ``bagit`` check the SHA-512 of every
payload and tag file, the payload's completeness and its octet count.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import zipfile
import zlib
from pathlib import Path

from runyard.errors import IntegrityError

CHUNK = 1 << 20
MAX_MEMBERS = 1_000_000
_DRIVE = re.compile(r"^[A-Za-z]:")


def extract(path: Path, dest: Path, *, max_bytes: int | None = None,
            max_members: int = MAX_MEMBERS) -> int:
    """Unpack the zip at ``path`` into the empty folder ``dest``; the bytes written."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise _bad(path, f"it is not a readable zip ({exc})") from None
    with archive:
        members = archive.infolist()
        check_members(path, members, max_members)
        limit = shutil.disk_usage(dest).free if max_bytes is None else max_bytes
        if sum(m.file_size for m in members) > limit:
            raise _bad(path, f"it would unpack to more than {limit} bytes")
        total = 0
        for member in members:
            if member.is_dir():
                (dest / member.filename).mkdir(parents=True, exist_ok=True)
            else:
                total += _extract_one(path, archive, member, dest, limit - total)
    return total


def check_members(path: Path, members: list[zipfile.ZipInfo], max_members: int) -> None:
    """Refuse the zip if any member is unsafe (see the module docstring)."""
    if len(members) > max_members:
        raise _bad(path, f"it has {len(members)} members, more than {max_members}")
    files: set[str] = set()
    folders: set[str] = set()
    for member in members:
        name = _checked_name(path, member)
        if name in files or name in folders:
            raise _bad(path, f"the member {name!r} appears twice")
        (folders if member.is_dir() else files).add(name)
    for name in files | folders:
        parts = name.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in files:
                raise _bad(path, f"the member {name!r} lies below the file "
                           f"{'/'.join(parts[:i])!r}")


def _checked_name(path: Path, member: zipfile.ZipInfo) -> str:
    raw = member.filename
    name = raw[:-1] if member.is_dir() else raw
    if (not name or name.startswith("/") or "\\" in name or "\x00" in name
            or _DRIVE.match(name)):
        raise _bad(path, f"the member {raw[:80]!r} has an absolute or malformed path")
    if any(part in ("", ".", "..") for part in name.split("/")):
        raise _bad(path, f"the member {raw[:80]!r} has a '..', '.' or empty path part")
    kind = stat.S_IFMT(member.external_attr >> 16)
    if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
        what = "a symbolic link" if kind == stat.S_IFLNK else "not a regular file"
        raise _bad(path, f"the member {raw[:80]!r} is {what}")
    if member.flag_bits & 0x1:
        raise _bad(path, f"the member {raw[:80]!r} is encrypted")
    if member.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise _bad(path, f"the member {raw[:80]!r} uses an unsupported compression")
    return name


def _extract_one(path: Path, archive: zipfile.ZipFile, member: zipfile.ZipInfo, dest: Path,
                 room: int) -> int:
    target = dest / member.filename
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    written = 0
    try:
        with archive.open(member) as source:
            while chunk := source.read(CHUNK):
                written += len(chunk)
                if written > room or written > member.file_size:
                    raise _bad(path, "it unpacks to more bytes than it declares (a zip bomb?)")
                _write_all(fd, chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError) as exc:
        raise _bad(path, f"the member {member.filename[:80]!r} is damaged ({exc})") from None
    finally:
        os.close(fd)
    if written != member.file_size:
        raise _bad(path, f"the member {member.filename[:80]!r} is truncated")
    return written


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def verify_bag(path: Path, folder: Path) -> None:
    """``IntegrityError`` unless ``folder`` is a complete BagIt bag whose SHA-512 manifest
    and tag manifest match every file."""
    import bagit

    for needed in ("bagit.txt", "manifest-sha512.txt", "tagmanifest-sha512.txt"):
        if not (folder / needed).is_file():
            raise _bad(path, f"it is not a BagIt bag with SHA-512 manifests (no {needed})")
    if (folder / "fetch.txt").exists():
        raise _bad(path, "its bag lists files to fetch from elsewhere (fetch.txt)")
    try:
        bagit.Bag(str(folder)).validate(processes=1)
    except bagit.BagError as exc:
        raise _bad(path, f"the bag does not verify: {_details(exc)}") from None


def _details(exc: Exception) -> str:
    parts = [str(exc)]
    parts += [str(d) for d in getattr(exc, "details", None) or ()][:3]
    return " ".join("; ".join(parts).split())[:400]


def _bad(path: Path, why: str) -> IntegrityError:
    return IntegrityError(f"cannot import {path}: {why}; it is damaged or was tampered with, "
                          "and nothing was imported")
