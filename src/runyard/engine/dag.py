"""A traced workflow as a DAG of task runs, with stable hashes and the checks it must pass.

Each ``Node`` is one invocation of a task: its parameters are constants (``Value``), references
to the result of another node (``Ref``), or containers holding references (``Nested``). A node's
``key`` is a Merkle hash of its task definition and its parameters, where a reference counts as
the key of the node it names: two nodes with the same key compute the same thing from the same
inputs. The DAG's hash is the hash of its keys and of the shape of its result, so any change to
a task's code, a constant or the wiring changes it.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii as quote

from runyard.engine.values import Value
from runyard.errors import WorkflowDefinitionError

TYPE_CHECKING = False  # ``typing`` is not imported: ``from runyard import task`` skips it
if TYPE_CHECKING:
    from typing import Any


class Ref:
    """The result of node ``node``: a plain class with one slot (one is made for every task
    invocation), equal and hashed by ``node``, never changed once made."""

    __slots__ = ("node",)
    node: str

    def __init__(self, node: str) -> None:
        self.node = node  # never changed after

    def __eq__(self, other: object) -> bool:
        return other.__class__ is Ref and other.node == self.node

    def __hash__(self) -> int:
        return hash((Ref, self.node))

    def __repr__(self) -> str:
        return f"Ref(node={self.node!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Ref, (self.node,))


@dataclass(frozen=True)
class Nested:
    """A list, tuple, set or dict with ``Ref``s inside (``refs``: the nodes, in order)."""

    template: Any
    refs: tuple[str, ...]


Param = Value | Ref | Nested


_CONTAINERS = (list, tuple, set, frozenset, dict)


def substitute(template: Any, replace: Callable[[Ref], Any]) -> Any:
    """``template`` with every ``Ref`` replaced by ``replace(ref)``, containers rebuilt."""
    if template.__class__ is Ref:
        return replace(template)
    if isinstance(template, list | tuple | set | frozenset):
        items = [replace(item) if item.__class__ is Ref
                 else substitute(item, replace) if isinstance(item, _CONTAINERS) else item
                 for item in template]  # a list of results is the common case: no call each
        return items if isinstance(template, list) else type(template)(items)
    if isinstance(template, dict):
        return {k: substitute(v, replace) for k, v in template.items()}
    return template


def flat_refs(template: Any) -> bool:
    """Whether ``template`` is a list or tuple of references and nothing else (the common
    fan-in: a task called with the list of many task runs' results)."""
    return template.__class__ in (list, tuple) and all(
        item.__class__ is Ref for item in template)


def digest_of(template: Any, names: Mapping[str, str | None]) -> str | None:
    """A digest of ``template`` with each reference standing for ``names[ref.node]``
    (``None`` when a name is ``None`` or a constant inside does not pickle)."""
    if flat_refs(template):  # what substitute makes of it, without a call per item
        shown = [names[item.node] for item in template]
        if None in shown:
            return None
        listed = [("ref", name) for name in shown]
        marks: Any = listed if template.__class__ is list else tuple(listed)
    else:
        missing = False

        def mark(ref: Ref) -> tuple[str, str | None]:
            nonlocal missing
            name = names[ref.node]
            if name is None:
                missing = True
            return ("ref", name)

        marks = substitute(template, mark)
        if missing:
            return None
    try:
        return hashlib.sha256(pickle.dumps(marks, protocol=5)).hexdigest()
    except Exception:  # a constant inside that does not pickle
        return None


@dataclass(slots=True)
class Node:
    id: str
    task: Any  # a TaskDef
    params: dict[str, Param]
    deps: tuple[str, ...] = ()
    key: str = ""  # set by Dag.build; or by the trace, which then set deps too
    kind: str = "task"  # or "on_failure": a handler run after another task run failed

    def dep_ids(self) -> tuple[str, ...]:
        """The nodes this one needs, each once, in the order its parameters name them."""
        found: list[str] = []
        for param in self.params.values():
            cls = param.__class__
            if cls is Ref:
                found.append(param.node)  # type: ignore[union-attr]
            elif cls is not Value:
                found.extend(param.refs)  # type: ignore[union-attr]
        return tuple(dict.fromkeys(found)) if len(found) > 1 else tuple(found)


@dataclass
class Dag:
    """Nodes in the order they were invoked, and the workflow's result as a template."""

    name: str
    nodes: dict[str, Node]
    result: Any = None
    hash: str = ""
    dependents: dict[str, tuple[str, ...]] = field(default_factory=dict)
    on_failure: Any = None  # the workflow's failure handler task, if any

    @classmethod
    def build(cls, name: str, nodes: Iterable[Node], result: Any = None) -> Dag:
        """A checked DAG: not empty, every reference known, no cycle; keys and hash set."""
        by_id = {node.id: node for node in nodes}
        if not by_id:
            raise WorkflowDefinitionError(
                f"workflow {name!r} invokes no task; call at least one @task inside it"
            )
        dag = cls(name, by_id, result)
        order = dag._link()  # this order makes the hash: keep it as it is
        for node in order:
            if not node.key:  # (a trace makes the keys of most nodes)
                dag._key(node)
        # The hash covers all the DAG's document holds (``doc_json``): keys, ids and names.
        dag.hash = _sha(*(node.key for node in order), *by_id,
                        *(node.task.name for node in order), repr(_shape(result, by_id)))
        return dag

    def _link(self) -> list[Node]:
        """Set each node's ``deps`` and the ``dependents``; the nodes in an order where each
        comes after the nodes it needs: the order they were given in when that is one (as a
        trace gives them: a task can only be passed results it was handed already), else a
        topological order (which finds a cycle)."""
        nodes = self.nodes
        dependents: dict[str, list[str]] = {node_id: [] for node_id in nodes}
        seen: set[str] = set()
        in_order = True
        for node_id, node in nodes.items():
            # A trace gives most nodes their deps, and those it made the key of all of theirs.
            deps = node.deps or (() if node.key else node.dep_ids())
            node.deps = deps
            for dep in deps:
                found = dependents.get(dep)
                if found is None:
                    raise WorkflowDefinitionError(
                        f"task run {node_id!r} of workflow {self.name!r} uses the result of "
                        f"{dep!r}, which is not part of this workflow"
                    )
                if dep not in seen:
                    in_order = False
                found.append(node_id)
            seen.add(node_id)
        # As tuples: tuples of strings are dropped from the garbage collector's lists once it
        # has looked at them, so a big DAG adds less to what every later collection goes over.
        self.dependents = {node_id: tuple(found) for node_id, found in dependents.items()}
        if in_order:
            return list(nodes.values())
        return [nodes[node_id] for node_id in self.topological_order()]

    def topological_order(self) -> list[str]:
        """Node ids, each after everything it needs; a cycle is a ``WorkflowDefinitionError``."""
        waiting = {node_id: len(node.deps) for node_id, node in self.nodes.items()}
        ready = [node_id for node_id, n in waiting.items() if n == 0]
        order: list[str] = []
        while ready:
            node_id = ready.pop()
            order.append(node_id)
            for child in self.dependents[node_id]:
                waiting[child] -= 1
                if waiting[child] == 0:
                    ready.append(child)
        if len(order) < len(self.nodes):
            stuck = sorted(n for n, left in waiting.items() if left > 0)
            raise WorkflowDefinitionError(
                f"workflow {self.name!r} has a cycle through task runs {', '.join(stuck[:5])}; "
                "a task run cannot depend on its own result"
            )
        return order

    def _key(self, node: Node) -> None:
        """The node's key: its task's definition hash and a mark per parameter, hashed
        (``Tracer.invoke`` makes the same text for the nodes whose keys it makes)."""
        nodes = self.nodes
        text = node.task.definition_hash  # as _sha of the parts, without a list to join
        for name, param in node.params.items():
            if param.__class__ is Ref:  # the common cases of _param_mark, without a call
                text += f"\n{name}=ref:{nodes[param.node].key}"
            elif param.__class__ is Value and param.digest is not None:
                text += f"\n{name}=value:{param.digest}"
            else:
                keys = {n: nodes[n].key for n in node.deps}
                text += f"\n{name}={_param_mark(param, keys)}"
        node.key = _sha256(text.encode()).hexdigest()

    def doc_json(self) -> str:
        """The DAG as the run log keeps it (a blob named in the run's metadata ``dag``), as
        JSON text: each task's definition hash once, and per node its id, task, key and (when
        it has any) the nodes it needs."""
        tasks: dict[str, str] = {}
        nodes = []
        for n in self.nodes.values():
            task = n.task
            name = task.name
            if name not in tasks:
                tasks[name] = task.definition_hash
            deps = n.deps
            nodes.append('{"id":' + quote(n.id) + ',"task":' + quote(name) + ',"key":"' + n.key
                         + ('","deps":[' + ",".join(map(quote, deps)) + "]}" if deps else '"}'))
        listed = ",".join(quote(name) + ':"' + digest + '"' for name, digest in tasks.items())
        return ('{"hash":"' + self.hash + '","tasks":{' + listed + '},"nodes":['
                + ",".join(nodes) + "]}")

    def to_doc(self) -> dict[str, Any]:
        """``doc_json`` decoded."""
        doc: dict[str, Any] = json.loads(self.doc_json())
        return doc


def _param_mark(param: Param, keys: dict[str, str]) -> str:
    if isinstance(param, Value):
        return f"value:{param.digest or 'unpicklable:' + param.text}"
    if isinstance(param, Ref):
        return f"ref:{keys[param.node]}"
    return f"nested:{digest_of(param.template, keys)}"


def _shape(result: Any, nodes: dict[str, Node]) -> Any:
    return substitute(result, lambda ref: ("ref", nodes[ref.node].key))


def _sha(*parts: str) -> str:
    return _sha256("\n".join(parts).encode()).hexdigest()


_sha256 = hashlib.sha256


@dataclass(frozen=True)
class DagChange:
    """How a DAG differs from the one of the run it re-runs."""

    same: bool
    kept: tuple[str, ...]  # node ids whose key the old DAG has too
    changed: tuple[str, ...]  # new or changed nodes, and everything that depends on them
    removed: int  # old nodes whose key this DAG lacks

    def summary(self) -> str:
        if self.same:
            return "the DAG is unchanged"
        shown = ", ".join(self.changed[:8]) + (" …" if len(self.changed) > 8 else "")
        return (f"the DAG changed: {len(self.changed)} task runs new or changed"
                f"{' (' + shown + ')' if shown else ''}, {self.removed} no longer present, "
                f"{len(self.kept)} unchanged")


def compare(old_doc: dict[str, Any], dag: Dag) -> DagChange:
    old_keys = {n["key"] for n in old_doc.get("nodes", [])}
    new_keys = {n.key for n in dag.nodes.values()}
    kept = tuple(n.id for n in dag.nodes.values() if n.key in old_keys)
    changed = tuple(n.id for n in dag.nodes.values() if n.key not in old_keys)
    return DagChange(old_doc.get("hash") == dag.hash, kept, changed, len(old_keys - new_keys))
