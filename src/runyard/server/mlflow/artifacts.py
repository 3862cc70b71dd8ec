"""The artifact proxy, ``/api/2.0/mlflow-artifacts/artifacts/…``: a run's files in its catalog.

MLflow's client uploads each file of a run to ``<experiment>/<run>/artifacts/<path>`` with a
PUT of its bytes, lists a folder with ``GET …/artifacts?path=<experiment>/<run>/artifacts/sub``
(names, sizes, and sub-folders one level down) and downloads a file with a GET. Here the bytes
go to the blob store (streamed through a spooled file, never whole in memory past a few MB) and
the file becomes the run's catalog entry named by its path (stage ``put``), so ``runyard run
show`` lists it and runyard's own files show to MLflow. Paths are checked as catalog names
(relative, no ``..``); a file is found by comparing names with the catalog, never by joining a
path, and served as its blob.
"""

from __future__ import annotations

import tempfile
import time
from typing import Any

import anyio.to_thread
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from runyard.errors import ValidationError
from runyard.model import Artifact, RunRecord, Stage
from runyard.model.validate import artifact_name
from runyard.server.answers import json_answer
from runyard.server.bodies import feed
from runyard.server.mlflow.errors import MlflowRoute, invalid, missing
from runyard.server.mlflow.runs import active, get_run

SPOOL = 16 << 20  # bytes of an upload kept in memory before it spills to a temporary file

router = APIRouter(route_class=MlflowRoute)


def split(path: str) -> tuple[str, str]:
    """``(run id, name within the run's artifacts)`` of ``<exp>/<run>/artifacts[/name]``."""
    parts = path.strip("/").split("/", 3)
    if len(parts) < 3 or parts[2] != "artifacts" or not parts[0] or not parts[1]:
        raise invalid(f"invalid artifact path {path[:200]!r}: use "
                      "<experiment id>/<run id>/artifacts/<path>")
    return parts[1], parts[3] if len(parts) == 4 else ""


def checked_name(name: str) -> str:
    try:
        return artifact_name(name)
    except ValidationError as exc:
        raise invalid(str(exc)) from None


def outputs(context: Any, run: RunRecord) -> dict[str, Artifact]:
    return {a.name: a for a in context.store.list_artifacts(run.id) if a.stage is Stage.PUT}


@router.put("/artifacts/{path:path}", include_in_schema=False)
async def upload(path: str, request: Request) -> Response:
    context = request.app.state.context
    run_id, name = split(path)
    name = checked_name(name)
    run = await anyio.to_thread.run_sync(get_run, context.store, run_id)
    active(run)
    with tempfile.SpooledTemporaryFile(SPOOL) as spool:
        await feed(request.stream(), spool.write)

        def keep() -> None:
            spool.seek(0)
            ref = context.blobs.put_stream(spool)
            context.store.add_artifact(run.id, Artifact(name, ref.digest, ref.size,
                                                         Stage.PUT, time.time()))

        await anyio.to_thread.run_sync(keep)
    return Response(status_code=200)


def listing(context: Any, path: str) -> dict[str, Any]:
    if path.strip("/").count("/") < 2:  # the store's or an experiment's root: no runs here
        return {}
    run_id, folder = split(path)
    folder = checked_name(folder).rstrip("/") if folder else ""
    run = get_run(context.store, run_id)
    prefix = f"{folder}/" if folder else ""
    files: dict[str, dict[str, Any]] = {}
    for name, artifact in sorted(outputs(context, run).items()):
        if not name.startswith(prefix):
            continue
        head, _, rest = name[len(prefix):].partition("/")
        if rest:
            files.setdefault(head, {"path": head, "is_dir": True})
        else:
            files[head] = {"path": head, "is_dir": False, "file_size": artifact.size}
    return {"files": list(files.values())} if files else {}


@router.get("/artifacts", include_in_schema=False)
async def list_artifacts(request: Request) -> Response:
    path = request.query_params.get("path", "")
    context = request.app.state.context
    return json_answer(await anyio.to_thread.run_sync(listing, context, path))


@router.get("/artifacts/{path:path}", include_in_schema=False)
async def download(path: str, request: Request) -> Response:
    from runyard.server.routes.blobs import blob_response

    context = request.app.state.context
    run_id, name = split(path)
    name = checked_name(name)
    run = await anyio.to_thread.run_sync(get_run, context.store, run_id)
    found = (await anyio.to_thread.run_sync(outputs, context, run)).get(name)
    if found is None:
        raise missing(f"No artifact {name!r} in run {run.id}")
    return blob_response(request, context.blobs, found.hash,
                         filename=name.rsplit("/", 1)[-1])
