"""The registry part of the store contract: codespec versions, buffers and their chunks.

Mixed into ``RunStoreContract``, so it runs on every backend. The races are real: two
processes (threads for ``memory://``, which lives in one process) number codespec versions
and claim buffers at once, and every number and every buffer must go to exactly one of them.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from typing import Any

import pytest

from runyard.errors import BufferNotFound, ConflictError, ValidationError
from runyard.model import Owner, new_id
from runyard.model.registry import COMPLETE, CREATED, INCOMPLETE, WRITING, Buffer, Chunk
from runyard.stores.base import RunStore

RACERS, ROUNDS = 3, 40


def _buffer(store: RunStore, **tags: str) -> Buffer:
    return store.create_buffer(Buffer(id=new_id(), created=1.5, tags=tags))


def _add_versions(url: str, who: int, go: Any, out: Any) -> None:
    """One racer: add ``ROUNDS`` distinct versions of codespec ``race``."""
    from runyard.stores import open_store

    store = open_store(url)
    go.wait()
    got = [store.add_codespec("race", f"{who}-{i}", {"who": who, "i": i}, 1.0)[0].version
           for i in range(ROUNDS)]
    out.put(got)


def _claim_all(url: str, who: int, ids: list[str], go: Any, out: Any) -> None:
    """One racer: try to claim every buffer of ``ids``; put the ones it won."""
    from runyard.stores import open_store

    store = open_store(url)
    go.wait()
    won = []
    for buffer_id in ids:
        try:
            store.claim_buffer(buffer_id, Owner("host", who, 1.0), None)
            won.append(buffer_id)
        except ConflictError:
            pass
    out.put(won)


def race(store: RunStore, target: Callable[..., None], *args: Any) -> list[Any]:
    """Run ``target(url, who, *args, go, out)`` in ``RACERS`` processes (threads for a
    memory store) started together; what each put in ``out``."""
    go: Any
    out: Any
    if store.url.startswith("memory:"):
        import queue

        go, out = threading.Event(), queue.Queue()
        workers: list[Any] = [threading.Thread(target=target, args=(store.url, i, *args, go, out))
                              for i in range(RACERS)]
    else:
        mp = multiprocessing.get_context("spawn")
        go, out = mp.Event(), mp.Queue()
        workers = [mp.Process(target=target, args=(store.url, i, *args, go, out))
                   for i in range(RACERS)]
    for worker in workers:
        worker.start()
    go.set()
    results = [out.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    return results


class RegistryContract:
    """Codespecs and buffers, kept in the run store; the subclass provides ``store``."""

    # -- codespecs --------------------------------------------------------------------------
    def test_codespec_versions(self, store: RunStore) -> None:
        spec = {"name": "hello", "command": ["echo", "hi"], "env": {"A": "1"}, "n": [1.5, None]}
        first, new = store.add_codespec("hello", "d1", spec, 10.0)
        assert new and (first.name, first.version, first.digest, first.spec) == (
            "hello", 1, "d1", spec)
        same, new = store.add_codespec("hello", "d1", spec, 11.0)
        assert not new and same == first
        second, new = store.add_codespec("hello", "d2", {**spec, "n": [2]}, 12.0)
        assert new and second.version == 2
        back, _ = store.add_codespec("hello", "d1", spec, 13.0)  # back to the first content
        assert back.version == 3
        assert store.get_codespec("hello") == back
        assert store.get_codespec("hello", 1) == first
        assert store.get_codespec("hello", 4) is None and store.get_codespec("nope") is None
        assert [v.version for v in store.list_codespecs("hello")] == [1, 2, 3]

    def test_codespec_versions_by_number(self, store: RunStore) -> None:
        """As a copy adds them: each number once, whatever the content; never a gap."""
        first, new = store.add_codespec("c", "d1", {"v": 1}, 1.0, number=1)
        assert new and first.version == 1
        assert store.add_codespec("c", "other", {"v": 9}, 2.0, number=1) == (first, False)
        again, new = store.add_codespec("c", "d1", {"v": 1}, 3.0, number=2)
        assert new and again.version == 2  # (by number: the same content may follow itself)
        with pytest.raises(ConflictError):
            store.add_codespec("c", "d4", {"v": 4}, 4.0, number=4)
        assert [v.version for v in store.list_codespecs("c")] == [1, 2]

    def test_codespec_list_has_the_latest_of_each(self, store: RunStore) -> None:
        store.add_codespec("b", "x", {"v": 1}, 1.0)
        store.add_codespec("a", "x", {"v": 1}, 1.0)
        store.add_codespec("b", "y", {"v": 2}, 2.0)
        assert [(c.name, c.version) for c in store.list_codespecs()] == [("a", 1), ("b", 2)]
        assert store.list_codespecs("c") == []

    @pytest.mark.parametrize("name", ["", "../x", "a/b", ".hidden", "x\n", "x" * 200])
    def test_codespec_names_are_checked(self, store: RunStore, name: str) -> None:
        with pytest.raises(ValidationError):
            store.add_codespec(name, "d", {}, 1.0)
        assert store.list_codespecs() == []

    def test_codespec_versions_race(self, store: RunStore) -> None:
        results = race(store, _add_versions)
        numbers = sorted(n for got in results for n in got)
        assert numbers == list(range(1, RACERS * ROUNDS + 1))
        assert [v.version for v in store.list_codespecs("race")] == numbers

    # -- buffers ----------------------------------------------------------------------------
    def test_buffers_round_trip(self, store: RunStore) -> None:
        first = _buffer(store, team="a", kind="in")
        second = _buffer(store, team="b")
        assert store.get_buffer(first.id) == first and first.state == CREATED
        assert store.list_buffers() == [second, first]  # newest first
        assert store.list_buffers({"team": "a"}) == [first]
        assert store.list_buffers(limit=1) == [second]
        with pytest.raises(ConflictError):
            store.create_buffer(first)
        with pytest.raises(ValidationError):
            store.create_buffer(Buffer(id="../x", created=1.0))

    def test_unknown_buffers(self, store: RunStore) -> None:
        for call in (lambda b: store.get_buffer(b), lambda b: store.claim_buffer(b, None),
                     lambda b: store.buffer_chunks(b), lambda b: store.finish_buffer(b, True),
                     lambda b: store.add_buffer_chunk(b, Chunk(0, 0, "d", 1))):
            for buffer_id in (new_id(), "../etc"):
                with pytest.raises(BufferNotFound):
                    call(buffer_id)

    def test_one_claim_per_buffer(self, store: RunStore) -> None:
        buffer = _buffer(store)
        owner = Owner("h", 7, 2.5)
        claimed = store.claim_buffer(buffer.id, owner, "run-1", 3)
        assert (claimed.state, claimed.owner, claimed.run_id, claimed.parts) == (
            WRITING, owner, "run-1", 3)
        with pytest.raises(ConflictError, match="written once"):
            store.claim_buffer(buffer.id, Owner("h", 8, 2.5))
        later = Owner("h", 9, 3.5)
        store.set_buffer_owner(buffer.id, later)
        assert store.get_buffer(buffer.id).owner == later

    def test_chunks_and_finish(self, store: RunStore) -> None:
        buffer = _buffer(store)
        store.claim_buffer(buffer.id, None, parts=2)
        chunks = [Chunk(0, 0, "blake3:" + "a" * 64, 5), Chunk(0, 1, None, 0),
                  Chunk(1, 0, "b" * 64, 7), Chunk(1, 1, "c" * 64, 1), Chunk(1, 2, None, 0)]
        for chunk in chunks:
            store.add_buffer_chunk(buffer.id, chunk)
        assert store.buffer_chunks(buffer.id) == chunks
        assert store.buffer_chunks(buffer.id, 1, 1) == chunks[3:]
        assert store.buffer_chunks(buffer.id, 2, 0) == []
        assert store.get_buffer(buffer.id).size == 13
        assert store.finish_buffer(buffer.id, True) is True
        assert store.finish_buffer(buffer.id, False, "late") is False
        done = store.get_buffer(buffer.id)
        assert (done.state, done.reason, done.size) == (COMPLETE, None, 13)
        store.set_buffer_owner(buffer.id, Owner("h", 1, 1.0))  # ended: no owner change
        assert store.get_buffer(buffer.id).owner is None

    def test_incomplete_buffer_keeps_its_reason(self, store: RunStore) -> None:
        buffer = _buffer(store)
        assert store.finish_buffer(buffer.id, False, "never claimed") is False
        store.claim_buffer(buffer.id, None)
        assert store.finish_buffer(buffer.id, False, "writer died")
        found = store.get_buffer(buffer.id)
        assert (found.state, found.reason) == (INCOMPLETE, "writer died")

    def test_buffer_claims_race(self, store: RunStore) -> None:
        ids = [_buffer(store).id for _ in range(ROUNDS)]
        won = [buffer_id for got in race(store, _claim_all, ids) for buffer_id in got]
        assert sorted(won) == sorted(ids)  # each claimed once, by one racer
        assert all(store.get_buffer(b).state == WRITING for b in ids)
