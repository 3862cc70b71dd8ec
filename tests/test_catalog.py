"""A run's data catalog over a real run store and blob store."""

from __future__ import annotations

import io
import os
import stat
import uuid
from pathlib import Path
from typing import Any

import pytest

from runyard.blobs import BlobStore
from runyard.core import catalog
from runyard.errors import IntegrityError, NotFoundError, RunNotFound, ValidationError
from runyard.model import Artifact, Stage
from runyard.stores import RunStore, open_store
from runyard.testing import make_run


@pytest.fixture
def store() -> RunStore:
    return open_store(f"memory://{uuid.uuid4().hex}")


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "blobs")


@pytest.fixture
def run_id(store: RunStore) -> str:
    return store.create_run(make_run()).id


def damage(blobs: BlobStore, digest: str, data: bytes) -> None:
    path = blobs.path(digest)
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    path.write_bytes(data)


def test_save_file_and_fetch_round_trip(
    store: RunStore, blobs: BlobStore, run_id: str, tmp_path: Path
) -> None:
    source = tmp_path / "model.bin"
    source.write_bytes(os.urandom(100_000))
    art = catalog.save_file(store, blobs, run_id, source, category="output", step="train")
    assert (art.name, art.stage, art.size, art.category, art.step) == (
        "model.bin", Stage.PUT, 100_000, "output", "train")
    assert store.list_artifacts(run_id) == [art]
    assert blobs.read_bytes(art.hash) == source.read_bytes()
    out = catalog.fetch_artifact(store, blobs, run_id, "model.bin", tmp_path / "fetched")
    assert out == (tmp_path / "fetched" / "model.bin").resolve()
    assert out.read_bytes() == source.read_bytes()


def test_save_bytes_with_a_nested_name(
    store: RunStore, blobs: BlobStore, run_id: str, tmp_path: Path
) -> None:
    art = catalog.save_bytes(store, blobs, run_id, b"a,b\n1,2\n", "tables/result.csv")
    out = catalog.fetch_artifact(store, blobs, run_id, art.name, tmp_path)
    assert out == tmp_path.resolve() / "tables" / "result.csv"
    assert out.read_bytes() == b"a,b\n1,2\n"
    assert catalog.read_artifact(store, blobs, run_id, "tables/result.csv") == b"a,b\n1,2\n"
    with catalog.open_artifact(store, blobs, run_id, "tables/result.csv") as handle:
        assert handle.read(3) == b"a,b"


def test_save_stream(store: RunStore, blobs: BlobStore, run_id: str) -> None:
    art = catalog.save_stream(store, blobs, run_id, io.BytesIO(b"streamed"), "s.txt")
    assert catalog.read_artifact(store, blobs, run_id, "s.txt") == b"streamed"
    assert art.size == 8


def test_saving_again_replaces_the_entry(store: RunStore, blobs: BlobStore, run_id: str) -> None:
    catalog.save_bytes(store, blobs, run_id, b"v1", "out.txt")
    newer = catalog.save_bytes(store, blobs, run_id, b"v2", "out.txt")
    assert store.list_artifacts(run_id) == [newer]
    assert catalog.read_artifact(store, blobs, run_id, "out.txt") == b"v2"


def test_record_get_keeps_the_input(
    store: RunStore, blobs: BlobStore, run_id: str, tmp_path: Path
) -> None:
    source = tmp_path / "input.csv"
    source.write_text("x\n1\n")
    got = catalog.record_get(store, blobs, run_id, source, name="data/input.csv", step="load")
    assert (got.stage, got.step, got.name) == (Stage.GET, "load", "data/input.csv")
    put = catalog.save_bytes(store, blobs, run_id, b"out", "data/input.csv")
    assert catalog.find_artifact(store, run_id, "data/input.csv") == put
    assert catalog.find_artifact(store, run_id, "data/input.csv", Stage.GET) == got
    out = catalog.fetch_artifact(store, blobs, run_id, "data/input.csv", tmp_path / "f",
                                 stage=Stage.GET)
    assert out.read_text() == "x\n1\n"


@pytest.mark.parametrize("name", ["../escape.txt", "a/../../b", "/etc/passwd", "", "a//b"])
def test_bad_names_are_refused_before_anything_is_stored(
    store: RunStore, blobs: BlobStore, run_id: str, name: str
) -> None:
    with pytest.raises(ValidationError):
        catalog.save_bytes(store, blobs, run_id, b"x", name)
    assert store.list_artifacts(run_id) == []
    assert list(blobs) == []


def test_fetch_refuses_paths_that_escape(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    for name in ("../x", "a/../../x", "/abs", "."):
        with pytest.raises(ValidationError):
            catalog.target_in(dest, name)
    (dest / "link").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(ValidationError, match="outside"):
        catalog.target_in(dest, "link/file.txt")
    assert catalog.target_in(dest, "a/b.txt") == dest.resolve() / "a" / "b.txt"


class HostileStore:
    """A run store whose catalog holds a name no real store accepts (a damaged database)."""

    def __init__(self, artifact: Artifact) -> None:
        self.artifact = artifact

    def list_artifacts(self, run_id: str) -> list[Artifact]:
        return [self.artifact]


def test_fetch_refuses_a_stored_name_that_escapes(blobs: BlobStore, tmp_path: Path) -> None:
    ref = blobs.put_bytes(b"evil")
    hostile: Any = HostileStore(Artifact("../../evil.sh", ref.digest, ref.size))
    with pytest.raises(ValidationError):
        catalog.fetch_artifact(hostile, blobs, "any", "../../evil.sh", tmp_path / "d")
    assert not (tmp_path / "evil.sh").exists()


def test_fetch_verifies_the_hash(
    store: RunStore, blobs: BlobStore, run_id: str, tmp_path: Path
) -> None:
    art = catalog.save_bytes(store, blobs, run_id, b"precious", "p.bin")
    damage(blobs, art.hash, b"precioux")
    with pytest.raises(IntegrityError):
        catalog.fetch_artifact(store, blobs, run_id, "p.bin", tmp_path / "out")
    assert not (tmp_path / "out" / "p.bin").exists()
    with pytest.raises(IntegrityError):
        catalog.read_artifact(store, blobs, run_id, "p.bin")
    damage(blobs, art.hash, b"short")
    with pytest.raises(IntegrityError, match="bytes"):
        catalog.fetch_artifact(store, blobs, run_id, "p.bin", tmp_path / "out")


def test_fetch_replaces_an_existing_file(
    store: RunStore, blobs: BlobStore, run_id: str, tmp_path: Path
) -> None:
    catalog.save_bytes(store, blobs, run_id, b"fresh", "f.txt")
    (tmp_path / "f.txt").write_text("stale")
    catalog.fetch_artifact(store, blobs, run_id, "f.txt", tmp_path)
    assert (tmp_path / "f.txt").read_bytes() == b"fresh"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blobs", "f.txt"]


def test_missing_things(store: RunStore, blobs: BlobStore, run_id: str, tmp_path: Path) -> None:
    with pytest.raises(RunNotFound):
        catalog.save_bytes(store, blobs, make_run().id, b"x", "x")
    assert list(blobs) == []
    with pytest.raises(NotFoundError, match="no artifact 'nope'"):
        catalog.fetch_artifact(store, blobs, run_id, "nope", tmp_path)
    with pytest.raises(NotFoundError):
        catalog.save_file(store, blobs, run_id, tmp_path / "absent.bin")
    catalog.save_bytes(store, blobs, run_id, b"x", "only-put")
    with pytest.raises(NotFoundError, match="no get artifact"):
        catalog.find_artifact(store, run_id, "only-put", Stage.GET)
