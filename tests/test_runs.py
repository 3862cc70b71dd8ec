"""Creating runs: generated names, collisions, statuses on creation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from runyard.core.naming import ATTEMPTS, with_unique_name
from runyard.core.runs import create_run
from runyard.errors import IllegalTransition, NameTaken
from runyard.model import Status
from runyard.stores import open_store


def test_generated_names_are_adjective_noun_and_unique() -> None:
    store = open_store("memory://names-test")
    names = [create_run(store).name for _ in range(200)]
    assert len(set(names)) == 200
    assert all(re.fullmatch(r"[a-z]+-[a-z]+", n) for n in names)


def test_collisions_retry_with_a_new_name() -> None:
    taken: list[str] = []

    def create(name: str) -> str:
        if len(taken) < 5:
            taken.append(name)
            raise NameTaken(name)
        return name

    assert with_unique_name(create) not in taken


def test_endless_collisions_get_a_suffix() -> None:
    def create(name: str) -> str:
        if name.count("-") < 2:
            raise NameTaken(name)
        return name

    name = with_unique_name(create)
    assert re.fullmatch(r"[a-z]+-[a-z]+-[0-9a-f]{6}", name), name
    assert ATTEMPTS >= 10


def test_a_given_name_is_never_changed() -> None:
    store = open_store("memory://given-name")
    create_run(store, name="mine")
    with pytest.raises(NameTaken):
        create_run(store, name="mine")


def test_created_running_sets_started_in_one_write() -> None:
    store = open_store("memory://running")
    run = create_run(store, status=Status.RUNNING, tags=["a"], folder="/x/")
    assert run.status is Status.RUNNING and run.started == run.created
    assert store.get_run(run.id) == run and run.folder == "/x"
    with pytest.raises(IllegalTransition):
        create_run(store, status=Status.SUCCEEDED)


def test_names_come_from_a_cache_of_coolname_words(tmp_path: Path) -> None:
    """The first process reads coolname's words into a cache; later ones need no coolname."""
    import os
    import subprocess
    import sys

    code = ("import sys; from runyard.core.naming import generate_name; "
            "print(generate_name(), 'coolname' in sys.modules)")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    runs = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                           text=True, check=True).stdout.split() for _ in range(2)]
    assert list((tmp_path / "runyard").glob("names-*.json"))
    assert runs[1][1] == "False", "the second process used the cache"
    assert all(re.fullmatch(r"[a-z]+-[a-z]+", name) for name, _ in runs)
