"""Steps through the store layer's encoder (``stores.stepjson``): the text is ``step_to_dict``
as the store's encoder writes it, less durations, for any step; a step of the wrong shape is
refused with a clear error. And a task run's record (``StepState``) as the recorder gives it."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runyard.engine.recorder import StepState
from runyard.engine.values import encode
from runyard.errors import ValidationError
from runyard.model import Attempt, Status, Step, step_from_dict, step_to_dict
from runyard.stores.stepjson import step_json
from runyard.testing.strategies import JSON

_ENCODE = json.JSONEncoder(allow_nan=True, separators=(",", ":")).encode
_STRICT = json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode
_TIMES = st.none() | st.floats(allow_nan=False) | st.integers(-2**40, 2**40)
_TEXT = st.text(max_size=12)

attempts = st.builds(Attempt, st.integers(1, 2**31), st.sampled_from(Status), _TIMES, _TIMES,
                     st.none() | _TEXT, st.dictionaries(_TEXT, JSON, max_size=3),
                     st.dictionaries(_TEXT, st.none() | _TEXT, max_size=3))
steps = st.builds(Step, st.from_regex(r"\A[a-z0-9][a-z0-9._-]{0,20}\Z"), st.sampled_from(Status),
                  _TEXT, st.floats(allow_nan=False) | st.integers(-2**40, 2**40),
                  st.lists(attempts, max_size=3).map(tuple),
                  st.dictionaries(_TEXT, JSON, max_size=4))


@given(steps)
def test_the_text_is_the_step(step: Step) -> None:
    text = step_json(step, _ENCODE)
    assert step_from_dict(json.loads(text)) == step
    expected = step_to_dict(step)
    for attempt in expected["attempts"]:
        del attempt["duration"]
    assert json.loads(text) == json.loads(_ENCODE(expected))


def test_a_task_run_record_as_the_driver_makes_it() -> None:
    value = encode({"naïve": [1.5, None, 'quote"d']})
    digests = {"x": value.digest, "y": None}
    head = {"task": "tâche", "task_hash": "h" * 64, "key": "k" * 64,
            "inputs": {"x": value.doc, "y": {"digest": None, "from": "tâche-1"}}}
    state = StepState("tâche-2", "task", head, attempt_inputs=digests)
    state.flight = (1, 10.25)
    running = state.step()
    assert running.status is Status.RUNNING and running.metadata == head
    assert running.attempts == (Attempt(1, Status.RUNNING, 10.25, None, None, digests),)
    failed = Attempt(1, Status.FAILED, 10.25, 11.0, 'ValueError: "bad" \u2013 é', digests)
    state.update(Status.RUNNING, failed)
    state.flight = (2, 12.0)
    done = Attempt(2, Status.SUCCEEDED, 12.0, 12.000001, None, digests, {"result": value.digest})
    state.flight = None
    final = state.finished_step(Status.SUCCEEDED, done, {"output": value.doc})
    expected = Step("tâche-2", Status.SUCCEEDED, "task", state.created, (failed, done),
                    {**head, "output": value.to_doc()})
    assert final == expected
    assert step_from_dict(json.loads(step_json(final, _STRICT))) == expected


@pytest.mark.parametrize("bad", [
    Step("", created=1.0),
    Step("a\x00b", created=1.0),
    Step("s", created="1.0"),  # type: ignore[arg-type]
    Step("s", status="sideways", created=1.0),  # type: ignore[arg-type]
    Step("s", kind=3, created=1.0),  # type: ignore[arg-type]
    Step("s", created=1.0, metadata={"x": object()}),
    Step("s", created=1.0, metadata=[1]),  # type: ignore[arg-type]
    Step("s", created=1.0, attempts=[Attempt(1)]),  # type: ignore[arg-type]
    Step("s", created=1.0, attempts=((1, "running"),)),  # type: ignore[arg-type]
    Step("s", created=1.0, attempts=(Attempt("1"),)),  # type: ignore[arg-type]
    Step("s", created=1.0, attempts=(Attempt(1, message=b"x"),)),  # type: ignore[arg-type]
    Step("s", created=1.0, attempts=(Attempt(1, started="now"),)),  # type: ignore[arg-type]
    Step("s", created=1.0, attempts=(Attempt(1, inputs={"x": {1, 2}}),)),
])
def test_a_step_of_the_wrong_shape_is_refused(bad: Step) -> None:
    with pytest.raises(ValidationError, match=r"step|name"):
        step_json(bad, _ENCODE)


def test_nan_only_where_the_store_takes_it() -> None:
    step = Step("s", created=float("nan"), metadata={"loss": float("inf")})
    assert json.loads(step_json(step, _ENCODE))["metadata"] == {"loss": float("inf")}
    with pytest.raises(ValidationError, match="not plain JSON"):
        step_json(step, _STRICT)
