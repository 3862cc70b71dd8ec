"""The store contract's parts that a dashboard's run list builds on: folder counts for its
folder tree, and sorted listing (``list_runs(order_by=...)``) with one order on every backend.

Mixed into ``RunStoreContract``, so every backend (and the ``http://`` store) passes them.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import pytest

from runyard.errors import ValidationError
from runyard.model import Kind, Status
from runyard.stores.base import RunFilter, RunStore
from runyard.testing.factories import make_run


class ListingContract:
    """Folder counts and sorted listing; the subclass provides the ``store`` fixture."""

    # -- folder counts ------------------------------------------------------------------------
    def test_folder_counts_count_only_the_runs_directly_in_each_folder(
            self, store: RunStore) -> None:
        assert store.folder_counts() == {}
        for folder in ["/a", "/", "/a/b", "/ab", "/a", "/a/b/c", "/z"]:
            store.create_run(make_run(folder=folder))
        counts = store.folder_counts()
        assert counts == {"/": 1, "/a": 2, "/a/b": 1, "/a/b/c": 1, "/ab": 1, "/z": 1}
        assert list(counts) == sorted(counts)
        assert store.folder_counts(RunFilter(folder="/a")) == {"/a": 2, "/a/b": 1, "/a/b/c": 1}
        assert store.folder_counts(RunFilter(folder="/a/b")) == {"/a/b": 1, "/a/b/c": 1}
        assert store.folder_counts(RunFilter(folder="/nowhere")) == {}

    def test_folder_counts_follow_every_filter_as_the_list_does(self, store: RunStore) -> None:
        a = store.create_run(make_run(name="alpha-one", folder="/x", tags=frozenset({"t1"}),
                                      created=100.0))
        b = store.create_run(make_run(name="beta-two", folder="/x/y", tags=frozenset({"t1", "t2"}),
                                      created=200.0, kind=Kind.COMMAND))
        store.create_run(make_run(name="gamma-one", folder="/x/y", created=300.0))
        store.update_status(b.id, Status.RUNNING)
        store.update_run(a.id, folder="/moved")
        filters: list[dict[str, Any]] = [
            {}, {"status": frozenset({Status.RUNNING})}, {"tags": frozenset({"t1"})},
            {"tags": frozenset({"t1", "t2"})}, {"name": "one"}, {"kind": Kind.COMMAND},
            {"created_since": 200.0}, {"created_until": 300.0}, {"folder": "/x"},
            {"folder": "/x", "name": "o", "tags": frozenset({"t1"})}]
        for kw in filters:
            wanted = RunFilter(**kw)
            listed = Counter(r.folder for r in store.list_runs(wanted))
            assert store.folder_counts(wanted) == dict(sorted(listed.items())), kw
        assert store.folder_counts() == {"/moved": 1, "/x/y": 2}
        store.delete_run(b.id)
        assert store.folder_counts() == {"/moved": 1, "/x/y": 1}

    # -- sorted listing -------------------------------------------------------------------------
    def test_a_parameter_sorts_numbers_then_strings_then_other_json_then_missing(
            self, store: RunStore) -> None:
        """The order, with the value each run holds (runs made in this order: ties by id)."""
        valued: list[tuple[str, Any]] = [
            ("n1", -1.5), ("n2", -1), ("n3", 2.5), ("n4", 3), ("n5", 3), ("n6", 3.0),
            ("n7", 10), ("n8", 2.0**53), ("n9", 2**53 + 1),
            ("s1", ""), ("s2", "10"), ("s3", "B"), ("s4", "a"), ("s5", "b"), ("s6", "é"),
            ("s7", "é\u4e2d"),
            ("o1", [1, 2]), ("o2", []), ("o3", False), ("o4", None), ("o5", True),
            ("o6", {"k": "v", "a": [1.5, "é"]})]
        names = {label: f"{label}-{i}" for i, (label, _) in enumerate(valued)}
        ids: dict[str, str] = {}
        for label, value in sorted(valued, key=lambda lv: lv[0][::-1]):  # (not in order)
            ids[label] = store.create_run(make_run(name=names[label],
                                                   parameters={"p": value, "q": 1})).id
        missing = [store.create_run(make_run(parameters={"q": 2})).id for _ in range(2)]
        missing.insert(0, store.create_run(make_run()).id)
        # equal values (3, 3, 3.0) tie: by id, the order the runs were made in
        ties = sorted([ids["n4"], ids["n5"], ids["n6"]])
        ascending = [ids[label] for label, _ in valued]
        ascending[3:6] = ties
        self._check_order(store, "param:p", ascending, sorted(missing))

    def test_fields_sort_with_runs_lacking_a_value_last_in_both_directions(
            self, store: RunStore) -> None:
        made = {}
        for label, fields in [
                ("a", {"started": 10.0, "ended": 15.0, "status": Status.SUCCEEDED}),
                ("b", {"started": 5.0, "ended": 20.0, "status": Status.FAILED}),
                ("c", {"started": 10.0, "status": Status.RUNNING}),
                ("d", {}),
                ("e", {"started": 7.0, "ended": 12.0, "status": Status.SUCCEEDED}),
                ("f", {"ended": 30.0, "status": Status.CANCELED})]:
            made[label] = store.create_run(make_run(**fields)).id

        def ids(labels: str) -> list[str]:
            return [made[label] for label in labels]

        self._check_order(store, "started", ids("beac"), ids("df"))
        self._check_order(store, "ended", ids("eabf"), ids("cd"))
        self._check_order(store, "duration", ids("aeb"), ids("cdf"))
        self._check_order(store, "status", ids("fdbcae"), [])  # (by text, then id)

    def test_name_and_kind_sort_by_their_text_by_code_point(self, store: RunStore) -> None:
        names = ["beta", "Alpha", "alpha", "9x", "Zed", "a.b", "a-b", "a_b"]
        kinds = [Kind.WORKFLOW, Kind.COMMAND, Kind.TRACKED, Kind.COMMAND, Kind.RECORDED,
                 Kind.TRACKED, Kind.WORKFLOW, Kind.COMMAND]
        made = {name: store.create_run(make_run(name=name, kind=kind)).id
                for name, kind in zip(names, kinds, strict=True)}
        self._check_order(store, "name", [made[n] for n in sorted(names)], [])
        by_kind = sorted(made.values(), key=lambda i: (kinds[list(made.values()).index(i)], i))
        self._check_order(store, "kind", by_kind, [])

    def test_a_sorted_list_keeps_every_filter(self, store: RunStore) -> None:
        kept = [store.create_run(make_run(folder="/f/g", tags=frozenset({"t", "u"}),
                                          parameters={"p": 3 - i})).id for i in range(4)]
        store.create_run(make_run(folder="/f", tags=frozenset({"t"}), parameters={"p": 0}))
        store.create_run(make_run(folder="/f/g", parameters={"p": 0}))
        wanted = RunFilter(folder="/f/g", tags=frozenset({"t", "u"}))
        listed = store.list_runs(wanted, order_by="param:p", newest_first=False)
        assert [r.id for r in listed] == kept[::-1]
        assert [r.id for r in store.list_runs(wanted, order_by="name", limit=2, offset=1)] \
            == sorted(kept, key=lambda i: store.get_run(i).name, reverse=True)[1:3]

    def test_an_unknown_order_or_a_cursor_with_another_order_is_refused(
            self, store: RunStore) -> None:
        store.create_run(make_run(parameters={"x" * 250: 1}))
        for bad in ["bogus", "", "param:", "param:" + "x" * 251, "Name", 5, None]:
            with pytest.raises(ValidationError) as caught:
                store.list_runs(order_by=bad)  # type: ignore[arg-type]
            assert "param:KEY" in str(caught.value) and "\n" not in str(caught.value)
        assert len(store.list_runs(order_by="param:" + "x" * 250)) == 1
        with pytest.raises(ValidationError, match="offset"):
            store.list_runs(order_by="name", after=store.list_runs()[0].id)
        assert store.list_runs(order_by="created") == store.list_runs()

    def test_a_parameter_named_with_quotes_dots_or_paths_is_only_that_parameter(
            self, store: RunStore) -> None:
        keys = ["a.b", "a'b", 'a"b', "$[0]", "$.a", "%s", "?", " ", "é", "a"]
        made = [store.create_run(make_run(parameters={k: i for k in keys} | {"a": -i})).id
                for i in range(3)]
        decoy = store.create_run(make_run(parameters={"a": {"b": 9}, "$": [5]})).id
        for key in keys[:-1]:
            self._check_order(store, f"param:{key}", made, [decoy])
        assert [r.id for r in store.list_runs(order_by="param:a", newest_first=False)] \
            == [*made[::-1], decoy]

    def test_values_sql_may_not_read_still_sort_as_everywhere(self, store: RunStore) -> None:
        """NaN (SQLite before 3.42 reads no JSON holding it) counts as other JSON ("NaN"),
        infinities as numbers; a string holding NUL sorts by code point. A store that cannot
        keep a value refuses it (PostgreSQL: NaN, infinities)."""
        labels = ["-inf", "1", "inf", "a", "a\x00", "nan", "true"]
        values: list[Any] = [-math.inf, 1, math.inf, "a", "a\x00", math.nan, True]
        kept = []
        for label, value in zip(labels, values, strict=True):
            try:
                kept.append((label, store.create_run(make_run(parameters={"p": value})).id))
            except ValidationError:
                continue
        ascending = [rid for _, rid in kept]  # (already in their order)
        self._check_order(store, "param:p", ascending, [])

    def _check_order(self, store: RunStore, order: str, ascending: list[str],
                     missing_ascending: list[str]) -> None:
        """Both directions, whole and in pages of 3 by offset; runs with no value last."""
        for newest_first, expected in [
                (False, ascending + missing_ascending),
                (True, ascending[::-1] + missing_ascending[::-1])]:
            listed = store.list_runs(order_by=order, newest_first=newest_first)
            assert [r.id for r in listed] == expected, (order, newest_first)
            paged = [r.id for offset in range(0, len(expected) + 3, 3) for r in
                     store.list_runs(order_by=order, newest_first=newest_first, limit=3,
                                     offset=offset)]
            assert paged == expected, (order, newest_first)
        if listed:
            assert listed[0] == store.get_run(listed[0].id)  # whole runs, not summaries
