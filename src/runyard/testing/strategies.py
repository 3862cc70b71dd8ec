"""Hypothesis strategies for records, for round-trip tests at serialisation boundaries."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from runyard.model import Kind, Owner, RunRecord, Status, new_id

_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\x00"),
    max_size=20,
)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _TEXT
)
JSON: st.SearchStrategy[Any] = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=10,
)
_NAME = st.from_regex(r"\A[a-z0-9][a-z0-9._-]{0,30}\Z")
_FOLDER = st.lists(st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,8}\Z"), max_size=3).map(
    lambda parts: "/" + "/".join(parts)
)
_TIME = st.floats(min_value=0, max_value=4e9, allow_nan=False)
_TAG = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cc"]),
    min_size=1,
    max_size=12,
).filter(str.strip)


@st.composite
def runs(draw: st.DrawFn) -> RunRecord:
    uid = new_id()
    return RunRecord(
        id=uid,
        name=draw(_NAME) + "-" + uid[-8:].lower(),
        folder=draw(_FOLDER),
        kind=draw(st.sampled_from(Kind)),
        status=draw(st.sampled_from(Status)),
        status_reason=draw(st.none() | _TEXT),
        description=draw(st.none() | _TEXT),
        tags=frozenset(draw(st.lists(_TAG, max_size=4))),
        metadata=draw(st.dictionaries(_TEXT, JSON, max_size=5)),
        parameters=draw(st.dictionaries(_TEXT, JSON, max_size=3)),
        created=draw(_TIME),
        started=draw(st.none() | _TIME),
        ended=draw(st.none() | _TIME),
        heartbeat=draw(st.none() | _TIME),
        owner=draw(st.none() | st.builds(Owner, _TEXT, st.integers(1, 2**22), _TIME)),
        code=draw(st.none() | st.dictionaries(_TEXT, _SCALARS, max_size=3)),
        environment=draw(st.dictionaries(_TEXT, _TEXT, max_size=3)),
        config=draw(st.dictionaries(_TEXT, _SCALARS, max_size=3)),
        origin=draw(st.none() | st.just(new_id())),
        resources=draw(st.dictionaries(_TEXT, st.floats(0, 1e12), max_size=3)),
        internals=draw(st.dictionaries(_TEXT, JSON, max_size=3)),
    )
