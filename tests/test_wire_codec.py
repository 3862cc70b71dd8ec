"""The wire forms of metric columns, metrics, events and log lines survive JSON both ways.

NaN and the infinities have no JSON form (orjson writes them as null), so the codec sends them as
strings; these round trips go through real JSON text (orjson and the standard library), and any
JSON at all fed to a decoder gives a record or a ValidationError, never another exception.
"""

from __future__ import annotations

import contextlib
import json
import math
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from runyard.errors import ValidationError
from runyard.model import codec
from runyard.model.records import Event, LogLine, Metric

VALUES = st.floats(allow_nan=True, allow_infinity=True)
TIMES = st.floats(min_value=0, max_value=4e9)
STEPS = st.none() | st.integers(min_value=-(2**63), max_value=2**63 - 1)
TEXT = st.text(max_size=30)
METRICS = st.builds(Metric, TEXT, VALUES, STEPS, TIMES)
EVENTS = st.builds(Event, TIMES, TEXT, TEXT)
LOGLINES = st.builds(LogLine, TIMES, TEXT, TEXT, st.none() | TEXT)
KEYS = st.sampled_from(["names", "values", "steps", "times", "name", "value", "step", "time",
                        "message", "level", "text", "stream"]) | TEXT
SCALARS = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT
           | st.sampled_from(["NaN", "Infinity", "-Infinity"]))
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(KEYS, inner, max_size=6), max_leaves=12)


def through_json(data: Any) -> Any:
    """``data`` as JSON text and back, by orjson; the standard library reads the same text."""
    text = orjson.dumps(data)
    assert json.loads(text) == orjson.loads(text)
    return orjson.loads(text)


def same(a: list[Any], b: list[Any]) -> bool:
    """Equal element by element, NaN equal to NaN and -0.0 told from 0.0 (repr does both)."""
    return [repr(x) for x in a] == [repr(y) for y in b]


@given(st.lists(METRICS, max_size=30))
def test_metric_columns_round_trip_through_json_with_nan_and_infinities(rows: list[Metric]) -> None:
    names, values = [r.name for r in rows], [r.value for r in rows]
    steps, times = [r.step for r in rows], [r.time for r in rows]
    back = codec.columns_from_dict(through_json(codec.columns_to_dict(names, values, steps, times)))
    assert back[0] == names and back[2] == steps
    assert same(back[1], values) and same(back[3], times)


@given(st.lists(METRICS, max_size=30))
def test_metric_records_round_trip_as_columns_and_one_by_one(rows: list[Metric]) -> None:
    assert same(codec.metrics_from_columns(through_json(codec.metrics_to_columns(rows))), rows)
    assert same([codec.metric_from_dict(through_json(codec.metric_to_dict(m))) for m in rows], rows)


@given(EVENTS, LOGLINES)
def test_events_and_log_lines_round_trip_through_json(event: Event, line: LogLine) -> None:
    assert codec.event_from_dict(through_json(codec.event_to_dict(event))) == event
    assert codec.logline_from_dict(through_json(codec.logline_to_dict(line))) == line


@pytest.mark.parametrize("value, text", [
    (math.nan, "NaN"), (math.inf, "Infinity"), (-math.inf, "-Infinity")])
def test_special_numbers_travel_as_their_strings(value: float, text: str) -> None:
    wire = codec.columns_to_dict(["loss"], [value], [None], [1.0])
    assert orjson.loads(orjson.dumps(wire))["values"] == [text]
    assert codec.metric_to_dict(Metric("loss", value, None, 1.0))["value"] == text


@pytest.mark.parametrize("decode, body", [
    (codec.event_from_dict, {"time": "Infinity", "message": "m"}),
    (codec.logline_from_dict, {"time": "NaN", "text": "t"}),
    (codec.metric_from_dict, {"name": "a", "value": 1.0, "time": "-Infinity"}),
])
def test_times_must_be_finite_numbers(decode: Any, body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="not a finite number"):
        decode(body)


def test_whole_numbers_in_json_decode_as_floats() -> None:
    _names, values, steps, times = codec.columns_from_dict(
        {"names": ["a"], "values": [3], "steps": [7], "times": [5]})
    assert (values, steps, times) == ([3.0], [7], [5.0])
    assert type(values[0]) is float and type(times[0]) is float


@pytest.mark.parametrize("body", [
    None, [], "x",
    {"names": ["a"], "values": [1.0], "steps": [None]},
    {"names": ["a"], "values": [1.0, 2.0], "steps": [None], "times": [1.0]},
    {"names": [1], "values": [1.0], "steps": [None], "times": [1.0]},
    {"names": ["a"], "values": ["nan"], "steps": [None], "times": [1.0]},
    {"names": ["a"], "values": [True], "steps": [None], "times": [1.0]},
    {"names": ["a"], "values": [1.0], "steps": [1.5], "times": [1.0]},
    {"names": ["a"], "values": [1.0], "steps": [None], "times": [None]},
    {"names": ["a"], "values": [1.0], "steps": [None], "times": ["NaN"]},
])
def test_malformed_columns_are_refused_with_one_line(body: Any) -> None:
    with pytest.raises(ValidationError) as info:
        codec.columns_from_dict(body)
    assert "\n" not in str(info.value)


@given(JSON)
def test_any_json_decodes_to_records_or_a_validation_error(data: Any) -> None:
    decoders = (codec.columns_from_dict, codec.metric_from_dict, codec.event_from_dict,
                codec.logline_from_dict, codec.events_from_list, codec.loglines_from_list)
    for decode in decoders:
        with contextlib.suppress(ValidationError):
            decode(data)
