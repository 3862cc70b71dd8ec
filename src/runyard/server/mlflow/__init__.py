"""An MLflow-compatible API, so the real ``mlflow`` client logs to ``runyard server`` unchanged.

Many scripts already call ``mlflow.log_metric``; pointed at a runyard server
(``MLFLOW_TRACKING_URI=http://host:port``, ``MLFLOW_TRACKING_TOKEN=<a runyard token>``) they
log runyard runs, shown beside every other kind of run. Served, from the app's one store:

- ``/api/2.0/mlflow/…`` (and the same under ``/ajax-api/2.0/mlflow/``): the tracking subset
  the client uses: experiments (``experimentapi``), runs, logging, search and metric
  histories (``runapi``); ``logged-models/search`` and ``runs/log-inputs`` answer empty.
- ``/api/2.0/mlflow-artifacts/artifacts/…``: the artifact proxy (``artifacts``).
- Anything else under those prefixes or ``/api/3.0/mlflow/`` (logged models, traces, the
  registry, prompts, GraphQL, server-info) is MLflow's own ``ENDPOINT_NOT_FOUND`` 404, which the
  client reports or shrugs off, never a status it would retry for minutes.

The mapping (details in each module):

- An experiment is a runyard folder: name ``a/b`` is folder ``/a/b`` (a name that is no folder
  path gets a folder made from it); ``Default``, id ``0``, is ``/``. Its id, name, folder,
  lifecycle, tags and times are kept as a registry record (``experiments``), so every worker
  and backend sees the same ids, and a folder of runyard runs is an experiment too.
- An MLflow run is a runyard ``tracked`` run in that folder (``runs``): params are its
  parameters (immutable), metrics its metrics (step, time), tags its metadata (``mlflow.runName``,
  ``mlflow.user`` … round-trip) plus its runyard tags (value ""), status through the model's
  checked transitions (an ended run is never restarted: ``INVALID_STATE``), delete/restore a
  soft lifecycle in its internals, artifacts its catalog (path = catalog name) and blobs.
- Errors are MLflow's ``{"error_code", "message"}`` (``errors``): 400/404 for bad requests,
  401/403 from the token gate, 503 only when the store itself failed.

Every path here takes the same bearer tokens as ``/api/v1`` (``runyard.server.auth``), and a
read-only token may do what reads: GETs, and the searches MLflow sends as POST.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

TRACKING = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow")
ARTIFACTS = "/api/2.0/mlflow-artifacts"
ELSEWHERE = ("/api/3.0/mlflow", "/ajax-api/3.0/mlflow", "/ajax-api/2.0/mlflow-artifacts",
             "/api/2.0/preview/mlflow", "/ajax-api/2.0/preview/mlflow")
PREFIXES = (*TRACKING, ARTIFACTS, *ELSEWHERE)
READ_BY_POST = frozenset({"runs/search", "experiments/search", "logged-models/search"})


def is_mlflow(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in PREFIXES)


def method_needed(path: str, method: str) -> str:
    """The method a token must allow for this request: MLflow's searches are POSTs that
    read, so a read-only token may send them."""
    if method == "POST":
        for prefix in TRACKING:
            if path.startswith(prefix + "/") and path[len(prefix) + 1:].rstrip("/") \
                    in READ_BY_POST:
                return "GET"
    return method


def mount(app: FastAPI) -> None:
    """Serve the MLflow API from ``app`` (after its own routes: the fallbacks match last)."""
    from runyard.server.mlflow import artifacts, experimentapi, fallback, runapi
    from runyard.server.mlflow.endpoints import router_of

    tracking = router_of(experimentapi.TABLE + runapi.TABLE)
    for prefix in TRACKING:
        app.include_router(tracking, prefix=prefix)
    app.include_router(artifacts.router, prefix=ARTIFACTS)
    app.include_router(fallback.router_for(PREFIXES))
