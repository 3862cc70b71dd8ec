"""The store contract's parts that a server builds on: keyset paging of the run list, batches
appended exactly once per key, one metric's series in arrays, and streams read from a position.

Mixed into ``RunStoreContract``, so every backend (and the ``http://`` store) passes them.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from runyard.errors import RunNotFound, ValidationError
from runyard.model import Event, Kind, LogLine, Metric, Status
from runyard.stores.base import RunFilter, RunStore
from runyard.stores.streams import MetricColumns, in_ranges
from runyard.testing.factories import make_run


def columns(*metrics: tuple[str, float, int | None, float]) -> MetricColumns:
    names, values, steps, times = (list(c) for c in zip(*metrics, strict=True))
    return MetricColumns(names, values, steps, times)


def paged(store: RunStore, wanted: RunFilter | None, newest_first: bool, size: int) -> list[str]:
    """Every run's id, read ``size`` at a time, each page after the last id of the one before."""
    ids: list[str] = []
    after = None
    while True:
        page = store.list_runs(wanted, newest_first=newest_first, limit=size, after=after)
        ids += [r.id for r in page]
        if len(page) < size:
            return ids
        after = page[-1].id


B = TypeVar("B", int, float)


def _bounds(draw: random.Random, pick: Callable[[], B]) -> tuple[B | None, B | None] | None:
    """No bounds, a lower or an upper bound, or both (the lower one first)."""
    kind = draw.randrange(4)
    if kind == 0:
        return None
    if kind == 1:
        return pick(), None
    if kind == 2:
        return None, pick()
    low, high = sorted([pick(), pick()])
    return low, high


class StreamContract:
    """Behaviour shared by every backend; the subclass provides the ``store`` fixture."""

    # -- keyset paging ------------------------------------------------------------------------
    def test_after_pages_through_every_run_in_both_orders(self, store: RunStore) -> None:
        ids = [store.create_run(make_run()).id for _ in range(7)]
        for size in (1, 3, 7, 10):
            assert paged(store, None, True, size) == ids[::-1]
            assert paged(store, None, False, size) == ids
        assert [r.id for r in store.list_runs(after=ids[3])] == ids[:3][::-1]
        assert [r.id for r in store.list_runs(after=ids[3], newest_first=False)] == ids[4:]
        assert [r.id for r in store.list_runs(after=ids[3], limit=1, offset=1)] == [ids[1]]

    def test_after_a_run_that_is_gone_still_pages(self, store: RunStore) -> None:
        ids = [store.create_run(make_run()).id for _ in range(4)]
        store.delete_run(ids[2])
        assert [r.id for r in store.list_runs(after=ids[2])] == [ids[1], ids[0]]
        assert [r.id for r in store.list_runs(after=ids[2], newest_first=False)] == [ids[3]]
        assert store.list_runs(after="0") == []  # before every id
        assert [r.id for r in store.list_runs(after="z")] == [ids[3], ids[1], ids[0]]

    @pytest.mark.parametrize("criteria", [
        {"tags": frozenset({"even"})},
        {"tags": frozenset({"even", "all"})},
        {"status": frozenset({Status.RUNNING})},
        {"folder": "/even"},
        {"name": "even"},
        {"kind": Kind.COMMAND},
        {"created_since": 103.0, "created_until": 108.0},
        {"tags": frozenset({"all"}), "folder": "/even", "status": frozenset({Status.RUNNING})},
    ])
    def test_after_pages_with_every_filter(self, store: RunStore, criteria: dict[str, Any]
                                           ) -> None:
        for i in range(10):
            even = i % 2 == 0
            run = store.create_run(make_run(
                name=f"{'even' if even else 'odd'}-{i}-{make_run().name}",
                folder="/even" if even else "/odd", created=100.0 + i,
                tags=frozenset({"all", "even"} if even else {"all"}),
                kind=Kind.COMMAND if even else Kind.TRACKED))
            if even:
                store.update_status(run.id, Status.RUNNING)
        wanted = RunFilter(**criteria)
        expected = [r.id for r in store.list_runs(wanted)]
        assert expected and len(expected) < 10
        for size in (1, 2, 4):
            assert paged(store, wanted, True, size) == expected
            assert paged(store, wanted, False, size) == expected[::-1]

    # -- batches ----------------------------------------------------------------------------
    def test_a_batch_is_appended_once_per_key(self, store: RunStore) -> None:
        run = store.create_run(make_run())
        batch = columns(("loss", 0.5, 1, 10.0), ("acc", 0.9, 1, 10.0))
        said, line = Event(10.0, "epoch", "info"), LogLine(10.0, "hello", "stdout", None)
        assert store.append_batch(run.id, "k-1", metrics=batch, events=[said], logs=[line])
        assert not store.append_batch(run.id, "k-1", metrics=batch, events=[said], logs=[line])
        assert not store.append_batch(run.id, "k-1")  # the key decides, not the content
        assert store.read_metrics(run.id) == [Metric("loss", 0.5, 1, 10.0),
                                              Metric("acc", 0.9, 1, 10.0)]
        assert store.read_events(run.id) == [said]
        assert store.read_logs(run.id) == [line]
        assert store.append_batch(run.id, "k-2", metrics=batch)
        assert len(store.read_metrics(run.id)) == 4
        other = store.create_run(make_run())  # keys are a run's own
        assert store.append_batch(other.id, "k-1", events=[said])
        assert store.read_events(other.id) == [said]

    def test_an_empty_batch_still_takes_its_key(self, store: RunStore) -> None:
        run = store.create_run(make_run())
        assert store.append_batch(run.id, "empty")
        assert not store.append_batch(run.id, "empty", events=[Event(1.0, "late", "info")])
        assert store.read_events(run.id) == []

    def test_batch_rows_follow_the_plain_appends_in_order(self, store: RunStore) -> None:
        run = store.create_run(make_run())
        store.append_metrics(run.id, [Metric("x", 1.0, 0, 1.0)])
        store.append_batch(run.id, "b", metrics=columns(("x", 2.0, 1, 2.0), ("y", 3.0, None, 2.0)))
        store.append_metric_columns(run.id, ["x"], [4.0], [2], [3.0])
        assert [m.value for m in store.read_metrics(run.id)] == [1.0, 2.0, 3.0, 4.0]
        assert [m.value for m in store.read_metrics(run.id, "x")] == [1.0, 2.0, 4.0]

    @pytest.mark.parametrize("bad", [
        {"metrics": MetricColumns(["ok", "two\nlines"], [1.0, 2.0], [0, 0], [1.0, 1.0])},
        {"metrics": MetricColumns(["ok", "ok"], [1.0, "high"], [0, 0], [1.0, 1.0])},  # type: ignore[list-item]
        {"metrics": MetricColumns(["ok", "ok"], [1.0, 2.0], [0, 1.5], [1.0, 1.0])},  # type: ignore[list-item]
        {"metrics": MetricColumns(["ok", "ok"], [1.0, 2.0], [0, 1], [1.0, math.nan])},
        {"metrics": MetricColumns(["ok"], [1.0, 2.0], [0, 1], [1.0, 1.0])},
        {"events": [Event(1.0, "fine", "info"), ("lonely",)]},
        {"logs": [("lonely",)]},
    ])
    def test_a_bad_batch_writes_nothing_and_keeps_its_key_free(
            self, store: RunStore, bad: dict[str, Any]) -> None:
        run = store.create_run(make_run())
        good: dict[str, Any] = {"metrics": columns(("ok", 1.0, 0, 1.0)),
                                "events": [Event(1.0, "e", "info")]}
        with pytest.raises(ValidationError):
            store.append_batch(run.id, "key", **{**good, **bad})
        assert store.read_metrics(run.id) == [] and store.read_events(run.id) == []
        assert store.read_logs(run.id) == []
        assert store.append_batch(run.id, "key", **good)
        assert store.read_metrics(run.id) == [Metric("ok", 1.0, 0, 1.0)]

    @pytest.mark.parametrize("key", ["", "a b", "x" * 129, "../up", "k/1", "ké", 7, None])
    def test_a_bad_batch_key_is_refused(self, store: RunStore, key: Any) -> None:
        run = store.create_run(make_run())
        with pytest.raises(ValidationError):
            store.append_batch(run.id, key, events=[Event(1.0, "e", "info")])
        assert store.read_events(run.id) == []

    def test_batch_keys_allow_every_listed_character(self, store: RunStore) -> None:
        run = store.create_run(make_run())
        for key in ("a", "A.b_c:d-9", "x" * 128, "0"):
            assert store.append_batch(run.id, key)

    def test_batch_keys_go_with_their_run(self, store: RunStore) -> None:
        run = store.create_run(make_run())
        with pytest.raises(RunNotFound):
            store.append_batch("no-such-run", "k")
        store.append_batch(run.id, "k", events=[Event(1.0, "e", "info")])
        store.delete_run(run.id)
        with pytest.raises(RunNotFound):
            store.append_batch(run.id, "k")
        again = store.create_run(make_run(id=run.id))
        assert store.append_batch(again.id, "k", events=[Event(2.0, "f", "info")])
        assert store.read_events(again.id) == [Event(2.0, "f", "info")]

    # -- one metric's series ------------------------------------------------------------------
    def _series_run(self, store: RunStore) -> str:
        run = store.create_run(make_run())
        store.append_metrics(run.id, [Metric("loss", float(10 - s), s, 100.0 + s)
                                      for s in range(5)])  # steps 0..4, times 100..104
        store.append_batch(run.id, "b", metrics=columns(
            ("acc", 0.1, 5, 105.0), ("loss", 5.0, None, 105.5), ("loss", math.inf, 6, 106.0)))
        store.append_metric_columns(run.id, ["loss", "acc", "loss"], [-1.0, 0.2, math.nan],
                                    [7, 7, 8], [107.0, 107.0, 108.0])
        return run.id

    def test_series_is_one_metric_in_append_order(self, store: RunStore) -> None:
        run_id = self._series_run(store)
        series = store.read_metric_series(run_id, "loss")
        assert series.values.typecode == "d" and series.times.typecode == "d"
        assert series.steps.typecode == "q"
        values = series.values.tolist()
        assert values[:7] == [10.0, 9.0, 8.0, 7.0, 6.0, 5.0, math.inf] and values[7] == -1.0
        assert math.isnan(values[8]) and len(values) == 9
        assert series.step_list() == [0, 1, 2, 3, 4, None, 6, 7, 8]
        assert list(series.no_step) == [5] and series.steps[5] == 0
        assert series.times.tolist() == [100.0, 101.0, 102.0, 103.0, 104.0, 105.5, 106.0,
                                         107.0, 108.0]
        expected = [(m.value, m.step, m.time) for m in store.read_metrics(run_id, "loss")]
        got = list(zip(values, series.step_list(), series.times.tolist(), strict=True))
        assert repr(got) == repr(expected)  # (repr: NaN equals itself there)

    def test_series_within_step_and_time_bounds(self, store: RunStore) -> None:
        run_id = self._series_run(store)

        def steps(**bounds: Any) -> list[int | None]:
            return store.read_metric_series(run_id, "loss", **bounds).step_list()

        assert steps(steps=(2, 6)) == [2, 3, 4, 6]  # inclusive; no step: outside
        assert steps(steps=(None, 1)) == [0, 1]
        assert steps(steps=(7, None)) == [7, 8]
        assert steps(steps=(None, None)) == [0, 1, 2, 3, 4, 6, 7, 8]
        assert steps(steps=(9, 20)) == [] and steps(steps=(3, 2)) == []
        assert steps(times=(104.0, 106.0)) == [4, None, 6]
        assert steps(times=(None, 100.5)) == [0]
        assert steps(times=(105.5, None)) == [None, 6, 7, 8]
        assert steps(times=(None, None)) == [0, 1, 2, 3, 4, None, 6, 7, 8]
        assert steps(steps=(0, 6), times=(103.0, 110.0)) == [3, 4, 6]
        cut = store.read_metric_series(run_id, "loss", times=(105.0, 106.0))
        assert cut.values.tolist() == [5.0, math.inf] and list(cut.no_step) == [0]

    def test_series_bounds_agree_with_the_metrics_they_select(self, store: RunStore) -> None:
        run = store.create_run(make_run())
        draw = random.Random(13)
        for b in range(12):  # batches of one name, of two interleaved, of mixed names
            size = draw.choice([1, 5, 40])
            names = [draw.choice(["a", "b"]) if b % 3 == 2 else "ab"[i % (1 + b % 2)]
                     for i in range(size)]
            steps = [None if draw.random() < 0.2 else draw.randrange(100) for _ in names]
            times = [draw.uniform(0.0, 100.0) for _ in names]
            values = [draw.uniform(-1.0, 1.0) for _ in names]
            store.append_batch(run.id, f"b{b}", metrics=MetricColumns(names, values, steps,
                                                                      times))
        everything = store.read_metrics(run.id, "a")
        for _ in range(40):
            step_bounds = _bounds(draw, lambda: draw.randrange(100))
            time_bounds = _bounds(draw, lambda: draw.uniform(0.0, 100.0))
            series = store.read_metric_series(run.id, "a", steps=step_bounds, times=time_bounds)
            chosen = [m for m in everything if in_ranges(m.step, m.time, step_bounds, time_bounds)]
            assert list(zip(series.values, series.step_list(), series.times, strict=True)) == \
                [(m.value, m.step, m.time) for m in chosen], (step_bounds, time_bounds)

    def test_series_of_an_unknown_name_or_run(self, store: RunStore) -> None:
        run_id = self._series_run(store)
        empty = store.read_metric_series(run_id, "nothing")
        assert len(empty.values) == len(empty.steps) == len(empty.times) == 0
        assert store.read_metric_series(run_id, "acc").values.tolist() == [0.1, 0.2]
        with pytest.raises(RunNotFound):
            store.read_metric_series("no-such-run", "loss")

    @pytest.mark.parametrize("bounds", [
        {"steps": ("1", 2)}, {"steps": (1,)}, {"times": (math.nan, None)}, {"steps": [1, 2]},
        {"times": (True, 2.0)}, {"steps": (1, 2, 3)},
    ])
    def test_series_bounds_are_checked(self, store: RunStore, bounds: dict[str, Any]) -> None:
        run_id = self._series_run(store)
        with pytest.raises(ValidationError):
            store.read_metric_series(run_id, "loss", **bounds)

    # -- streams from a position ------------------------------------------------------------
    def test_read_from_counts_positions_as_append_missing_does(self, store: RunStore) -> None:
        run_id = self._series_run(store)
        store.append_events(run_id, [Event(float(t), f"e{t}", "info") for t in range(5)])
        store.append_batch(run_id, "late", events=[Event(9.0, "e9", "warning")],
                           logs=[LogLine(9.0, "l9", "stderr", "s")])
        store.append_logs(run_id, [LogLine(float(t), f"l{t}", "stdout", None) for t in range(3)])
        for kind in ("metrics", "events", "logs"):
            rows = getattr(store, f"read_{kind}")(run_id)
            same = repr  # (NaN equals itself in a repr)
            assert same(store.read_from(run_id, kind, 0)) == same(rows)
            for start in range(len(rows) + 2):
                assert same(store.read_from(run_id, kind, start)) == same(rows[start:])
                for limit in (0, 1, 2, 5):
                    assert same(store.read_from(run_id, kind, start, limit)) == \
                        same(rows[start:start + limit]), (kind, start, limit)
            assert store.append_missing(run_id, kind, rows[2:], 2) == 0  # the same positions

    def test_read_from_checks_its_arguments(self, store: RunStore) -> None:
        run = store.create_run(make_run())
        with pytest.raises(ValidationError):
            store.read_from(run.id, "steps", 0)
        with pytest.raises(ValidationError):
            store.read_from(run.id, "events", -1)
        with pytest.raises(ValidationError):
            store.read_from(run.id, "events", 0, -1)
        with pytest.raises(ValidationError):
            store.read_from(run.id, "events", True)
        store.append_events(run.id, [Event(1.0, "e", "info")])
        assert store.read_from(run.id, "events", 2**70) == []
        assert store.read_from(run.id, "metrics", 2**70, 2**70) == []
        assert store.read_from(run.id, "events", 0, 2**70) == [Event(1.0, "e", "info")]
        with pytest.raises(RunNotFound):
            store.read_from("no-such-run", "events", 0)
        assert store.read_from(run.id, "metrics", 0) == []
