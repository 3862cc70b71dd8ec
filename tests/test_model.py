"""The pure domain: ids, the status lifecycle, validation and codec round trips."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runyard.errors import IllegalTransition, ValidationError
from runyard.model import (
    TRANSITIONS,
    Attempt,
    Status,
    Step,
    id_time,
    looks_like_id,
    new_id,
    run_from_dict,
    run_to_dict,
    step_from_dict,
    step_to_dict,
)
from runyard.model import validate as check
from runyard.testing import make_run
from runyard.testing.strategies import runs


def test_ids_are_unique_and_sort_by_creation() -> None:
    ids = [new_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(looks_like_id(i) for i in ids[:10])


def test_id_encodes_its_time() -> None:
    assert id_time(new_id(now_ms=1_700_000_000_123)) == pytest.approx(1_700_000_000.123)
    assert new_id(now_ms=1) < new_id(now_ms=2)


@pytest.mark.parametrize("old", list(Status))
@pytest.mark.parametrize("new", list(Status))
def test_every_transition_is_checked(old: Status, new: Status) -> None:
    run = make_run(status=old)
    if new in TRANSITIONS[old]:
        assert run.with_status(new).status is new
    else:
        with pytest.raises(IllegalTransition, match=f"from {old.value} to {new.value}"):
            run.with_status(new)


def test_final_statuses_go_nowhere() -> None:
    for status in (Status.SUCCEEDED, Status.FAILED, Status.CANCELED):
        assert status.is_final and not TRANSITIONS[status]
    assert Status.LOST.is_final is False and Status.RUNNING.is_active


def test_status_timestamps() -> None:
    run = make_run().with_status(Status.RUNNING, now=5.0)
    assert run.started == 5.0 and run.ended is None
    run = run.with_status(Status.LOST, now=6.0).with_status(Status.RUNNING, now=7.0)
    assert run.started == 5.0
    run = run.with_status(Status.SUCCEEDED, "done", now=9.0)
    assert (run.ended, run.status_reason) == (9.0, "done")


def test_status_parse() -> None:
    assert Status.parse("Running") is Status.RUNNING
    with pytest.raises(ValidationError, match="unknown status 'runing'"):
        Status.parse("runing")


@pytest.mark.parametrize("name", ["a", "brave-otter", "x.y_z-1", "A" * 128])
def test_good_names(name: str) -> None:
    assert check.run_name(name) == name


@pytest.mark.parametrize("name", ["", "-a", "a b", "a/b", "../x", "é", "A" * 129, ".hidden"])
def test_bad_names(name: str) -> None:
    with pytest.raises(ValidationError):
        check.run_name(name)


@pytest.mark.parametrize(
    ("given", "normal"), [("/", "/"), ("/a", "/a"), ("/a/b/", "/a/b"), ("/my runs/x", "/my runs/x")]
)
def test_good_folders(given: str, normal: str) -> None:
    assert check.folder(given) == normal


@pytest.mark.parametrize("folder", ["", "a", "/a//b", "/a/../b", "/./a", "/a/" + "x" * 600, "//"])
def test_bad_folders(folder: str) -> None:
    with pytest.raises(ValidationError):
        check.folder(folder)


@pytest.mark.parametrize("name", ["/abs", "../x", "a/../../x", "a//b", "C:/x", "", "a\x00b"])
def test_bad_artifact_names(name: str) -> None:
    with pytest.raises(ValidationError):
        check.artifact_name(name)


def test_metric_values() -> None:
    assert check.metric_value("m", 3) == 3.0
    assert math.isnan(check.metric_value("m", float("nan")))
    for bad in ("1", None, True, [1]):
        with pytest.raises(ValidationError, match="non-numeric"):
            check.metric_value("m", bad)


@settings(max_examples=200, deadline=None)
@given(run=runs())
def test_run_dict_round_trip(run: object) -> None:
    assert run_from_dict(run_to_dict(run)) == run  # type: ignore[arg-type]


@given(st.lists(st.integers(1, 5), unique=True, min_size=1))
def test_step_round_trip(numbers: list[int]) -> None:
    step = Step("s", created=1.0)
    for n in numbers:
        step = step.with_attempt(Attempt(n, Status.FAILED, 1.0, 2.0, "m", {"a": 1}))
    assert [a.number for a in step.attempts] == sorted(numbers)
    assert step_from_dict(step_to_dict(step)) == step
