"""The store contract's parts that a dashboard's run list builds on: folder counts for its
folder tree, and sorted listing (``list_runs(order_by=...)``) with one order on every backend.

Mixed into ``RunStoreContract``, so every backend (and the ``http://`` store) passes them.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

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
