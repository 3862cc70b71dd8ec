"""The ``@task`` / ``@workflow`` DSL, and tracing a workflow call into a ``Dag``.

A task is a plain function wrapped in a ``TaskDef``. Called outside a workflow it simply runs.
Called while a workflow is being traced it runs nothing: it records a node and returns a
``TaskFuture`` standing for its result, which may be passed (alone or inside lists, tuples and
dicts) to other task calls and returned from the workflow. Anything else done with a future
(arithmetic, ``if``, iteration, ``int()``, ``str()``) cannot be traced and is refused with a
``WorkflowDefinitionError`` saying so.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import threading
from collections.abc import Callable

from runyard.engine.dag import Dag, Nested, Node, Param, Ref
from runyard.engine.values import Value, encode
from runyard.errors import RunyardError, ValidationError, WorkflowDefinitionError

TYPE_CHECKING = False  # ``typing`` is not imported: ``from runyard import task`` skips it
if TYPE_CHECKING:
    from typing import Any, overload

_tracing = threading.local()
_SCALARS = frozenset({int, float, str, bool, bytes, type(None)})  # (encode shares some)
_sha256 = hashlib.sha256


def definition_hash(fn: Callable[..., Any]) -> str:
    """A hash of the function's module, name and source (its bytecode when no source)."""
    try:
        body = inspect.getsource(fn)
    except (OSError, TypeError):
        code = getattr(fn, "__code__", None)
        body = repr((code.co_code, code.co_consts)) if code is not None else repr(fn)
    ident = f"{getattr(fn, '__module__', '')}:{getattr(fn, '__qualname__', repr(fn))}"
    return hashlib.sha256(f"{ident}\n{body}".encode()).hexdigest()


class TaskDef:
    """A task definition: the function, its retry budget and its failure handler."""

    def __init__(self, fn: Callable[..., Any], *, name: str | None = None,
                 max_attempts: int = 1, on_failure: TaskDef | None = None) -> None:
        if not callable(fn):
            raise ValidationError(f"@task needs a function, not {type(fn).__name__}")
        if not isinstance(max_attempts, int) or max_attempts < 1:
            raise ValidationError(f"max_attempts must be a whole number ≥ 1, not {max_attempts!r}")
        if on_failure is not None and not isinstance(on_failure, TaskDef):
            raise ValidationError("on_failure must name a @task (it is called as a task run)")
        self.fn, self.max_attempts, self.on_failure = fn, max_attempts, on_failure
        self.name: str = name or str(getattr(fn, "__name__", "task"))
        functools.update_wrapper(self, fn)
        self._hash: str | None = None
        self._signature: inspect.Signature | None = None
        self._plain: tuple[tuple[str, ...], int, bool] | None = None
        self._reduced: Any = None

    def __repr__(self) -> str:
        return f"<task {self.name}>"

    def __reduce__(self) -> Any:
        """Pickle by reference when the module attribute is this object; else by value."""
        if self._reduced is None:
            module = getattr(self.fn, "__module__", None)
            qualname = getattr(self.fn, "__qualname__", "")
            if module != "__main__" and _lookup(module, qualname) is self:
                self._reduced = (_import_task, (module, qualname))
            else:
                self._reduced = (_rebuild_task,
                                 (self.fn, self.name, self.max_attempts, self.on_failure))
        return self._reduced

    @property
    def definition_hash(self) -> str:
        if self._hash is None:
            self._hash = definition_hash(self.fn)
        return self._hash

    @property
    def signature(self) -> inspect.Signature:
        if self._signature is None:
            self._signature = inspect.signature(self.fn)
        return self._signature

    @property
    def plain(self) -> tuple[tuple[str, ...], int, bool]:
        """Parameter names, how many are required, and whether all are plain (positional
        or keyword, or keyword-only): what lets ``bind`` and ``call`` skip ``inspect``."""
        if self._plain is None:
            params = list(self.signature.parameters.values())
            kinds = {p.kind for p in params}
            kind = inspect.Parameter
            positional = kinds <= {kind.POSITIONAL_ONLY, kind.POSITIONAL_OR_KEYWORD}
            required = sum(p.default is kind.empty for p in params) if positional else -1
            by_name = kinds <= {kind.POSITIONAL_OR_KEYWORD, kind.KEYWORD_ONLY}
            self._plain = (tuple(p.name for p in params), required, by_name)
        return self._plain

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """The call's arguments by parameter name, as ``Signature.bind`` gives them."""
        names, required, _ = self.plain
        if not kwargs and 0 <= required <= len(args) <= len(names):
            return dict(zip(names[:len(args)], args, strict=True))
        return dict(self.signature.bind(*args, **kwargs).arguments)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        tracer: Tracer | None = getattr(_tracing, "tracer", None)
        if tracer is None:
            return self.fn(*args, **kwargs)
        return tracer.invoke(self, args, kwargs)

    def call(self, arguments: dict[str, Any]) -> Any:
        """Run the function with arguments bound by parameter name (as traced)."""
        if self.plain[2]:
            return self.fn(**arguments)
        bound = inspect.BoundArguments(self.signature, arguments)
        return self.fn(*bound.args, **bound.kwargs)


def _lookup(module: str | None, qualname: str) -> Any:
    import importlib

    if not module:
        return None
    try:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        return None
    return obj


@functools.lru_cache(maxsize=256)  # a worker unpickles the same task with every task run
def _import_task(module: str, qualname: str) -> TaskDef:
    found = _lookup(module, qualname)
    if not isinstance(found, TaskDef):
        raise WorkflowDefinitionError(
            f"cannot import task {module}:{qualname} here; is its module on sys.path?"
        )
    return found


@functools.lru_cache(maxsize=256)  # a worker gets the same task with every task run
def _rebuild_task(fn: Callable[..., Any], name: str, max_attempts: int,
                  on_failure: TaskDef | None) -> TaskDef:
    return TaskDef(fn, name=name, max_attempts=max_attempts, on_failure=on_failure)


if TYPE_CHECKING:  # the two ways to call ``task``, for type checkers
    @overload
    def task(fn: Callable[..., Any], /) -> TaskDef: ...
    @overload
    def task(*, name: str | None = None, max_attempts: int = 1,
             on_failure: TaskDef | None = None) -> Callable[[Callable[..., Any]], TaskDef]: ...


def task(fn: Callable[..., Any] | None = None, /, *, name: str | None = None,
         max_attempts: int = 1, on_failure: TaskDef | None = None) -> Any:
    """Make ``fn`` a task: ``@task`` or ``@task(max_attempts=3, on_failure=notify)``."""
    def wrap(f: Callable[..., Any]) -> TaskDef:
        return TaskDef(f, name=name, max_attempts=max_attempts, on_failure=on_failure)

    return wrap if fn is None else wrap(fn)


class TaskFuture:
    """The result of a task invocation while a workflow is traced: pass it on, nothing else."""

    __slots__ = ("_key", "_node", "_ref", "_tracer")

    def __init__(self, node: str, tracer: Tracer, key: str = "") -> None:
        self._node, self._tracer, self._ref = node, tracer, Ref(node)
        self._key = key  # the node's key, when the trace made it (see Tracer.invoke)

    def __repr__(self) -> str:
        return f"<result of task run {self._node}>"

    def _refuse(self, *_: Any, **__: Any) -> Any:
        raise WorkflowDefinitionError(
            f"the result of task run {self._node!r} is not known while the workflow is traced; "
            "pass it to another @task instead of using it in the workflow body"
        )

    __bool__ = __iter__ = __len__ = __int__ = __float__ = __index__ = _refuse
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _refuse
    __truediv__ = __rtruediv__ = __floordiv__ = __mod__ = __pow__ = __neg__ = _refuse
    __lt__ = __le__ = __gt__ = __ge__ = __getitem__ = __contains__ = __call__ = _refuse
    __getattr__ = _refuse
    __str__ = __format__ = _refuse


class Tracer:
    """Collects the nodes of one workflow call."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.nodes: list[Node] = []
        self._counts: dict[str, int] = {}

    def invoke(self, task_def: TaskDef, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        names, required, _ = task_def._plain or task_def.plain
        params: dict[str, Param] = {}
        deps: list[str] | None = None  # the nodes needed, when known here (else Dag.build's)
        # The node's key, made here (as ``Dag._key`` makes it) when every argument is a
        # result or a constant, so each node is gone through once (else None: Dag.build).
        text: str | None = None
        if not kwargs and 0 <= required <= len(args) <= len(names):  # bind(), inlined
            deps = []
            text = task_def._hash or task_def.definition_hash
            for key, value in zip(names, args, strict=False):  # param(), results inlined
                if value.__class__ is TaskFuture and value._tracer is self:
                    params[key] = value._ref
                    if deps is not None:
                        deps.append(value._node)
                    made = value._key
                    text = None if text is None or not made else f"{text}\n{key}=ref:{made}"
                    continue
                param = params[key] = self.param(value)
                if param.__class__ is not Value:
                    deps = text = None  # results inside containers: Node.dep_ids finds them
                elif text is not None:
                    digest = param.digest
                    text = None if digest is None else f"{text}\n{key}=value:{digest}"
        else:
            try:
                arguments = task_def.bind(args, kwargs)
            except TypeError as exc:
                raise WorkflowDefinitionError(
                    f"task {task_def.name!r} called wrongly: {exc}") from None
            for key, value in arguments.items():
                params[key] = self.param(value)
        name = task_def.name
        count = self._counts[name] = self._counts.get(name, 0) + 1
        node_id = f"{name}-{count}"
        node = Node(node_id, task_def, params)
        if deps is not None:  # known here: Dag.build takes them as they are
            node.deps = tuple(dict.fromkeys(deps)) if len(deps) > 1 else tuple(deps)
            if text is not None:
                node.key = _sha256(text.encode()).hexdigest()
        self.nodes.append(node)
        return TaskFuture(node_id, self, node.key)

    def param(self, value: Any) -> Param:
        kind = value.__class__
        if kind in _SCALARS:
            return encode(value)
        refs: list[str] = []
        template = self.template(value, refs)
        if template.__class__ is Ref:
            return template
        return Nested(template, tuple(dict.fromkeys(refs))) if refs else encode(value)

    def template(self, value: Any, refs: list[str]) -> Any:
        """``value`` with every ``TaskFuture`` in it (in containers, too) made a ``Ref``;
        the nodes of those results are added to ``refs`` in the order they appear."""
        if isinstance(value, TaskFuture):
            if value._tracer is not self:
                raise WorkflowDefinitionError(
                    f"{value!r} belongs to another workflow call; results cannot be shared"
                )
            refs.append(value._node)
            return value._ref
        if isinstance(value, list | tuple | set | frozenset):
            items = []
            for item in value:  # a list of results is the common case: no call for each
                if item.__class__ is TaskFuture and item._tracer is self:
                    refs.append(item._node)
                    items.append(item._ref)
                else:
                    items.append(self.template(item, refs))
            return items if isinstance(value, list) else type(value)(items)
        if isinstance(value, dict):
            return {k: self.template(v, refs) for k, v in value.items()}
        return value


def trace(name: str, fn: Callable[..., Any], args: tuple[Any, ...],
          kwargs: dict[str, Any]) -> Dag:
    """Call the workflow function with tracing on and build its checked ``Dag``."""
    if getattr(_tracing, "tracer", None) is not None:
        raise WorkflowDefinitionError(f"workflow {name!r} was called inside another workflow")
    tracer = Tracer(name)
    _tracing.tracer = tracer
    try:
        result = fn(*args, **kwargs)
    except RunyardError:
        raise
    except Exception as exc:
        detail = " ".join(str(exc).split())
        raise WorkflowDefinitionError(
            f"cannot trace workflow {name!r}: {type(exc).__name__}: {detail}; a workflow body "
            "may only call tasks and pass their results to other tasks"
        ) from exc
    finally:
        _tracing.tracer = None
    return Dag.build(name, tracer.nodes, tracer.template(result, []))


def handler_node(handler: TaskDef, failed: str, error: str) -> Node:
    """The task run of a failure handler: ``handler(task_run, error)``."""
    try:
        bound = handler.signature.bind(failed, error)
    except TypeError as exc:
        raise WorkflowDefinitionError(
            f"on_failure task {handler.name!r} must take (task_run, error): {exc}"
        ) from None
    params: dict[str, Param] = {k: encode(v) for k, v in bound.arguments.items()}
    node = Node(f"{handler.name}-on-{failed}", handler, params, kind="on_failure")
    node.key = node.id
    return node
