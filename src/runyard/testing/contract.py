"""The contract every ``RunStore`` passes. Subclass ``RunStoreContract`` and give a ``store``."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from runyard.errors import (
    ConflictError,
    IllegalTransition,
    NameTaken,
    RunExists,
    RunNotFound,
    StepNotFound,
    ValidationError,
)
from runyard.model import (
    Artifact,
    Attempt,
    Event,
    Kind,
    LogLine,
    Metric,
    Owner,
    RunRecord,
    Stage,
    Status,
    Step,
)
from runyard.stores.base import RunFilter, RunStore
from runyard.testing.factories import make_run
from runyard.testing.listing_contract import ListingContract
from runyard.testing.registry_contract import RegistryContract
from runyard.testing.strategies import runs as run_strategy
from runyard.testing.stream_contract import StreamContract


class RunStoreContract(ListingContract, RegistryContract, StreamContract):
    """Behaviour shared by every backend; the subclass provides the ``store`` fixture."""

    # -- creating and reading runs ----------------------------------------------------------
    def test_create_and_get_round_trip(self, store: RunStore) -> None:
        run = make_run(
            folder="/a/b",
            kind=Kind.WORKFLOW,
            description="desc",
            tags=frozenset({"x", "y"}),
            metadata={"lr": 0.1, "nested": {"k": [1, 2, None, True]}},
            parameters={"n": 3},
            owner=Owner(host="h", pid=12, started=1.5),
            code={"commit": "abc", "dirty": False},
            environment={"python": "3.11"},
            config={"store": "x"},
            origin=None,
            resources={"cpu_seconds": 1.25},
        )
        assert store.create_run(run) == run
        assert store.get_run(run.id) == run

    def test_folder_is_normalised(self, store: RunStore) -> None:
        run = store.create_run(make_run(folder="/a/b/"))
        assert store.get_run(run.id).folder == "/a/b"

    def test_duplicate_id_and_name_are_refused(self, store: RunStore) -> None:
        run = store.create_run(make_run())
        with pytest.raises(RunExists):
            store.create_run(make_run(id=run.id))
        with pytest.raises(NameTaken):
            store.create_run(make_run(name=run.name))
        assert store.count_runs() == 1

    @pytest.mark.parametrize(
        "fields",
        [{"name": "../x"}, {"name": "a b"}, {"name": "x" * 500}, {"folder": "a/b"},
         {"folder": "/a/../b"}, {"folder": "//"}, {"tags": frozenset({""})}],
    )
    def test_invalid_runs_are_refused(self, store: RunStore, fields: dict[str, Any]) -> None:
        with pytest.raises(ValidationError):
            store.create_run(make_run(**fields))
        assert store.count_runs() == 0

    def test_unknown_run(self, store: RunStore) -> None:
        missing = make_run().id
        calls: list[Callable[[], object]] = [
            lambda: store.get_run(missing),
            lambda: store.get_run_by_name("no-such-run"),
            lambda: store.find_run("no-such-run"),
            lambda: store.update_status(missing, Status.RUNNING),
            lambda: store.add_tags(missing, ["a"]),
            lambda: store.merge_metadata(missing, {"a": 1}),
            lambda: store.rename_run(missing, "new-name"),
            lambda: store.delete_run(missing),
            lambda: store.get_steps(missing),
            lambda: store.upsert_step(missing, Step("s")),
            lambda: store.append_metrics(missing, [Metric("m", 1.0)]),
            lambda: store.read_metrics(missing),
            lambda: store.read_events(missing),
            lambda: store.read_logs(missing),
            lambda: store.list_artifacts(missing),
        ]
        for call in calls:
            with pytest.raises(RunNotFound):
                call()

    def test_find_by_id_or_name(self, store: RunStore) -> None:
        run = store.create_run(make_run(name="brave-otter"))
        assert store.find_run(run.id) == run
        assert store.find_run("brave-otter") == run
        assert store.get_run_by_name("brave-otter") == run

    # -- status -----------------------------------------------------------------------------
    def test_lifecycle_sets_timestamps(self, store: RunStore) -> None:
        run = store.create_run(make_run())
        running = store.update_status(run.id, Status.RUNNING, now=100.0)
        assert (running.status, running.started, running.ended) == (Status.RUNNING, 100.0, None)
        done = store.update_status(run.id, Status.FAILED, "boom", now=105.0)
        assert (done.status, done.status_reason, done.ended) == (Status.FAILED, "boom", 105.0)
        assert store.get_run(run.id) == done

    def test_illegal_transition_changes_nothing(self, store: RunStore) -> None:
        run = store.create_run(make_run())
        store.update_status(run.id, Status.RUNNING)
        done = store.update_status(run.id, Status.SUCCEEDED)
        with pytest.raises(IllegalTransition, match="succeeded"):
            store.update_status(run.id, Status.RUNNING)
        assert store.get_run(run.id) == done

    def test_expected_status_is_compare_and_set(self, store: RunStore) -> None:
        run = store.create_run(make_run())
        store.update_status(run.id, Status.RUNNING, expect=Status.CREATED)
        with pytest.raises(ConflictError):
            store.update_status(run.id, Status.LOST, expect=Status.CREATED)
        assert store.get_run(run.id).status is Status.RUNNING

    def test_status_with_metadata_is_one_write(self, store: RunStore) -> None:
        run = store.create_run(make_run(metadata={"a": 1, "b": 2}))
        store.update_status(run.id, Status.RUNNING)
        done = store.update_status(run.id, Status.SUCCEEDED, expect=Status.RUNNING, now=7.0,
                                   metadata={"b": 3, "summary": {"n": [1, 2]}})
        assert (done.status, done.ended) == (Status.SUCCEEDED, 7.0)
        assert done.metadata == {"a": 1, "b": 3, "summary": {"n": [1, 2]}}
        assert store.get_run(run.id) == done
        with pytest.raises(IllegalTransition):  # a refused transition merges nothing either
            store.update_status(run.id, Status.RUNNING, metadata={"c": 1})
        assert store.get_run(run.id) == done

    def test_status_with_fields_is_one_write(self, store: RunStore) -> None:
        run = store.create_run(make_run())
        store.update_status(run.id, Status.RUNNING)
        summary = {"cpu_seconds": 1.5, "peak_memory_mib": 20.0, "samples": 0}
        with pytest.raises(ValidationError):  # only what update_run may change
            store.update_status(run.id, Status.SUCCEEDED, fields={"name": "renamed"})
        with pytest.raises(ConflictError):  # a refused transition sets nothing either
            store.update_status(run.id, Status.SUCCEEDED, expect=Status.CREATED,
                                fields={"resources": summary})
        assert store.get_run(run.id).resources == {}
        done = store.update_status(run.id, Status.SUCCEEDED, expect=Status.RUNNING, now=9.0,
                                   fields={"heartbeat": 8.5, "resources": summary})
        assert (done.status, done.ended, done.heartbeat) == (Status.SUCCEEDED, 9.0, 8.5)
        assert done.resources == summary and store.get_run(run.id) == done

    def test_lost_run_can_return_to_running(self, store: RunStore) -> None:
        run = store.create_run(make_run())
        store.update_status(run.id, Status.RUNNING)
        store.update_status(run.id, Status.LOST, "heartbeat stopped")
        back = store.update_status(run.id, Status.RUNNING)
        assert back.status is Status.RUNNING

    # -- fields, tags, metadata, parameters, rename, delete ---------------------------------
    def test_update_run_fields(self, store: RunStore) -> None:
        run = store.create_run(make_run())
        owner = Owner(host="node1", pid=42, started=3.0)
        updated = store.update_run(run.id, heartbeat=12.5, owner=owner, description="d",
                                   resources={"peak_memory": 10})
        assert updated == store.get_run(run.id)
        assert (updated.heartbeat, updated.owner, updated.description) == (12.5, owner, "d")
        with pytest.raises(ValidationError):
            store.update_run(run.id, status=Status.RUNNING)
        with pytest.raises(ValidationError):
            store.update_run(run.id, folder="no-slash")

    def test_tags_accumulate_and_can_be_removed(self, store: RunStore) -> None:
        run = store.create_run(make_run(tags=frozenset({"a"})))
        store.add_tags(run.id, ["b", "c"])
        assert store.add_tags(run.id, ["a"]).tags == {"a", "b", "c"}
        assert store.remove_tags(run.id, ["b", "zzz"]).tags == {"a", "c"}
        assert store.get_run(run.id).tags == {"a", "c"}

    def test_metadata_merges_and_parameters_merge(self, store: RunStore) -> None:
        run = store.create_run(make_run(metadata={"a": 1, "b": 2}))
        assert store.merge_metadata(run.id, {"b": 3, "c": {"d": 4}}).metadata == {
            "a": 1, "b": 3, "c": {"d": 4}}
        store.set_parameters(run.id, {"x": 1})
        assert store.set_parameters(run.id, {"y": [1, 2]}).parameters == {"x": 1, "y": [1, 2]}
        assert store.get_run(run.id).metadata["c"] == {"d": 4}
        added = store.merge_metadata(run.id, {"e": [1.5, None, "é"], "f": {}})  # keys only added
        assert added.metadata == {"a": 1, "b": 3, "c": {"d": 4}, "e": [1.5, None, "é"], "f": {}}
        assert store.get_run(run.id) == added
        assert store.merge_metadata(run.id, {}).metadata == added.metadata

    def test_internals_round_trip_apart_from_metadata(self, store: RunStore) -> None:
        internals = {"dag": {"hash": "h", "blob": "b" * 64}, "plan": {"call": "x" * 300}}
        run = store.create_run(make_run(kind=Kind.WORKFLOW, metadata={"dag": "mine"},
                                        config={"runtime_name": "in_process"},
                                        internals=internals))
        assert store.get_run(run.id).internals == internals
        assert store.list_runs()[0].internals == internals
        merged = store.merge_metadata(run.id, {"dag": "theirs", "results": 1, "internals": {}})
        assert merged.internals == internals and store.get_run(run.id).internals == internals
        assert merged.metadata == {"dag": "theirs", "results": 1, "internals": {}}
        store.update_status(run.id, Status.RUNNING, metadata={"plan": "user"})
        ended = store.update_status(run.id, Status.SUCCEEDED, internals={"results": {"r": 1}})
        assert ended.internals == {**internals, "results": {"r": 1}}
        assert ended.metadata == {**merged.metadata, "plan": "user"}
        assert store.get_run(run.id) == ended
        replaced = store.update_run(run.id, internals={"only": True})
        assert replaced.internals == {"only": True} == store.get_run(run.id).internals

    def test_rename(self, store: RunStore) -> None:
        run = store.create_run(make_run(name="old-name"))
        other = store.create_run(make_run(name="other-name"))
        assert store.rename_run(run.id, "new-name").name == "new-name"
        assert store.find_run("new-name").id == run.id
        with pytest.raises(RunNotFound):
            store.get_run_by_name("old-name")
        with pytest.raises(NameTaken):
            store.rename_run(run.id, other.name)
        with pytest.raises(ValidationError):
            store.rename_run(run.id, "bad/name")
        store.create_run(make_run(name="old-name"))  # the old name is free again

    def test_delete_removes_everything(self, store: RunStore) -> None:
        run = store.create_run(make_run(name="doomed"))
        store.upsert_step(run.id, Step("s"))
        store.append_metrics(run.id, [Metric("m", 1.0, 0, 1.0)])
        store.append_logs(run.id, [LogLine(1.0, "hello")])
        store.delete_run(run.id)
        with pytest.raises(RunNotFound):
            store.get_run(run.id)
        with pytest.raises(RunNotFound):
            store.read_metrics(run.id)
        assert store.list_runs() == []
        store.create_run(make_run(name="doomed"))

    # -- listing ----------------------------------------------------------------------------
    def test_list_order_and_paging(self, store: RunStore) -> None:
        made = [store.create_run(make_run()) for _ in range(7)]
        ids = [r.id for r in made]
        assert [r.id for r in store.list_runs()] == ids[::-1]
        assert [r.id for r in store.list_runs(newest_first=False)] == ids
        assert [r.id for r in store.list_runs(limit=3, offset=2)] == ids[::-1][2:5]
        assert store.list_runs(limit=0) == []
        assert store.count_runs() == 7

    def test_list_filters(self, store: RunStore) -> None:
        a = store.create_run(make_run(name="alpha-one", folder="/a", tags=frozenset({"t1", "t2"}),
                                      created=100.0))
        b = store.create_run(make_run(name="beta-two", folder="/a/b", tags=frozenset({"t1"}),
                                      created=200.0, kind=Kind.COMMAND))
        c = store.create_run(make_run(name="gamma-one", folder="/ab", created=300.0))
        store.update_status(b.id, Status.RUNNING)

        def ids(**kw: Any) -> set[str]:
            found = {r.id for r in store.list_runs(RunFilter(**kw))}
            assert store.count_runs(RunFilter(**kw)) == len(found)
            return found

        assert ids(status=frozenset({Status.RUNNING})) == {b.id}
        assert ids(status=frozenset({Status.RUNNING, Status.CREATED})) == {a.id, b.id, c.id}
        assert ids(tags=frozenset({"t1"})) == {a.id, b.id}
        assert ids(tags=frozenset({"t1", "t2"})) == {a.id}
        assert ids(folder="/a") == {a.id, b.id}
        assert ids(folder="/a/b") == {b.id}
        assert ids(folder="/") == {a.id, b.id, c.id}
        assert ids(name="one") == {a.id, c.id}
        assert ids(name="%") == set()
        assert ids(kind=Kind.COMMAND) == {b.id}
        assert ids(created_since=200.0) == {b.id, c.id}
        assert ids(created_until=200.0) == {a.id}
        running = frozenset({Status.RUNNING})
        assert ids(tags=frozenset({"t1"}), folder="/a/b", status=running) == {b.id}

    def test_list_reflects_changes(self, store: RunStore) -> None:
        run = store.create_run(make_run(name="first"))
        store.add_tags(run.id, ["late"])
        store.update_status(run.id, Status.RUNNING)
        store.rename_run(run.id, "second")
        store.update_run(run.id, folder="/moved")
        [listed] = store.list_runs(RunFilter(tags=frozenset({"late"}), folder="/moved",
                                             status=frozenset({Status.RUNNING}), name="second"))
        assert listed == store.get_run(run.id)

    # -- steps and attempts -----------------------------------------------------------------
    def test_steps_and_attempts(self, store: RunStore) -> None:
        run = store.create_run(make_run())
        store.upsert_step(run.id, Step("b", created=2.0))
        store.upsert_step(run.id, Step("a", created=1.0, metadata={"k": 1}))
        store.upsert_step(run.id, Step("a/with space?", created=3.0))
        assert [s.name for s in store.get_steps(run.id)] == ["a", "b", "a/with space?"]
        first = Attempt(1, Status.FAILED, 1.0, 2.0, "boom", {"x": 1})
        store.upsert_attempt(run.id, "a", first)
        step = store.upsert_attempt(run.id, "a", Attempt(2, Status.RUNNING, 3.0))
        assert [a.number for a in step.attempts] == [1, 2]
        final = Attempt(2, Status.SUCCEEDED, 3.0, 4.5, None, {"x": 1}, {"y": "out"})
        step = store.upsert_attempt(run.id, "a", final)
        assert step.status is Status.SUCCEEDED and step.attempts == (first, final)
        assert store.get_step(run.id, "a") == step
        assert store.get_step(run.id, "a").metadata == {"k": 1}
        assert final.duration == 1.5
        with pytest.raises(StepNotFound):
            store.get_step(run.id, "zzz")
        with pytest.raises(StepNotFound):
            store.upsert_attempt(run.id, "zzz", Attempt(1))

    def test_a_batch_of_steps_is_written_whole(self, store: RunStore) -> None:
        run = store.create_run(make_run())
        attempt = Attempt(1, Status.SUCCEEDED, 1.25, 2.5, None, {"x": "d1", "y": None},
                          {"result": "d2"})
        step = Step("add-1", Status.SUCCEEDED, "task", 1.0, (attempt,),
                    {"task": "add", "inputs": {"x": {"digest": "d1", "from": "é-1"}}})
        other = Step("add-2", Status.RUNNING, "task", 0.5, (), {})
        failed = Step("add-2", Status.FAILED, "task", 0.5, (Attempt(1, Status.FAILED, 0.5, 0.75,
                                                                      "boom \u2013 é"),), {})
        store.upsert_steps(run.id, [other, step, failed])  # the last of a name wins
        assert store.get_steps(run.id) == [failed, step]
        with pytest.raises(ValidationError):  # one bad step: none of the batch is written
            store.upsert_steps(run.id, [Step("add-3", created=3.0), Step("", created=0.0)])
        assert [s.name for s in store.get_steps(run.id)] == ["add-2", "add-1"]
        with pytest.raises(RunNotFound):
            store.upsert_steps("missing-run", [other])

    def test_upsert_step_replaces(self, store: RunStore) -> None:
        run = store.create_run(make_run())
        store.upsert_step(run.id, Step("s", created=1.0))
        store.upsert_step(run.id, Step("s", status=Status.RUNNING, created=1.0))
        [step] = store.get_steps(run.id)
        assert step.status is Status.RUNNING

    # -- metrics ----------------------------------------------------------------------------
    def test_metrics_keep_order_per_name(self, store: RunStore) -> None:
        run = store.create_run(make_run())
        batch = [Metric("loss" if i % 2 else "acc", float(i), i, 1000.0 + i) for i in range(200)]
        store.append_metrics(run.id, batch[:150])
        store.append_metrics(run.id, batch[150:])
        assert store.read_metrics(run.id) == batch
        assert store.read_metrics(run.id, "loss") == [m for m in batch if m.name == "loss"]
        assert store.read_metrics(run.id, "nothing") == []

    def test_metric_special_values(self, store: RunStore) -> None:
        run = store.create_run(make_run())
        store.append_metrics(run.id, [Metric("x", math.inf, None, 1.0), Metric("x", -math.inf),
                                      Metric("x", math.nan, 2, 2.0), Metric("x", 1e-300, 3)])
        values = [m.value for m in store.read_metrics(run.id)]
        assert values[0] == math.inf and values[1] == -math.inf
        assert math.isnan(values[2]) and values[3] == 1e-300
        assert [m.step for m in store.read_metrics(run.id)] == [None, None, 2, 3]

    def test_bad_metric_batch_writes_nothing(self, store: RunStore) -> None:
        run = store.create_run(make_run())
        bad: Any = "high"
        with pytest.raises(ValidationError, match="non-numeric"):
            store.append_metrics(run.id, [Metric("a", 1.0), Metric("b", bad)])
        with pytest.raises(ValidationError):
            store.append_metrics(run.id, [Metric("a", True)])
        assert store.read_metrics(run.id) == []

    def test_metric_columns_append_as_records_do(self, store: RunStore) -> None:
        run = store.create_run(make_run())
        batch = [Metric("b" if i % 3 else "a", i / 7, None if i % 4 else i, 10.0 + i)
                 for i in range(40)]
        store.append_metric_columns(run.id, *map(list, zip(*batch[:30], strict=True)))
        store.append_metrics(run.id, batch[30:])
        assert store.read_metrics(run.id) == batch
        with pytest.raises(ValidationError):  # checked by the store: one bad value, none written
            store.append_metric_columns(run.id, ["a", "a"], [1.0, 10**400], [1, 2], [1.0, 2.0])
        with pytest.raises(ValidationError):
            store.append_metric_columns(run.id, ["a"], [1.0], [2**64], [1.0])
        with pytest.raises(ValidationError):
            store.append_metric_columns(run.id, ["a", "a"], [1.0], [1, 2], [1.0, 2.0])
        assert len(store.read_metrics(run.id)) == 40

    def test_metric_summaries(self, store: RunStore) -> None:
        run = store.create_run(make_run())
        store.append_metrics(run.id, [Metric("b", 3.0, 1), Metric("a", 5.0, 1),
                                      Metric("b", -1.0, 2), Metric("b", 2.0, 7)])
        a, b = store.metric_summaries(run.id)
        assert (a.name, a.count, a.last, a.last_step) == ("a", 1, 5.0, 1)
        assert (b.name, b.count, b.last, b.last_step, b.minimum, b.maximum) == (
            "b", 3, 2.0, 7, -1.0, 3.0)

    # -- events and logs --------------------------------------------------------------------
    def test_events_since_and_tail(self, store: RunStore) -> None:
        run = store.create_run(make_run())
        events = [Event(float(i), f"event {i}", "info" if i % 3 else "warning") for i in range(10)]
        store.append_events(run.id, events[:4])
        store.append_events(run.id, events[4:])
        assert store.read_events(run.id) == events
        assert store.read_events(run.id, since=7.0) == events[7:]
        assert store.read_events(run.id, tail=3) == events[-3:]
        assert store.read_events(run.id, since=2.0, tail=20) == events[2:]
        assert store.read_events(run.id, tail=0) == []

    def test_logs_by_step_since_and_tail(self, store: RunStore) -> None:
        run = store.create_run(make_run())
        lines = [LogLine(float(i), f"line {i} ✓", "stderr" if i % 2 else "stdout",
                         "s1" if i < 5 else "s2") for i in range(10)]
        store.append_logs(run.id, lines)
        assert store.read_logs(run.id) == lines
        assert store.read_logs(run.id, step="s1") == lines[:5]
        assert store.read_logs(run.id, step="s2", tail=2) == lines[8:]
        assert store.read_logs(run.id, since=3.0, tail=1) == lines[9:]
        assert store.read_logs(run.id, step="s1", since=4.0) == lines[4:5]

    # -- catalog ----------------------------------------------------------------------------
    def test_catalog(self, store: RunStore) -> None:
        run = store.create_run(make_run())
        digest = "a" * 64
        put = Artifact("out/model.bin", digest, 10, Stage.PUT, 1.0, None, "output")
        get = Artifact("data/in.csv", "b" * 64, 3, Stage.GET, 2.0, "step-1", "input")
        store.add_artifact(run.id, put)
        store.add_artifact(run.id, get)
        newer = Artifact("out/model.bin", "c" * 64, 11, Stage.PUT, 3.0, None, "output")
        store.add_artifact(run.id, newer)
        assert sorted(store.list_artifacts(run.id), key=lambda a: a.name) == [get, newer]
        for bad in ("/etc/passwd", "../up", "a/../../b", ""):
            with pytest.raises(ValidationError):
                store.add_artifact(run.id, Artifact(bad, digest, 1))

    def test_catalog_batches_are_written_whole_or_not_at_all(self, store: RunStore) -> None:
        run = store.create_run(make_run())
        batch = [Artifact(f"out/{i}.txt", f"{i:064x}", i, Stage.PUT, float(i), None, "output")
                 for i in range(50)]
        store.add_artifacts(run.id, batch[:30])
        store.add_artifacts(run.id, [*batch[20:], batch[0]])  # again: replaced, not doubled
        assert sorted(store.list_artifacts(run.id), key=lambda a: a.time) == batch
        other = store.create_run(make_run())
        with pytest.raises(ValidationError):
            store.add_artifacts(other.id, [batch[0], Artifact("../up", "d" * 64, 1)])
        assert store.list_artifacts(other.id) == []
        store.add_artifacts(other.id, [])
        with pytest.raises(RunNotFound):
            store.add_artifacts("0" * 26, batch[:1])

    # -- round trip (property) ----------------------------------------------------------------
    @settings(max_examples=25, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture,
                                     HealthCheck.too_slow])
    @given(run=run_strategy())
    def test_round_trip_property(self, store: RunStore, run: RunRecord) -> None:
        assert store.create_run(run) == run
        assert store.get_run(run.id) == run
        assert store.find_run(run.name) == run
        listed = store.list_runs(RunFilter(name=run.name))
        assert run in listed

    def test_times_are_kept_exactly(self, store: RunStore) -> None:
        now = time.time()
        run = store.create_run(make_run(created=now, heartbeat=now + 0.1))
        assert store.get_run(run.id).created == now
        assert store.get_run(run.id).heartbeat == now + 0.1
