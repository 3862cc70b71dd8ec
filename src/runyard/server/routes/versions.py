"""A workspace version's recorded runs over HTTP, for the dashboard's version page.

A recorded run names its version in ``internals``, which the store's filters do not reach, so
``runyard.recording.versions.runs_of`` looks through the recorded runs on the server, as the
CLI does, instead of the browser paging through every recorded run to find a version's own.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel

from runyard.model import run_to_dict
from runyard.recording.versions import get_version, runs_of
from runyard.server.errors import answers
from runyard.server.routes import context_of, json_answer
from runyard.server.schemas import RunDoc

router = APIRouter(tags=["versions"])


class VersionRuns(BaseModel):
    version: RunDoc
    runs: list[RunDoc]  # oldest first


@router.get("/versions/{ref}/runs", response_model=None,
            responses=answers(VersionRuns, "The version and the runs recorded from it."))
def version_runs(request: Request, ref: Annotated[str, Path(min_length=1, max_length=255)],
                 ) -> Response:
    """A complete version (by id or name) and its recorded runs, oldest first."""
    context = context_of(request)
    version = get_version(context, ref)
    runs = runs_of(context, version)
    return json_answer({"version": run_to_dict(version),
                        "runs": [run_to_dict(run) for run in runs]})
