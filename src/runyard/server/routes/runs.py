"""Runs over HTTP: create, list (filters, sort, keyset cursor or offset), count, folder counts,
get, change, cancel, delete.

Each route is one call into the store (or, for cancel, the kind's own function), so a run
changed through the server follows exactly the rules it follows locally. Lists are encoded
with the codec and orjson, not pydantic: the newest 50 of 100,000 runs answer in a few
milliseconds beyond the store's own query.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from runyard.core.runlog import parse_kind
from runyard.errors import ConflictError, ValidationError
from runyard.model import Kind, RunRecord, Status, looks_like_id, run_from_dict, run_to_dict
from runyard.model import validate as check
from runyard.model.codec import owner_from_dict
from runyard.server.errors import answers
from runyard.server.routes import (
    context_of,
    decoded,
    json_answer,
    no_content,
    run_id,
    store_of,
)
from runyard.server.schemas import (
    FolderCounts,
    MetadataChange,
    ParametersChange,
    Rename,
    RunCount,
    RunDoc,
    RunPage,
    RunPatch,
    StatusChange,
    TagChange,
)
from runyard.stores import RunFilter

router = APIRouter(tags=["runs"])

DEFAULT_LIMIT, MAX_LIMIT = 50, 1000
RUN = answers(RunDoc, "The run.")
RUN_OR_CONFLICT = answers(RunDoc, "The run.", 200, 409)
Texts = Annotated[list[Annotated[str, Query(max_length=255)]], Query()]


def run_filter(
    status: Texts = [],  # noqa: B006 - FastAPI copies defaults
    tag: Texts = [],  # noqa: B006
    folder: Annotated[str | None, Query(max_length=1024)] = None,
    name: Annotated[str | None, Query(max_length=255)] = None,
    kind: Annotated[str | None, Query(max_length=32)] = None,
    created_since: Annotated[float | None, Query(allow_inf_nan=False)] = None,
    created_until: Annotated[float | None, Query(allow_inf_nan=False)] = None,
) -> RunFilter:
    """The run filter of a request's query (the filters of ``runyard run list``); also used
    by the run-list watch."""
    return RunFilter(
        status=frozenset(Status.parse(s) for s in status),
        tags=frozenset(tag),
        folder=None if folder is None else check.folder(folder),
        name=name or None,
        kind=None if kind is None else parse_kind(kind),
        created_since=created_since,
        created_until=created_until,
    )


Filter = Annotated[RunFilter, Depends(run_filter)]


def run_answer(run: RunRecord, status: int = 200) -> Response:
    return json_answer(run_to_dict(run), status)


@router.post("/runs", status_code=201, response_model=None,
             responses=answers(RunDoc, "The run, as stored.", 201, 409))
def create_run(request: Request, body: RunDoc) -> Response:
    """Create a run the client made (its id included)."""
    run = decoded("run", run_from_dict, body.model_dump())
    if not looks_like_id(run.id):
        raise ValidationError(f"invalid run id {run.id!r}: 26 characters of Crockford base32, "
                              "as runyard.model.new_id makes them")
    return run_answer(store_of(request).create_run(run), 201)


@router.get("/runs", response_model=None,
            responses=answers(RunPage, "A page of runs."))
def list_runs(
    request: Request,
    wanted: Filter,
    order: Literal["newest", "oldest"] = "newest",
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    offset: Annotated[int, Query(ge=0, lt=2**31)] = 0,
    cursor: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    sort: Annotated[str, Query(min_length=1, max_length=256)] = "created",
) -> Response:
    """Runs matching every filter given, sorted by ``sort`` (created, name, started, ended,
    status, kind, duration or param:KEY; ties by id, runs with no value last), ``order=newest``
    descending. A full page says where the next starts: ``next_offset`` in every sort, and
    ``next_cursor`` (the keyset cursor, only with ``sort=created``)."""
    paging: dict[str, Any] = {"newest_first": order == "newest", "limit": limit,
                              "offset": offset, "order_by": sort}
    if cursor is not None:
        paging["after"] = cursor  # (any text: ids sort as text, the run may be gone)
    runs = store_of(request).list_runs(wanted, **paging)
    full = len(runs) == limit
    return json_answer({
        "runs": [run_to_dict(r) for r in runs],
        "next_cursor": runs[-1].id if full and sort == "created" else None,
        "next_offset": offset + len(runs) if full else None})


@router.get("/runs/count", response_model=RunCount)
def count_runs(
    request: Request,
    wanted: Filter,
) -> dict[str, int]:
    """How many runs match every filter given."""
    return {"count": store_of(request).count_runs(wanted)}


@router.get("/folders", response_model=FolderCounts)
def folder_counts(
    request: Request,
    wanted: Filter,
) -> dict[str, dict[str, int]]:
    """Each folder holding matching runs, with how many lie directly in it (not below it);
    a folder filter keeps that subtree. A folder tree sums its subtrees itself."""
    return {"folders": store_of(request).folder_counts(wanted)}


@router.get("/runs/{ref}", response_model=None, responses=RUN)
def get_run(request: Request, ref: Annotated[str, Path(max_length=255)],
            by: Literal["ref", "id", "name"] = "ref") -> Response:
    """One run, by id or name (``by=ref``, like ``find_run``), or only by ``id`` or ``name``."""
    store = store_of(request)
    if by == "id":
        return run_answer(store.get_run(run_id(ref)))
    if by == "name":
        return run_answer(store.get_run_by_name(ref))
    return run_answer(store.find_run(ref))


@router.patch("/runs/{rid}", response_model=None, responses=RUN)
def update_run(request: Request, rid: str, body: RunPatch) -> Response:
    """Set fields that ``update_run`` may change (``UPDATABLE``); only those given."""
    return run_answer(store_of(request).update_run(run_id(rid), **updatable(body)))


def updatable(patch: RunPatch) -> dict[str, Any]:
    """The fields given in ``patch``, as ``update_run`` takes them (an owner record)."""
    fields = patch.model_dump(exclude_unset=True)
    if fields.get("owner") is not None:
        fields["owner"] = owner_from_dict(fields["owner"])
    return fields


@router.post("/runs/{rid}/status", response_model=None, responses=RUN_OR_CONFLICT)
def update_status(request: Request, rid: str, body: StatusChange) -> Response:
    """A checked status transition (409 if illegal, or if the run is not ``expect``)."""
    fields = None if body.fields is None else updatable(body.fields)
    return run_answer(store_of(request).update_status(
        run_id(rid), body.status, body.reason, expect=body.expect, now=body.now,
        metadata=body.metadata, internals=body.internals, fields=fields))


@router.post("/runs/{rid}/tags", response_model=None, responses=RUN)
def change_tags(request: Request, rid: str, body: TagChange) -> Response:
    """Add, then remove, tags."""
    store, rid = store_of(request), run_id(rid)
    run = store.add_tags(rid, body.add) if body.add else None
    if body.remove:
        run = store.remove_tags(rid, body.remove)
    return run_answer(run if run is not None else store.get_run(rid))


@router.post("/runs/{rid}/metadata", response_model=None, responses=RUN)
def merge_metadata(request: Request, rid: str, body: MetadataChange) -> Response:
    return run_answer(store_of(request).merge_metadata(run_id(rid), body.data))


@router.post("/runs/{rid}/parameters", response_model=None, responses=RUN)
def set_parameters(request: Request, rid: str, body: ParametersChange) -> Response:
    return run_answer(store_of(request).set_parameters(run_id(rid), body.params))


@router.post("/runs/{rid}/rename", response_model=None, responses=RUN_OR_CONFLICT)
def rename_run(request: Request, rid: str, body: Rename) -> Response:
    check.run_name(body.name)
    store, rid = store_of(request), run_id(rid)
    run = store.get_run(rid)
    if run.kind is Kind.RECORDED:  # its runs/<name>/ folder, if on this machine, goes too
        from runyard.recording.record import rename as rename_recorded

        return run_answer(rename_recorded(context_of(request), run, body.name))
    return run_answer(store.rename_run(rid, body.name))


@router.post("/runs/{rid}/cancel", response_model=None, responses=RUN_OR_CONFLICT)
def cancel_run(request: Request, rid: str) -> Response:
    """Ask a run to stop, by its kind's rules: a pending command run ends canceled, a
    running one becomes canceling (its supervisor stops it); a workflow run likewise."""
    context, rid = context_of(request), run_id(rid)
    run = context.store.get_run(rid)
    if run.kind is Kind.WORKFLOW:
        return run_answer(cancel_workflow(context.store, run))
    from runyard.commands.launch import cancel

    return run_answer(cancel(context, rid))


def cancel_workflow(store: Any, run: RunRecord) -> RunRecord:
    if run.status not in (Status.CREATED, Status.RUNNING):
        raise ConflictError(f"run {run.id} is {run.status.value}; only created or running "
                            "workflow runs can be canceled")
    from runyard.engine import WorkflowRun

    WorkflowRun.by_id(run.id, store).cancel()
    updated: RunRecord = store.get_run(run.id)
    return updated


@router.delete("/runs/{rid}", status_code=204, response_class=Response,
               responses={204: {"description": "Deleted."}})
def delete_run(request: Request, rid: str) -> Response:
    """Delete a run and its run log (its blobs stay: other runs may share them)."""
    from runyard.core.runs import delete_run as delete_checked

    delete_checked(store_of(request), run_id(rid))  # (a version's runs go only with it)
    return no_content()
