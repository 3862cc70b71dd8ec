"""MLflow's search language: filter strings, ``order_by`` and page tokens.

A filter is clauses joined by ``AND`` (MLflow has no ``OR``): ``<entity>.<key> <op> <value>``
where the entity is ``metrics``/``metric``, ``params``/``param``/``parameters``,
``tags``/``tag`` or ``attributes``/``attribute``/``attr``/``run`` (a bare name is an attribute),
a key with spaces or dots is quoted with backticks or double quotes, and a value is a number
(metrics, times) or a quoted string. Operators: ``= != < <= > >=`` for numbers; ``= != LIKE
ILIKE IN NOT IN`` for text (``%`` and ``_`` as in SQL); ``IS NULL``/``IS NOT NULL`` for
params and tags. ``order_by`` entries are ``<entity>.<key> [ASC|DESC]``; a run lacking the key
sorts last either way. A page token is the offset of the page, opaque to clients. Anything
else is an ``INVALID_PARAMETER_VALUE`` that says what was wrong.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from runyard.server.mlflow.errors import invalid

ENTITIES = {"metric": "metrics", "metrics": "metrics", "param": "params", "params": "params",
            "parameter": "params", "parameters": "params", "tag": "tags", "tags": "tags",
            "attribute": "attributes", "attributes": "attributes", "attr": "attributes",
            "run": "attributes"}
NUMERIC_OPS = frozenset({"=", "!=", "<", "<=", ">", ">="})
TEXT_OPS = frozenset({"=", "!=", "LIKE", "ILIKE", "IN", "NOT IN", "IS NULL", "IS NOT NULL"})
_TOKEN = re.compile(r"""\s*(?:
    (?P<str>'(?:[^']|'')*'|"(?:[^"\\]|\\.)*")
  | (?P<bt>`[^`]*`)
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),])
  | (?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.]))
  | (?P<word>[A-Za-z_][\w.]*)
)""", re.VERBOSE)


@dataclass(frozen=True)
class Clause:
    entity: str  # metrics, params, tags, attributes
    key: str
    op: str
    value: Any  # float, str, tuple of str, or None (IS NULL)


@dataclass
class View:
    """What a filter or an ordering sees of one record."""

    attributes: dict[str, Any]
    metrics: dict[str, float]
    params: dict[str, str]
    tags: dict[str, str]

    def get(self, entity: str, key: str) -> Any:
        return getattr(self, entity).get(key)


def tokens(text: str) -> list[tuple[str, str]]:
    found, at = [], 0
    text = text.rstrip()
    while at < len(text):
        match = _TOKEN.match(text, at)
        if match is None or match.end() == at:
            raise invalid(f"Invalid filter '{text[:200]}': cannot read it at "
                          f"'{text[at:at + 20].strip()}'")
        kind = match.lastgroup or ""
        found.append((kind, match.group(kind)))
        at = match.end()
    return found


def unquote(kind: str, raw: str) -> str:
    if kind == "bt":
        return raw[1:-1]
    if raw.startswith("'"):
        return raw[1:-1].replace("''", "'")
    return re.sub(r"\\(.)", r"\1", raw[1:-1])


def parse(text: str | None, attributes: Callable[[str], str]) -> list[Clause]:
    """The clauses of a filter; ``attributes(name)`` says ``number`` or ``text`` for an
    attribute (or refuses it)."""
    if not text or not text.strip():
        return []
    parts = tokens(text)
    clauses, at = [], 0
    while True:
        clause, at = _clause(parts, at, attributes, text)
        clauses.append(clause)
        if at == len(parts):
            return clauses
        if parts[at] != ("word", parts[at][1]) or parts[at][1].upper() != "AND":
            raise invalid(f"Invalid filter '{text[:200]}': clauses are joined by AND only")
        at += 1


def identifier(parts: list[tuple[str, str]], at: int, text: str) -> tuple[str, str, int]:
    """``(entity, key, next)`` of an ``entity.key`` at ``at``."""
    if at >= len(parts) or parts[at][0] not in ("word", "bt", "str"):
        raise invalid(f"Invalid filter '{text[:200]}': expected entity.key")
    kind, raw = parts[at]
    if kind == "word" and raw.endswith(".") and at + 1 < len(parts) \
            and parts[at + 1][0] in ("bt", "str"):
        prefix, key, at = raw[:-1], unquote(*parts[at + 1]), at + 2
    elif kind == "word" and "." in raw:
        prefix, _, key = raw.partition(".")
        at += 1
    else:
        prefix, key, at = "attributes", unquote(kind, raw) if kind != "word" else raw, at + 1
    entity = ENTITIES.get(prefix.lower())
    if entity is None:
        raise invalid(f"Invalid entity type '{prefix}'. Valid values are "
                      "['metric', 'parameter', 'tag', 'attribute']")
    if not key:
        raise invalid(f"Invalid filter '{text[:200]}': empty key after {prefix}.")
    return entity, key, at


def _clause(parts: list[tuple[str, str]], at: int, attributes: Callable[[str], str],
            text: str) -> tuple[Clause, int]:
    entity, key, at = identifier(parts, at, text)
    op, at = _operator(parts, at, text)
    numeric = entity == "metrics" or (entity == "attributes" and attributes(key) == "number")
    if op in ("IS NULL", "IS NOT NULL"):
        if entity not in ("params", "tags"):
            raise invalid(f"'{op}' applies to params and tags, not {entity}")
        return Clause(entity, key, op, None), at
    if numeric:
        if op not in NUMERIC_OPS:
            raise invalid(f"Invalid comparator '{op}' for {entity} '{key}': use one of "
                          f"{sorted(NUMERIC_OPS)}")
        return Clause(entity, key, op, _number(parts, at, text)), at + 1
    if op not in TEXT_OPS:
        raise invalid(f"Invalid comparator '{op}' for {entity} '{key}': use one of "
                      f"{sorted(TEXT_OPS - {'IS NULL', 'IS NOT NULL'})}")
    if op in ("IN", "NOT IN"):
        values, at = _list(parts, at, text)
        return Clause(entity, key, op, values), at
    if at >= len(parts) or parts[at][0] != "str":
        raise invalid(f"Invalid filter '{text[:200]}': the value for {entity} '{key}' must be "
                      "a quoted string, like 'value'")
    return Clause(entity, key, op, unquote(*parts[at])), at + 1


def _operator(parts: list[tuple[str, str]], at: int, text: str) -> tuple[str, int]:
    words = [p[1].upper() for p in parts[at:at + 3]]
    if words[:3] == ["IS", "NOT", "NULL"]:
        return "IS NOT NULL", at + 3
    if words[:2] in (["IS", "NULL"], ["NOT", "IN"]):
        return " ".join(words[:2]), at + 2
    if words and (parts[at][0] == "op" or words[0] in ("LIKE", "ILIKE", "IN")):
        return "!=" if words[0] == "<>" else words[0], at + 1
    raise invalid(f"Invalid filter '{text[:200]}': expected a comparator (=, !=, <, <=, >, >=, "
                  "LIKE, ILIKE, IN)")


def _number(parts: list[tuple[str, str]], at: int, text: str) -> float:
    if at < len(parts) and parts[at][0] == "num":
        return float(parts[at][1])
    if at < len(parts) and parts[at][0] == "str":
        try:
            return float(unquote(*parts[at]))
        except ValueError:
            pass
    raise invalid(f"Invalid filter '{text[:200]}': expected a number")


def _list(parts: list[tuple[str, str]], at: int, text: str) -> tuple[tuple[str, ...], int]:
    if at >= len(parts) or parts[at] != ("punct", "("):
        raise invalid(f"Invalid filter '{text[:200]}': IN takes a list like ('a', 'b')")
    values, at = [], at + 1
    while at < len(parts) and parts[at][0] == "str":
        values.append(unquote(*parts[at]))
        at += 1
        if at < len(parts) and parts[at] == ("punct", ","):
            at += 1
    if at >= len(parts) or parts[at] != ("punct", ")") or not values:
        raise invalid(f"Invalid filter '{text[:200]}': IN takes a list like ('a', 'b')")
    return tuple(values), at + 1


def like(pattern: str, value: str, fold: bool) -> bool:
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.S | (re.I if fold else 0)) is not None


def holds(clause: Clause, view: View) -> bool:
    value = view.get(clause.entity, clause.key)
    op, wanted = clause.op, clause.value
    if op == "IS NULL":
        return value is None
    if op == "IS NOT NULL":
        return value is not None
    if value is None:
        return False
    if isinstance(wanted, float):
        return _compare(float(value), op, wanted)
    text = str(value)
    if op in ("LIKE", "ILIKE"):
        return like(wanted, text, op == "ILIKE")
    if op in ("IN", "NOT IN"):
        return bool(text in wanted) == (op == "IN")
    return bool(text == wanted) == (op == "=")


def _compare(x: float, op: str, y: float) -> bool:
    if math.isnan(x):
        return op == "!="
    return {"=": x == y, "!=": x != y, "<": x < y, "<=": x <= y, ">": x > y,
            ">=": x >= y}[op]


def order_keys(order_by: Sequence[str], attributes: Callable[[str], str]
               ) -> list[tuple[str, str, bool]]:
    """``(entity, key, descending)`` of each ``order_by`` entry."""
    found = []
    for entry in order_by:
        parts = tokens(entry)
        descending = False
        if parts and parts[-1][0] == "word" and parts[-1][1].upper() in ("ASC", "DESC"):
            descending = parts.pop()[1].upper() == "DESC"
        entity, key, at = identifier(parts, 0, entry)
        if at != len(parts):
            raise invalid(f"Invalid order_by clause '{entry[:200]}': use <entity>.<key> "
                          "[ASC|DESC]")
        if entity == "attributes":
            attributes(key)
        found.append((entity, key, descending))
    return found


def ordered(views: list[View], keys: list[tuple[str, str, bool]]) -> list[View]:
    """``views`` sorted by ``keys`` (stable: the last key first), missing values last."""
    for entity, key, descending in reversed(keys):
        views = sorted(views, key=partial(_sort_key, entity, key, descending))
    return views


def _sort_key(entity: str, key: str, descending: bool, view: View) -> Any:
    value = view.get(entity, key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return (1, 0)
    return (0, _negated(value) if descending else value)


class _negated:
    """An ordering key that sorts its value descending."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __lt__(self, other: _negated) -> bool:
        return bool(other.value < self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _negated) and self.value == other.value


def page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def offset_of(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode() + b"==="))["offset"]
    except (ValueError, KeyError, TypeError):
        raise invalid(f"Invalid page token '{token[:100]}': pass the next_page_token of a "
                      "previous answer") from None
    if type(offset) is not int or not 0 <= offset < 2**31:
        raise invalid(f"Invalid page token '{token[:100]}'")
    return offset
