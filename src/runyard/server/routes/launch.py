"""Starting command runs and workflows on the server's machine, detached from the request.

``POST /runs/command`` takes what ``runyard run create`` takes (a codespec by name or inline,
its version, buffers, tags, replicas, a timeout), checked by the same ``runspec`` code, then
records the run and spawns its supervisor (``runyard.commands.launch``), exactly as the CLI
does. ``POST /runs/workflow`` imports ``module:function`` on the server and hands the traced
run to a detached supervisor (``runyard.engine.launching``). Both answer 202 with the run at
once; its progress is read like any run's (GET /runs/{id}, watch). A read-only token cannot
start anything (the auth dependency refuses every POST for it).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from runyard.core.context import StoreContext
from runyard.model import RunRecord, run_to_dict
from runyard.server.errors import responses
from runyard.server.routes import context_of, json_answer
from runyard.server.schemas import RunDoc

router = APIRouter(tags=["launch"])

Tag = Annotated[str, Field(max_length=511)]
STARTED: dict[int | str, dict[str, Any]] = {
    202: {"model": RunDoc, "description": "The run, started (or about to be)."}}


class CommandRun(BaseModel):
    """What ``runyard run create`` takes, as JSON."""

    codespec: Annotated[str, Field(min_length=1, max_length=300)] | dict[str, Any]
    version: Annotated[int, Field(ge=1, lt=2**31)] | None = None
    args: list[Annotated[str, Field(max_length=100_000)]] = []
    buffers: dict[Annotated[str, Field(max_length=64)],
                  Annotated[str, Field(max_length=128)]] = {}
    timeout: Annotated[str, Field(max_length=64)] | Annotated[float, Field(gt=0)] | None = None
    replicas: Annotated[int, Field(ge=1, lt=2**31)] | None = None
    name: Annotated[str, Field(max_length=255)] | None = None
    tags: list[Tag] | dict[Tag, Tag] = []
    folder: Annotated[str, Field(max_length=1024)] = "/"


class WorkflowRunIn(BaseModel):
    workflow: Annotated[str, Field(min_length=3, max_length=512)]
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    runtime: Annotated[str, Field(min_length=1, max_length=255)] = "in_process"
    name: Annotated[str, Field(max_length=255)] | None = None
    tags: list[Tag] = []
    folder: Annotated[str, Field(max_length=1024)] = "/"


@router.post("/runs/command", status_code=202, responses={**STARTED, **responses(400, 404, 409,
                                                                                   503)},
             summary="Start a command run (what `runyard run create` does), detached")
async def start_command(body: CommandRun, request: Request) -> Response:
    run = await run_in_threadpool(create_command_run, context_of(request), body)
    return json_answer(run_to_dict(run), 202)


def create_command_run(ctx: StoreContext, body: CommandRun) -> RunRecord:
    """Record the command run of ``body`` and start its supervisor (a new interpreter)."""
    from dataclasses import replace

    from runyard.commands import launch
    from runyard.commands.context import check_url
    from runyard.commands.runspec import Flags, build_from

    check_url(ctx.url)
    tags = body.tags if isinstance(body.tags, dict) else {}
    job = {"codespec": body.codespec, "buffers": body.buffers, "tags": tags,
           "replicas": body.replicas}
    flags = Flags(version=body.version, tags=body.tags if isinstance(body.tags, list) else (),
                  timeout=None if body.timeout is None else str(body.timeout))
    spec = build_from(ctx.registry, {"job": job}, flags)
    if body.args:  # appended to the codespec's command for this run (recorded in its spec)
        spec = replace(spec, codespec=replace(spec.codespec,
                                              command=spec.codespec.command + tuple(body.args)))
    created = launch.create(ctx, spec, name=body.name, folder=body.folder)
    launch.start(ctx, created.run)
    return ctx.store.get_run(created.run.id)


@router.post("/runs/workflow", status_code=202, responses={**STARTED, **responses(400, 404, 409,
                                                                                    503)},
             summary="Start a workflow importable on the server (module:function), detached")
async def start_workflow(body: WorkflowRunIn, request: Request) -> Response:
    run = await run_in_threadpool(create_workflow_run, context_of(request), body)
    return json_answer(run_to_dict(run), 202)


def create_workflow_run(ctx: StoreContext, body: WorkflowRunIn) -> RunRecord:
    from runyard.engine.launching import start_detached

    return start_detached(ctx.store, body.workflow, body.args, body.kwargs, body.runtime,
                          name=body.name, folder=body.folder, tags=body.tags)
