"""A workflow run copied into another store (with its own blob folder) keeps what it names."""

from __future__ import annotations

from pathlib import Path

from runyard import WorkflowRun, task, workflow
from runyard.core.context import open_context
from runyard.core.copy import copy_store_urls


@task
def big(n: int) -> bytes:
    return bytes(range(256)) * n  # kept as a blob: larger than a value kept inline


@task
def size(data: bytes) -> int:
    return len(data)


@workflow
def sizes(n: int) -> object:
    data = big(n)
    return [data, size(data)]


def test_a_copied_workflow_run_reads_its_results_dag_and_task_values(tmp_path: Path) -> None:
    src_url, dst_url = f"sqlite://{tmp_path}/a/runyard.db", f"chunked://{tmp_path}/b"
    src = open_context(src_url)
    run = sizes(400).run(store=src.store)
    data, length = run.get_results(wait=True, timeout=120)
    assert length == len(data) == 256 * 400
    report = copy_store_urls(src_url, dst_url)
    assert report.blobs_copied >= 3  # the plan or call, the DAG document, the big result
    dst = open_context(dst_url)
    assert dst.blob_root != src.blob_root
    copied = WorkflowRun.by_id(run.run_id, dst.store)
    assert copied.get_results() == [data, length]
    assert len(copied.get_dag()["nodes"]) == 2
    outputs = {t.task: t.output for t in copied.get_task_runs()}
    assert outputs["big"] == data
    again = copy_store_urls(src_url, dst_url)
    assert (again.unchanged, again.blobs_copied) == (1, 0)
