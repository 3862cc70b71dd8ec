"""Wire schemas of runs, steps and attempts: what the OpenAPI document says they are.

They mirror ``runyard.model.codec`` (``run_to_dict``, ``step_to_dict``, …), which does the
actual encoding: a request body is checked against these models (wrong types: 422) and then
decoded by the codec; answers are the codec's dicts, serialised by orjson, and declared with
these models so that a schema checker can hold the server to them. Numbers that a store keeps
in fixed-width columns are bounded here, so no value reaches a store that it cannot hold.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from runyard.model import Kind, Status

Time = Annotated[float, Field(allow_inf_nan=False, ge=0, le=1e11)]
Small = Annotated[int, Field(ge=0, lt=2**31)]
Text = Annotated[str, Field(max_length=10_000)]
Json = dict[str, Any]


class OwnerDoc(BaseModel):
    host: Annotated[str, Field(max_length=255)]
    pid: Small
    started: Time


class RunDoc(BaseModel):
    """A run as ``run_to_dict`` writes it (POST /runs takes it; the client makes the id)."""

    id: Annotated[str, Field(min_length=26, max_length=26)]
    name: Annotated[str, Field(max_length=255)]
    folder: Annotated[str, Field(max_length=1024)] = "/"
    kind: Kind = Kind.TRACKED
    status: Status = Status.CREATED
    status_reason: Text | None = None
    description: Text | None = None
    tags: list[Annotated[str, Field(max_length=255)]] = []
    metadata: Json = {}
    parameters: Json = {}
    created: Time
    started: Time | None = None
    ended: Time | None = None
    heartbeat: Time | None = None
    owner: OwnerDoc | None = None
    code: Json | None = None
    environment: Json = {}
    config: Json = {}
    origin: Annotated[str, Field(max_length=26)] | None = None
    resources: Json = {}
    internals: Json = {}


class RunPage(BaseModel):
    runs: list[RunDoc]
    next_cursor: str | None  # (only with sort=created)
    next_offset: int | None  # where the next page starts (null: this one was the last)


class RunCount(BaseModel):
    count: int


class FolderCounts(BaseModel):
    folders: dict[str, int]  # folder -> how many matching runs lie directly in it


class AttemptDoc(BaseModel):
    number: Small
    status: Status = Status.RUNNING
    started: Time | None = None
    ended: Time | None = None
    duration: float | None = None  # (written by the codec, ignored when read)
    message: Text | None = None
    inputs: Json = {}
    outputs: Json = {}


class StepDoc(BaseModel):
    name: Annotated[str, Field(max_length=255)]
    status: Status = Status.CREATED
    kind: Annotated[str, Field(max_length=64)] = "task"
    created: Time
    attempts: list[AttemptDoc] = []
    metadata: Json = {}


class StepList(BaseModel):
    steps: list[StepDoc]


class RunPatch(BaseModel):
    """Fields ``update_run`` may change (only those given are changed). Any other field is
    passed on, for the store to refuse with its own message."""

    model_config = ConfigDict(extra="allow")

    description: Text | None = None
    folder: Annotated[str, Field(max_length=1024)] = "/"
    heartbeat: Time | None = None
    owner: OwnerDoc | None = None
    code: Json | None = None
    environment: Json = {}
    config: Json = {}
    origin: Annotated[str, Field(max_length=26)] | None = None
    resources: Json = {}
    kind: Kind = Kind.TRACKED
    internals: Json = {}


class StatusChange(BaseModel):
    status: Status
    reason: Text | None = None
    expect: Status | None = None
    now: Time | None = None
    metadata: Json | None = None
    internals: Json | None = None
    fields: RunPatch | None = None


class TagChange(BaseModel):
    add: list[Annotated[str, Field(max_length=255)]] = []
    remove: list[Annotated[str, Field(max_length=255)]] = []


class MetadataChange(BaseModel):
    data: Json


class ParametersChange(BaseModel):
    params: Json


class Rename(BaseModel):
    name: Annotated[str, Field(max_length=255)]


class AttemptChange(BaseModel):
    step: Annotated[str, Field(max_length=255)]
    attempt: AttemptDoc
