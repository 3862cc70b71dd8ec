"""Export of a version with its recorded runs (BagIt zip of a Process Run Crate) and import."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import struct
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bagit
import pytest

from export_helpers import (
    recorded_run,
    rewrite_zip,
    snapshot,
    validate_crate,
    version_with_runs,
)
from runyard.core.context import StoreContext, open_context
from runyard.core.runs import create_run
from runyard.errors import ConflictError, IntegrityError, NotFoundError, VersionNotFound
from runyard.model import Artifact, Kind, Stage, Status
from runyard.recording.exports import export_version, import_bundle
from runyard.recording.safezip import extract
from runyard.recording.versions import get_version, materialize, read_manifest, runs_of


@pytest.fixture
def source(tmp_path: Path) -> StoreContext:
    return open_context(f"sqlite://{tmp_path}/src/runyard.db")


@pytest.fixture
def exported(source: StoreContext, tmp_path: Path) -> Path:
    version_with_runs(source, tmp_path)
    return export_version(source, "paper-v1", tmp_path / "paper.zip")


def unzipped(path: Path, into: Path) -> Path:
    with zipfile.ZipFile(path) as archive:
        archive.extractall(into)
    return into


def crate_graph(bag: Path) -> dict[str, dict[str, Any]]:
    doc = json.loads((bag / "data" / "ro-crate-metadata.json").read_text())
    return {entity["@id"]: entity for entity in doc["@graph"]}


def empty_store(tmp_path: Path, name: str = "dst") -> StoreContext:
    return open_context(f"sqlite://{tmp_path}/{name}/runyard.db")


def assert_nothing_imported(context: StoreContext) -> None:
    assert context.store.list_runs() == []
    assert list(context.blobs.digests()) == []


# -- the zip is a bag holding a Process Run Crate --------------------------------------------
def test_export_is_a_bag_that_bagit_verifies_with_sha512(exported: Path, tmp_path: Path
                                                          ) -> None:
    bag = bagit.Bag(str(unzipped(exported, tmp_path / "bag")))
    bag.validate()
    assert "sha512" in bag.algorithms
    assert (tmp_path / "bag" / "tagmanifest-sha512.txt").is_file()


def test_export_passes_the_process_run_crate_profile_offline(exported: Path,
                                                             tmp_path: Path) -> None:
    bag = unzipped(exported, tmp_path / "bag")
    assert validate_crate(bag / "data") == []


def test_a_bag_zip_without_data_folders_validates_as_it_is(source: StoreContext,
                                                           tmp_path: Path) -> None:
    """rocrate-validator 0.13 reads any path holding ``data/`` in a bag as already inside the
    payload (rocrate/bagit.py ``__check_search_path__``), so the zip itself is checked with
    a workspace that has no such folder; the crate above is the same either way."""
    folder = tmp_path / "plain"
    folder.mkdir()
    (folder / "runyard.yaml").write_text("")
    (folder / "run.sh").write_text("echo hi > out.txt\n")
    from runyard.recording.versions import create_version

    version = create_version(source, folder, name="plain-v1")
    recorded_run(source, version, "plain-run", {"out.txt": b"hi\n"})
    out = export_version(source, "plain-v1", tmp_path / "plain.zip")
    assert validate_crate(out) == []


def test_each_recorded_run_is_a_create_action_with_its_files(exported: Path,
                                                             tmp_path: Path) -> None:
    graph = crate_graph(unzipped(exported, tmp_path / "bag"))
    root = graph["./"]
    assert root["conformsTo"] == {"@id": "https://w3id.org/ro/wfrun/process/0.5"}
    actions = [e for e in graph.values() if e["@type"] == "CreateAction"]
    assert sorted(a["name"] for a in actions) == [f"recorded run run-{i}" for i in range(3)]
    first = next(a for a in actions if a["name"] == "recorded run run-0")
    assert first["instrument"] == {"@id": "workspace/run.sh"}
    assert set(graph["workspace/run.sh"]["@type"]) == {"File", "SoftwareApplication"}
    assert {"@id": "workspace/data/input.csv"} in first["object"]
    assert {r["@id"] for r in first["result"]} == {"runs/run-0/out/count.txt",
                                                    "runs/run-0/out/only-0.txt"}
    assert first["actionStatus"] == "http://schema.org/CompletedActionStatus"
    assert first["startTime"] <= first["endTime"]
    assert graph[first["agent"]["@id"]]["@type"] == "Person"
    usage = {graph[r["@id"]]["name"]: graph[r["@id"]] for r in first["resourceUsage"]}
    assert usage["peak_memory"]["value"] == 12_345_678
    env = {graph[r["@id"]]["name"]: graph[r["@id"]]["value"] for r in first["environment"]}
    assert env["python"] == "3.11.7"
    doc = json.loads((tmp_path / "bag" / "data" / "ro-crate-metadata.json").read_text())
    assert {"environment", "resourceUsage"} <= set(doc["@context"][1])


def test_a_failed_run_is_a_failed_action_with_its_reason(exported: Path, tmp_path: Path
                                                         ) -> None:
    graph = crate_graph(unzipped(exported, tmp_path / "bag"))
    failed = next(e for e in graph.values() if e.get("name") == "recorded run run-2")
    assert failed["actionStatus"] == "http://schema.org/FailedActionStatus"
    assert failed["error"] == "exit code 1"


def test_files_outputs_and_modes_are_in_the_payload(exported: Path, tmp_path: Path) -> None:
    bag = unzipped(exported, tmp_path / "bag")
    data = bag / "data"
    assert (data / "workspace" / "with space & ü.txt").read_text() == "odd name\n"
    assert (data / "runs" / "run-1" / "out" / "only-1.txt").read_bytes() == b"run 1\n"
    assert not (data / "workspace" / "link").exists()  # a link is kept as its blob only
    with zipfile.ZipFile(exported) as archive:
        mode = archive.getinfo("data/workspace/run.sh").external_attr >> 16
        noise = archive.getinfo("data/workspace/data/noise.bin")
    assert mode & 0o777 == 0o755
    assert noise.compress_type == zipfile.ZIP_STORED  # random bytes are not deflated


def test_export_refuses_an_existing_path(source: StoreContext, tmp_path: Path) -> None:
    version_with_runs(source, tmp_path, runs=1)
    out = tmp_path / "taken.zip"
    out.write_bytes(b"mine")
    with pytest.raises(ConflictError, match="already exists"):
        export_version(source, "paper-v1", out)
    assert out.read_bytes() == b"mine"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".taken")] == []


def test_export_of_an_unknown_version_is_refused(source: StoreContext, tmp_path: Path) -> None:
    with pytest.raises(VersionNotFound):
        export_version(source, "nope", tmp_path / "x.zip")
    assert not (tmp_path / "x.zip").exists()


def test_export_waits_for_runs_still_running(source: StoreContext, tmp_path: Path) -> None:
    version = version_with_runs(source, tmp_path, runs=1)
    create_run(source.store, name="busy", kind=Kind.RECORDED, status=Status.RUNNING,
               internals={"version": version.id, "entrypoint": ["true"]})
    with pytest.raises(ConflictError, match=r"busy .*still running"):
        export_version(source, "paper-v1", tmp_path / "x.zip")


# -- import --------------------------------------------------------------------------------
def test_import_restores_the_version_and_runs_exactly(source: StoreContext, exported: Path,
                                                      tmp_path: Path, store_url: str) -> None:
    target = open_context(store_url)
    report = import_bundle(target, exported)
    assert (report.created, report.updated, report.unchanged) == (4, 0, 0)
    assert snapshot(target) == snapshot(source)
    version = get_version(target, "paper-v1")
    assert [r.name for r in runs_of(target, version)] == ["run-0", "run-1", "run-2"]
    manifest = read_manifest(target, version)
    materialize(target, manifest, tmp_path / "again", read_only=False)
    assert (tmp_path / "again" / "data" / "input.csv").read_bytes() == (
        tmp_path / "ws" / "data" / "input.csv").read_bytes()
    assert (tmp_path / "again" / "link").readlink() == Path("data/input.csv")
    lock = runs_of(target, version)[0].environment["lock"]
    assert target.blobs.exists(lock)


def test_import_into_a_runyard_server_keeps_blobs_and_runs_there(
        source: StoreContext, exported: Path, tmp_path: Path, live_server: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNYARD_TOKEN", live_server.token)
    monkeypatch.setenv("RUNYARD_BLOBS", str(tmp_path / "cache"))
    target = open_context(live_server.url)
    assert import_bundle(target, exported).created == 4
    assert snapshot(target) == snapshot(source)
    assert import_bundle(target, exported).unchanged == 4
    shutil.rmtree(tmp_path / "cache")  # what is read now comes from the server
    fresh = open_context(live_server.url, tmp_path / "cache2")
    manifest = read_manifest(fresh, get_version(fresh, "paper-v1"))
    materialize(fresh, manifest, tmp_path / "from-server", read_only=False)
    assert (tmp_path / "from-server" / "run.sh").read_bytes() == (
        tmp_path / "ws" / "run.sh").read_bytes()


def test_importing_twice_changes_nothing(exported: Path, tmp_path: Path) -> None:
    target = empty_store(tmp_path)
    import_bundle(target, exported)
    before = snapshot(target), sorted(target.blobs.digests())
    again = import_bundle(target, exported)
    assert (again.created, again.updated, again.unchanged, again.blobs_copied) == (0, 0, 4, 0)
    assert (snapshot(target), sorted(target.blobs.digests())) == before


def test_importing_into_the_store_it_came_from_changes_nothing(source: StoreContext,
                                                                exported: Path) -> None:
    before = snapshot(source)
    report = import_bundle(source, exported)
    assert (report.created, report.updated, report.unchanged) == (0, 0, 4)
    assert snapshot(source) == before


def test_import_renews_blobs_it_finds_so_a_collection_keeps_them(exported: Path,
                                                                  tmp_path: Path) -> None:
    target = empty_store(tmp_path)
    import_bundle(target, exported)
    old = time.time() - 7 * 86_400
    for digest in target.blobs.digests():
        os.utime(target.blobs.path(digest), (old, old))
    import_bundle(target, exported)
    assert all(target.blobs.path(d).stat().st_mtime > old + 86_400
               for d in target.blobs.digests())


def test_folders_of_imports_killed_long_ago_are_removed(exported: Path, tmp_path: Path
                                                        ) -> None:
    target = empty_store(tmp_path)
    left = target.blob_root.parent / ".import-killed"
    (left / "bag").mkdir(parents=True)
    recent = target.blob_root.parent / ".import-running"
    recent.mkdir()
    old = time.time() - 2 * 86_400
    os.utime(left, (old, old))
    import_bundle(target, exported)
    assert not left.exists() and recent.exists()


def test_a_run_renamed_after_import_keeps_its_name(exported: Path, tmp_path: Path) -> None:
    target = empty_store(tmp_path)
    report = import_bundle(target, exported)
    target.store.rename_run(report.runs[0], "renamed-here")
    before = snapshot(target)
    assert import_bundle(target, exported).unchanged == 4
    assert snapshot(target) == before


def test_a_name_held_by_another_run_is_refused_and_nothing_imported(exported: Path,
                                                                     tmp_path: Path) -> None:
    target = empty_store(tmp_path)
    mine = create_run(target.store, name="run-1")
    with pytest.raises(ConflictError, match=r"named 'run-1'.*rename that one"):
        import_bundle(target, exported)
    assert [r.id for r in target.store.list_runs()] == [mine.id]
    assert list(target.blobs.digests()) == []


def test_an_import_killed_after_its_first_run_is_completed_by_importing_again(
        source: StoreContext, exported: Path, tmp_path: Path) -> None:
    target = empty_store(tmp_path)
    version = get_version(source, "paper-v1")
    target.store.create_run(version)  # what a copy writes first, before the run's content
    report = import_bundle(target, exported)
    assert (report.created, report.updated) == (3, 1)
    assert snapshot(target) == snapshot(source)


def test_another_run_with_the_same_id_is_never_rewritten(source: StoreContext,
                                                         exported: Path, tmp_path: Path
                                                         ) -> None:
    target = empty_store(tmp_path)
    version = get_version(source, "paper-v1")
    other = version.replace(name="not-a-version", kind=Kind.TRACKED, internals={},
                            description="mine")
    target.store.create_run(other)
    with pytest.raises(ConflictError, match="different run with that id"):
        import_bundle(target, exported)
    assert target.store.list_runs() == [other]
    assert list(target.blobs.digests()) == []


def test_an_import_never_replaces_a_catalog_entry(exported: Path, tmp_path: Path) -> None:
    target = empty_store(tmp_path)
    report = import_bundle(target, exported)
    run_id = report.runs[0]
    output = next(a for a in target.store.list_artifacts(run_id) if a.stage is Stage.PUT)
    changed = Artifact(output.name, "b" * 64, 1, Stage.PUT, output.time)
    target.store.add_artifact(run_id, changed)
    before = snapshot(target)
    with pytest.raises(ConflictError, match="other files in its catalog"):
        import_bundle(target, exported)
    assert snapshot(target) == before


def test_export_into_a_missing_folder_is_refused(source: StoreContext, tmp_path: Path) -> None:
    version_with_runs(source, tmp_path, runs=1)
    with pytest.raises(NotFoundError, match="no folder"):
        export_version(source, "paper-v1", tmp_path / "nope" / "x.zip")


# -- damaged or tampered bundles: refused whole --------------------------------------------
def _first_payload(path: Path, prefix: str) -> str:
    with zipfile.ZipFile(path) as archive:
        return next(n for n in archive.namelist() if n.startswith(prefix) and
                    not n.endswith("/"))


def _forged(src: Path, dst: Path, tmp_path: Path, edit: Callable[[Path], None]) -> None:
    """The export with ``edit`` made to its payload and the bag's manifests made to match
    again (a careful forger: the bag verifies)."""
    bag = unzipped(src, tmp_path / "forge")
    edit(bag / "data")
    bagit.Bag(str(bag)).save(manifests=True)
    bagit.Bag(str(bag)).validate()
    shutil.make_archive(str(dst.with_suffix("")), "zip", bag)


def _forge_output(data: Path) -> None:
    (data / "runs" / "run-0" / "out" / "count.txt").write_bytes(b"999 forged\n")


def _forge_kind(data: Path) -> None:
    doc = json.loads((data / "runyard" / "bundle.json").read_text())
    doc["runs"][0]["run"]["kind"] = "tracked"
    (data / "runyard" / "bundle.json").write_text(json.dumps(doc))


def _forge_digest(data: Path) -> None:
    """A catalog entry whose hash is a path, not a digest."""
    doc = json.loads((data / "runyard" / "bundle.json").read_text())
    doc["runs"][0]["artifacts"][0]["hash"] = "../../../../etc/passwd"
    (data / "runyard" / "bundle.json").write_text(json.dumps(doc))


def _forge_catalog(data: Path) -> None:
    """A run's catalog pointed at a blob that is not in the bundle."""
    doc = json.loads((data / "runyard" / "bundle.json").read_text())
    doc["runs"][0]["artifacts"][0]["hash"] = "a" * 64
    (data / "runyard" / "bundle.json").write_text(json.dumps(doc))


WHY = {
    "flipped byte": "sha512 validation failed", "missing payload": "Payload-Oxum",
    "extra payload": "Payload-Oxum", "forged output": "count.txt hashes to",
    "forged kind": "is not a recorded run of version", "forged catalog": "is missing",
    "truncated": "not a readable zip", "not a zip": "not a readable zip",
    "bundle json changed": "bag does not verify", "forged digest": "has no SHA-256 digest",
}


@pytest.mark.parametrize("damage", [
    "flipped byte", "missing payload", "extra payload", "forged output", "forged kind",
    "forged catalog", "forged digest", "truncated", "not a zip", "bundle json changed",
])
def test_a_damaged_or_tampered_zip_is_refused_and_nothing_imported(
        exported: Path, tmp_path: Path, damage: str) -> None:
    bad = tmp_path / "bad.zip"
    csv = _first_payload(exported, "data/workspace/data/input")
    if damage == "flipped byte":
        with zipfile.ZipFile(exported) as archive:
            data = bytearray(archive.read(csv))
        data[10] ^= 0x01
        rewrite_zip(exported, bad, {csv: bytes(data)})
    elif damage == "missing payload":
        rewrite_zip(exported, bad, {csv: None})
    elif damage == "extra payload":
        rewrite_zip(exported, bad, {}, {"data/workspace/smuggled.txt": b"hello"})
    elif damage.startswith("forged"):
        edit = {"forged output": _forge_output, "forged kind": _forge_kind,
                "forged catalog": _forge_catalog, "forged digest": _forge_digest}[damage]
        _forged(exported, bad, tmp_path, edit)
    elif damage == "truncated":
        bad.write_bytes(exported.read_bytes()[: exported.stat().st_size // 2])
    elif damage == "not a zip":
        bad.write_bytes(b"this is not a zip at all")
    else:
        with zipfile.ZipFile(exported) as archive:
            doc = json.loads(archive.read("data/runyard/bundle.json"))
        doc["runs"][0]["run"]["kind"] = "tracked"
        rewrite_zip(exported, bad, {"data/runyard/bundle.json": json.dumps(doc).encode()})
    target = empty_store(tmp_path)
    with pytest.raises(IntegrityError, match="nothing was imported") as caught:
        import_bundle(target, bad)
    assert "\n" not in str(caught.value)
    assert WHY[damage] in str(caught.value)
    assert_nothing_imported(target)


# -- zip safety -----------------------------------------------------------------------------
Members = list[tuple[zipfile.ZipInfo | str, bytes]]


def _zip_with(path: Path, members: Members) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for info, data in members:
            archive.writestr(info, data)
    return path


def _link_member(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


UNSAFE: dict[str, tuple[Members, str]] = {
    "absolute path": ([("/tmp/evil.txt", b"x")], "absolute or malformed"),
    "dot dot": ([("data/../../evil.txt", b"x")], "'..'"),
    "backslash": ([("data\\..\\evil.txt", b"x")], "absolute or malformed"),
    "symlink": ([(_link_member("data/link"), b"/etc/passwd")], "symbolic link"),
    "duplicate": ([("bagit.txt", b"a"), ("bagit.txt", b"b")], "appears twice"),
    "file below a file": ([("data/a", b"x"), ("data/a/b", b"y")], "below the file"),
}


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_unsafe_members_are_refused_before_anything_is_written(tmp_path: Path,
                                                               case: str) -> None:
    members, why = UNSAFE[case]
    with pytest.warns(UserWarning) if case == "duplicate" else contextlib.nullcontext():
        bad = _zip_with(tmp_path / "bad.zip", members)
    target = empty_store(tmp_path)
    with pytest.raises(IntegrityError, match="nothing was imported") as caught:
        import_bundle(target, bad)
    assert why in str(caught.value)
    assert not (tmp_path / "evil.txt").exists()
    assert_nothing_imported(target)
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(IntegrityError):
        extract(bad, dest)
    assert list(dest.iterdir()) == []


def _lie_about_size(path: Path, declared: int) -> None:
    """Set the uncompressed size the (one-member) zip declares, in both of its headers."""
    raw = bytearray(path.read_bytes())
    local, central = raw.index(b"PK\x03\x04"), raw.index(b"PK\x01\x02")
    struct.pack_into("<I", raw, local + 22, declared)
    struct.pack_into("<I", raw, central + 24, declared)
    path.write_bytes(bytes(raw))


def test_a_zip_bomb_that_lies_about_its_size_is_cut_off(tmp_path: Path) -> None:
    bomb = _zip_with(tmp_path / "bomb.zip", [("data/zeros", bytes(20 << 20))])
    _lie_about_size(bomb, 1000)
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(IntegrityError, match="damaged"):
        extract(bomb, dest)
    assert (dest / "data" / "zeros").stat().st_size <= 1000
    target = empty_store(tmp_path)
    with pytest.raises(IntegrityError):
        import_bundle(target, bomb)
    assert_nothing_imported(target)


def test_extraction_stops_at_its_byte_limit(tmp_path: Path) -> None:
    big = _zip_with(tmp_path / "big.zip", [("a", bytes(3 << 20)), ("b", bytes(3 << 20))])
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(IntegrityError, match="more than 4194304 bytes"):
        extract(big, dest, max_bytes=4 << 20)
    assert list(dest.iterdir()) == []


def test_too_many_members_are_refused(tmp_path: Path) -> None:
    many = _zip_with(tmp_path / "many.zip", [(f"f{i}", b"") for i in range(20)])
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(IntegrityError, match="20 members"):
        extract(many, dest, max_members=10)


def test_an_imported_run_names_no_folder_of_this_machine(source: StoreContext, exported: Path,
                                                         tmp_path: Path) -> None:
    """The exporter's workspace is kept as ``exported_from``: a folder of that name here is
    not the run's, so renaming the run or deleting its version never touches it."""
    target = open_context(f"sqlite://{tmp_path}/target/runyard.db")
    import_bundle(target, exported)
    version = get_version(target, "paper-v1")
    assert version.internals["exported_from"] == source.store.get_run(
        version.id).internals["workspace"]
    for run in [version, *runs_of(target, version)]:
        assert "workspace" not in run.internals
