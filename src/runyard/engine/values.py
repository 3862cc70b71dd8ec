"""Task arguments and results as values: pickled, hashed, and carried inline or as blobs.

Every value a task takes or returns is pickled once (``pickle``, else ``cloudpickle``) and named
by the SHA-256 of those bytes: the digest is what the run log and the re-run cache compare. A
value whose pickle is at most ``INLINE_LIMIT`` bytes travels (and is recorded) inline; a larger
one is written to the blob store and travels as its digest, so big data crosses a process
boundary once, through the file system. A value that does not pickle has no digest: it can only
be used in the process that made it (the ``in_process`` runtime), and is never reused.
"""

from __future__ import annotations

import base64
import hashlib
import pickle
import reprlib
from binascii import b2a_base64

from runyard.errors import ValidationError

TYPE_CHECKING = False  # ``typing`` is not imported: ``from runyard import task`` skips it
if TYPE_CHECKING:
    from typing import Any

    from runyard.blobs import BlobStore

INLINE_LIMIT = 64 * 1024
_MISSING: Any = object()
_repr = reprlib.Repr()
_repr.maxstring, _repr.maxother, _repr.maxlist = 80, 80, 8


_SIMPLE = frozenset({int, float, bool, type(None)})
_pickle, _sha256 = pickle.dumps, hashlib.sha256


def short_repr(obj: Any) -> str:
    if type(obj) in _SIMPLE or (type(obj) is str and len(obj) <= 80):
        return repr(obj)
    try:
        return _repr.repr(obj)
    except Exception:  # a broken __repr__ must not break a run
        return f"<{type(obj).__name__}>"


class Value:
    """One value: its digest and size, its pickle (inline) or blob, and maybe the object.

    A plain class with slots: one is made for every task result, so it is kept small."""

    __slots__ = ("_doc", "digest", "in_blob", "obj", "payload", "size", "text")

    def __init__(self, digest: str | None, size: int, payload: bytes | None = None,
                 in_blob: bool = False, text: str = "", obj: Any = _MISSING) -> None:
        self.digest, self.size, self.payload, self.in_blob = digest, size, payload, in_blob
        self.text, self.obj = text, obj
        self._doc: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return (f"Value(digest={self.digest!r}, size={self.size}, in_blob={self.in_blob}, "
                f"text={self.text!r})")

    def __reduce__(self) -> tuple[Any, ...]:
        """The pickle (or blob) travels, never the object twice; as a plain tuple of fields
        (no instance dict: a value crosses to a worker and back with every task run)."""
        return (Value, (self.digest, self.size, self.payload, self.in_blob, self.text))

    def load(self, blobs: BlobStore | None) -> Any:
        """The object (unpickled from the payload or the blob store on first use)."""
        if self.obj is not _MISSING:
            return self.obj
        if self.payload is not None:
            data = self.payload
        elif self.in_blob and blobs is not None and self.digest is not None:
            data = blobs.read_bytes(self.digest)
        else:
            raise ValidationError("this value did not pickle; it exists only where it was made")
        self.obj = loads(data)
        return self.obj

    def to_doc(self) -> dict[str, Any]:
        """The JSON-ready record: digest, size, repr, and the inline pickle (base64)."""
        inline = None if self.payload is None else b2a_base64(self.payload, newline=False).decode()
        return {"digest": self.digest, "size": self.size, "blob": self.in_blob,
                "repr": self.text, "inline": inline}

    @property
    def doc(self) -> dict[str, Any]:
        """``to_doc()``, made once and shared (a value is never changed after it is made, and
        its record is only read: the run log's steps hold it)."""
        doc = self._doc
        if doc is None:
            doc = self._doc = self.to_doc()
        return doc

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Value:
        inline = doc.get("inline")
        payload = None if inline is None else base64.b64decode(inline)
        return cls(doc.get("digest"), int(doc.get("size", 0)), payload,
                   bool(doc.get("blob")), str(doc.get("repr", "")))


def dumps(obj: Any) -> bytes | None:
    """The pickle of ``obj`` (plain pickle first: it is faster), or ``None``."""
    try:
        return pickle.dumps(obj, protocol=5)
    except Exception:  # fall back to cloudpickle for lambdas, locals, __main__
        pass
    try:
        import cloudpickle

        return bytes(cloudpickle.dumps(obj))
    except Exception:  # the value just does not pickle
        return None


def loads(data: bytes) -> Any:
    return pickle.loads(data)


# Values already made, by class and value, for ints, bools, None and short strings: their
# ``Value`` (pickle, digest, record) never differs for an equal one of the same class, and a
# value is never changed once made, so one is shared (as CPython shares small ints). Task runs
# returning None, flags, counts or short words then record their result without pickling and
# hashing it again. (Floats are left out: 0.0 == -0.0.)
_SHARED: dict[tuple[type, Any], Value] = {}
_SHARED_MAX = 4096
_BIG = 2**63


def encode(obj: Any, blobs: BlobStore | None = None, keep: bool = True) -> Value:
    """``obj`` as a ``Value``; large pickles go to ``blobs`` if given."""
    kind = obj.__class__
    if ((kind is int and -_BIG < obj < _BIG) or (kind is str and len(obj) <= 80)
            or kind is bool or obj is None):
        key = (kind, obj)
        found = _SHARED.get(key)
        if found is None:
            if len(_SHARED) >= _SHARED_MAX:
                _SHARED.clear()
            found = _SHARED[key] = _encode(obj, None, True)
        return found
    return _encode(obj, blobs, keep)


def _encode(obj: Any, blobs: BlobStore | None, keep: bool) -> Value:
    try:
        data: bytes | None = _pickle(obj, 5)
    except Exception:  # cloudpickle, or nothing (see ``dumps``)
        data = dumps(obj)
    kind = obj.__class__
    text = repr(obj) if kind in _SIMPLE or (kind is str and len(obj) <= 80) else short_repr(obj)
    if data is None:
        return Value(None, 0, None, False, text, obj)
    digest = _sha256(data).hexdigest()
    value = Value(digest, len(data), data, False, text, obj if keep else _MISSING)
    if len(data) > INLINE_LIMIT and blobs is not None:
        blobs.put_bytes(data)
        value.payload, value.in_blob = None, True
    return value
