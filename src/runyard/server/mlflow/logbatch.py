"""Logging to a run as MLflow does: metrics, params and tags, one by one or in a batch.

MLflow's limits hold here as in its own server: per batch at most 1,000 metrics, 100 params
and 100 tags (1,000 entities in all); keys at most 250 characters of letters, digits and
``_ - . / :`` and space; param values at most 6,000 characters, tag values 8,000. A param once
logged keeps its value: the same value again is fine, another is refused. Everything is
checked before anything is written, so a refused batch writes nothing. A batch is one read of
the run and, for what it holds, one append of metrics (one store transaction), one merge of
params and one of tags.
"""

from __future__ import annotations

import re
import time
from functools import lru_cache
from typing import Any

from runyard.model import RunRecord
from runyard.server.mlflow.errors import MlflowError, invalid
from runyard.server.mlflow.runs import active, params, tag_value
from runyard.server.mlflow.wire import INT64, number, whole
from runyard.stores import RunStore

MAX_METRICS, MAX_PARAMS, MAX_TAGS, MAX_ENTITIES = 1000, 100, 100, 1000
MAX_KEY, MAX_PARAM_VALUE, MAX_TAG_VALUE = 250, 6000, 8000
_KEY = re.compile(r"[/\w.\- :]+")


def key_of(item: dict[str, Any], what: str) -> str:
    key = item.get("key")
    if not isinstance(key, str) or not key:
        raise invalid(f"missing value for required parameter 'key' of a {what}")
    if len(key) > MAX_KEY:
        raise invalid(f"{what} key '{key[:40]}…' is {len(key)} characters long; the limit is "
                      f"{MAX_KEY}")
    if not _KEY.fullmatch(key) or key.startswith("/") or ".." in key.split("/"):
        raise invalid(f"Invalid {what} name: '{key[:250]}'. Names may only contain "
                      "alphanumerics, underscores (_), dashes (-), periods (.), spaces ( ), "
                      "colons (:) and slashes (/)")
    return key


def value_of(item: dict[str, Any], key: str, what: str, limit: int) -> str:
    value = item.get("value")
    if value is None:
        value = ""
    if not isinstance(value, str):
        value = str(value) if isinstance(value, int | float) else None
    if value is None:
        raise invalid(f"the value of {what} '{key}' must be a string")
    if len(value) > limit:
        raise invalid(f"{what} '{key}' has a value of {len(value)} characters; the limit is "
                      f"{limit}")
    return value


def metric_columns(items: list[dict[str, Any]]) -> tuple[list[str], list[float],
                                                         list[int | None], list[float]]:
    """The four columns of a batch's metrics; what the client sends (a known key, a float, an
    int64 step and time) is taken as it is, anything else checked field by field."""
    names: list[str] = []
    values: list[float] = []
    steps: list[int | None] = []
    times: list[float] = []
    now_ms = int(time.time() * 1000)
    for item in items:
        key, value = item.get("key"), item.get("value")
        step, stamp = item.get("step", 0), item.get("timestamp", now_ms)
        if type(key) is not str or not _known_key(key) or type(value) is not float \
                or type(step) is not int or type(stamp) is not int \
                or not (STEPS[0] <= step <= STEPS[1] and STAMPS[0] <= stamp <= STAMPS[1]):
            key, value, step, stamp = _checked_metric(item, now_ms)
        names.append(key)
        values.append(value)
        steps.append(step)
        times.append(stamp / 1000.0)
    return names, values, steps, times


STEPS, STAMPS = INT64, (INT64[0] // 1000, INT64[1] // 1000)


@lru_cache(maxsize=4096)
def _known_key(key: str) -> bool:
    """Whether ``key`` passes ``key_of`` (a script logs the same few keys again and again)."""
    try:
        key_of({"key": key}, "metric")
    except MlflowError:
        return False
    return True


def _checked_metric(item: dict[str, Any], now_ms: int) -> tuple[str, float, int, int]:
    key = key_of(item, "metric")
    if "value" not in item:
        raise invalid(f"missing value for required parameter 'value' of metric '{key}'")
    value = number(item["value"], f"the value of metric '{key}'")
    step = whole(item, "step", default=0)
    stamp = whole(item, "timestamp", default=now_ms, low=STAMPS[0], high=STAMPS[1])
    return key, value, 0 if step is None else step, now_ms if stamp is None else stamp


def new_params(run: RunRecord, items: list[dict[str, Any]]) -> dict[str, str]:
    """The params of ``items`` the run lacks; a changed value is refused."""
    held, fresh = params(run), dict[str, str]()
    for item in items:
        key = key_of(item, "param")
        value = value_of(item, key, "param", MAX_PARAM_VALUE)
        old = held.get(key, fresh.get(key))
        if old is not None and old != value:
            raise invalid(f"Changing param values is not allowed. Param with key='{key}' was "
                          f"already logged with value='{old[:200]}' for run ID='{run.id}'. "
                          f"Attempted logging new value '{value[:200]}'.")
        if key not in held:
            fresh[key] = value
    return fresh


def new_tags(items: list[dict[str, Any]]) -> dict[str, str]:
    found: dict[str, str] = {}
    for item in items:
        key = key_of(item, "tag")
        found[key] = value_of(item, key, "tag", MAX_TAG_VALUE)
    return found


def check_sizes(metrics: int, params_: int, tags: int) -> None:
    if metrics > MAX_METRICS:
        raise invalid(f"A batch logging request can contain at most {MAX_METRICS} metrics. "
                      f"Got {metrics} metrics. Please split up metrics across multiple "
                      "requests and try again.")
    if params_ > MAX_PARAMS:
        raise invalid(f"A batch logging request can contain at most {MAX_PARAMS} params. Got "
                      f"{params_} params.")
    if tags > MAX_TAGS:
        raise invalid(f"A batch logging request can contain at most {MAX_TAGS} tags. Got "
                      f"{tags} tags.")
    if metrics + params_ + tags > MAX_ENTITIES:
        raise invalid(f"A batch logging request can contain at most {MAX_ENTITIES} metrics, "
                      "params and tags in all.")


def log_batch(store: RunStore, run: RunRecord, metrics: list[dict[str, Any]],
              param_items: list[dict[str, Any]], tag_items: list[dict[str, Any]]) -> None:
    """Check everything, then write: metrics, params, tags (each in one store write)."""
    check_sizes(len(metrics), len(param_items), len(tag_items))
    active(run)
    columns = metric_columns(metrics) if metrics else None
    fresh = new_params(run, param_items) if param_items else {}
    tags = new_tags(tag_items) if tag_items else {}
    if columns is not None:
        store.append_metric_columns(run.id, *columns)
    if fresh:
        store.set_parameters(run.id, fresh)
    if tags:
        store.merge_metadata(run.id, tags)


def delete_tag(store: RunStore, run: RunRecord, key: str) -> None:
    """Remove an MLflow tag: a metadata key (set to None) or a runyard tag."""
    active(run)
    if run.metadata.get(key) is not None:
        store.merge_metadata(run.id, {key: None})
    elif key in run.tags:
        store.remove_tags(run.id, [key])
    else:
        from runyard.server.mlflow.errors import missing

        raise missing(f"No tag with name: {key} in run with id {run.id}")


__all__ = ["delete_tag", "log_batch", "tag_value"]
