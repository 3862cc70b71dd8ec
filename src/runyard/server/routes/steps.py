"""A run's steps and their attempts over HTTP: each route one call of the store's contract."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from runyard.model.codec import attempt_from_dict, step_from_dict, step_to_dict
from runyard.server.errors import answers
from runyard.server.routes import decoded, json_answer, no_content, run_id, store_of
from runyard.server.schemas import AttemptChange, StepDoc, StepList

router = APIRouter(tags=["steps"])

STEP = answers(StepDoc, "The step, with its attempts.")


@router.get("/runs/{rid}/steps", response_model=None,
            responses=answers(StepList, "The run's steps."))
def get_steps(request: Request, rid: str) -> Response:
    """Every step of the run, by creation time, then name."""
    steps = store_of(request).get_steps(run_id(rid))
    return json_answer({"steps": [step_to_dict(s) for s in steps]})


@router.get("/runs/{rid}/steps/one", response_model=None, responses=STEP)
def get_step(request: Request, rid: str,
             name: Annotated[str, Query(max_length=255)]) -> Response:
    """One step by name (404 StepNotFound)."""
    return json_answer(step_to_dict(store_of(request).get_step(run_id(rid), name)))


@router.put("/runs/{rid}/steps", status_code=204, response_class=Response,
            responses={204: {"description": "Stored."}})
def upsert_steps(request: Request, rid: str, body: StepList) -> Response:
    """Several steps in one write (the last of a name wins)."""
    steps = [decoded("step", step_from_dict, s.model_dump()) for s in body.steps]
    store_of(request).upsert_steps(run_id(rid), steps)
    return no_content()


@router.put("/runs/{rid}/steps/one", response_model=None, responses=STEP)
def upsert_step(request: Request, rid: str, body: StepDoc) -> Response:
    """One step, replacing the step of its name."""
    step = decoded("step", step_from_dict, body.model_dump())
    return json_answer(step_to_dict(store_of(request).upsert_step(run_id(rid), step)))


@router.post("/runs/{rid}/steps/attempt", response_model=None, responses=STEP)
def upsert_attempt(request: Request, rid: str, body: AttemptChange) -> Response:
    """An attempt of a step, replacing the attempt of its number; the step after it."""
    attempt = decoded("attempt", attempt_from_dict, body.attempt.model_dump())
    step = store_of(request).upsert_attempt(run_id(rid), body.step, attempt)
    return json_answer(step_to_dict(step))
