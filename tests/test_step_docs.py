"""A task run's step record written as text (``StepState.doc``) is ``step_to_dict`` as the
stores' encoder writes it, less each attempt's ``duration`` (computed when read)."""

from __future__ import annotations

import json

from runyard.engine.recorder import StepState
from runyard.engine.stepdoc import (
    attempt_json,
    digest_json,
    dumps,
    meta_head,
    meta_start,
    quote,
)
from runyard.engine.values import encode
from runyard.model import Attempt, Status, Step, step_from_dict, step_to_dict


def _decoded(state: StepState) -> dict[str, object]:
    name, created, text = state.doc()
    assert (name, created) == (state.name, state.created)
    decoded: dict[str, object] = json.loads(text)
    assert dumps(decoded) == text  # byte for byte what the stores' encoder writes
    assert step_to_dict(step_from_dict(decoded)) == _with_durations(decoded)
    return decoded


def _with_durations(doc: dict[str, object]) -> dict[str, object]:
    attempts = doc["attempts"]
    assert isinstance(attempts, list)
    for attempt in attempts:
        assert "duration" not in attempt
    return {**doc, "attempts": [{**a, "duration": None if a["started"] is None
                                 or a["ended"] is None else a["ended"] - a["started"]}
                                for a in attempts]}


def test_a_finished_task_run_is_its_step_dict() -> None:
    value = encode({"naïve": [1.5, None, 'quote"d']})
    inputs = "{" + ",".join([
        quote("x") + ":" + value.doc_json,
        quote("y") + ':{"digest":null,"from":' + quote("tâche-1") + "}",
    ]) + "}"
    assert value.digest is not None
    digests = {"x": value.digest, "y": None}
    marks = dumps(digests)
    state = StepState("tâche-2", "task", meta_head(meta_start("tâche", "h" * 64), "k" * 64, inputs),
                      (1, Status.RUNNING, 10.25, None, None, marks, "{}"))
    failed = (1, Status.FAILED, 10.25, 11.0, 'ValueError: "bad" \u2013 é', marks, "{}")
    state.update(Status.RUNNING, failed)
    state.update(Status.RUNNING, (2, Status.RUNNING, 12.0, None, None, marks, "{}"))
    done = (2, Status.SUCCEEDED, 12.0, 12.000001, None, marks, digest_json("result", value.digest))
    state.update(Status.SUCCEEDED, done, ',"output":' + value.doc_json)
    metadata = {"task": "tâche", "task_hash": "h" * 64, "key": "k" * 64,
                "inputs": {"x": value.to_doc(), "y": {"digest": None, "from": "tâche-1"}},
                "output": value.to_doc()}
    attempts = (Attempt(1, Status.FAILED, 10.25, 11.0, 'ValueError: "bad" \u2013 é', digests),
                Attempt(2, Status.SUCCEEDED, 12.0, 12.000001, None, digests,
                        {"result": value.digest}))
    expected = Step("tâche-2", Status.SUCCEEDED, "task", state.created, attempts, metadata)
    assert _with_durations(_decoded(state)) == step_to_dict(expected)
    assert state.step() == expected


def test_a_reused_task_run_and_a_running_one() -> None:
    value = encode(3)
    state = StepState("add-1", "task", meta_head(meta_start("add", "a" * 64), "b" * 64, "{}"))
    assert _with_durations(_decoded(state)) == step_to_dict(Step(
        "add-1", Status.RUNNING, "task", state.created, (),
        {"task": "add", "task_hash": "a" * 64, "key": "b" * 64, "inputs": {}}))
    origin = {"run": "r1", "step": "add-1"}
    extra = f',"output":{value.doc_json},"reused_from":{dumps(origin)}'
    state.update(Status.SUCCEEDED, None, extra)
    decoded = _decoded(state)
    assert decoded["status"] == "succeeded" and decoded["attempts"] == []
    assert decoded["metadata"] == {"task": "add", "task_hash": "a" * 64, "key": "b" * 64,
                                   "inputs": {}, "output": value.to_doc(),
                                   "reused_from": origin}


def test_attempt_numbers_as_the_encoder_writes_them() -> None:
    attempt = (3, Status.FAILED, 1795284225.7882793, float("inf"), None, '{"a":null}', "{}")
    assert json.loads(attempt_json(attempt)) == {
        "number": 3, "status": "failed", "started": 1795284225.7882793, "ended": float("inf"),
        "message": None, "inputs": {"a": None}, "outputs": {}}
    running = (1, Status.RUNNING, 5.5, None, "é", "{}", digest_json("r", None))
    assert json.loads(attempt_json(running)) == {
        "number": 1, "status": "running", "started": 5.5, "ended": None,
        "message": "é", "inputs": {}, "outputs": {"r": None}}
