"""The ``Runtime`` contract: a small lifecycle object that runs callables and returns futures.

A runtime is started (explicitly or by entering it as a context manager), takes callables with
``submit(fn, *args)`` and answers each with a ``concurrent.futures.Future``, and is shut down
(by ``shutdown`` or on leaving the ``with`` block). A runtime whose callables run in another
process (``remote``) needs them and their arguments to pickle; ``submit`` refuses ones that do
not with a one-line ``RuntimeUnavailable`` before anything runs. Submitting before ``start`` or
after ``shutdown`` is refused the same way.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol, Self, TypeVar, runtime_checkable

from runyard.errors import RuntimeUnavailable

T = TypeVar("T")


@runtime_checkable
class Runtime(Protocol):
    """Where submitted callables execute."""

    name: str
    remote: bool  # callables and values cross a process boundary (and must pickle)

    def start(self) -> None: ...
    def submit(self, fn: Callable[..., T], /, *args: Any) -> Future[T]: ...
    def submit_then(self, fn: Callable[..., T], args: tuple[Any, ...],
                    done: Callable[[T | None, BaseException | None], None]) -> Any: ...
    def shutdown(self, wait: bool = True) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, *exc: object) -> None: ...


class RuntimeBase(ABC):
    """The lifecycle every runtime shares: created → started → shut down, checked once here."""

    name = "runtime"
    remote = False

    def __init__(self) -> None:
        self._state = "created"
        self._state_lock = threading.Lock()

    @property
    def started(self) -> bool:
        return self._state == "started"

    def start(self) -> None:
        with self._state_lock:
            if self._state == "started":
                return
            if self._state == "shut down":
                raise RuntimeUnavailable(f"the {self.name} runtime was shut down; make a new one")
            self._start()
            self._state = "started"

    def submit(self, fn: Callable[..., T], /, *args: Any) -> Future[T]:
        self._check_started()
        return self._submit(fn, args)

    def _check_started(self) -> None:
        if self._state != "started":
            raise RuntimeUnavailable(
                f"the {self.name} runtime is {self._state}; start it (or use it in a with block)"
            )

    def submit_then(self, fn: Callable[..., T], args: tuple[Any, ...],
                    done: Callable[[T | None, BaseException | None], None]) -> Any:
        """Submit ``fn(*args)``; when it ends, ``done(result, None)`` or ``done(None, error)``
        is called on whichever thread ends it. Refused as ``submit`` refuses. Runtimes may do
        this without a ``Future`` (the in-process one does: one less lock per step). Returns
        the call's handle where the runtime chains calls (``submit_after``), else ``None``."""
        self.submit(fn, *args).add_done_callback(lambda future: _report(future, done))

    def shutdown(self, wait: bool = True) -> None:
        with self._state_lock:
            if self._state == "started":
                self._shutdown(wait)
            self._state = "shut down"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    @abstractmethod
    def _start(self) -> None: ...

    @abstractmethod
    def _submit(self, fn: Callable[..., T], args: tuple[Any, ...]) -> Future[T]: ...

    @abstractmethod
    def _shutdown(self, wait: bool) -> None: ...


# How a call's end is told: by completing its future, or by calling its done-callback.
Answer = Future[Any] | Callable[[Any, BaseException | None], None]


def settle(answer: Answer, result: Any, error: BaseException | None, runtime: str) -> None:
    """Tell ``answer`` the call ended with ``result`` (or ``error``). A done-callback that
    fails is logged, as a future's callback is: it never ends the thread that answers."""
    if isinstance(answer, Future):
        if error is None:
            answer.set_result(result)
        else:
            answer.set_exception(error)
        return
    try:
        answer(result, error)
    except Exception:
        logging.getLogger(__name__).exception("a done-callback of the %s runtime failed",
                                              runtime)


def _report(future: Future[T], done: Callable[[T | None, BaseException | None], None]) -> None:
    try:
        result = future.result()
    except BaseException as exc:  # the call's error (or a cancel), handed on
        done(None, exc)
    else:
        done(result, None)


def pickled_call(fn: Callable[..., Any], args: tuple[Any, ...], runtime: str) -> bytes:
    """``(fn, args)`` pickled, or one clear line saying what would not pickle.

    Plain ``pickle`` first (many times faster); cloudpickle when that fails or when the pickle
    names ``__main__``, whose functions and classes plain pickle sends by a reference that the
    worker could not resolve (cloudpickle sends them by value).
    """
    import pickle

    try:
        data = pickle.dumps((fn, args), protocol=5)
    except Exception:  # lambdas, local functions: cloudpickle copes
        data = b"__main__"
    if b"__main__" not in data:
        return data
    import cloudpickle

    try:
        return bytes(cloudpickle.dumps((fn, args)))
    except Exception as exc:  # any pickling failure means the same to the user
        what = getattr(fn, "__qualname__", repr(fn))
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise RuntimeUnavailable(
            f"cannot send {what} and its arguments to the {runtime} runtime: they do not pickle "
            f"({type(exc).__name__}: {detail}); pass plain data, or use the in_process runtime"
        ) from exc


def call_pickled(payload: bytes, more: tuple[Any, ...] = ()) -> Any:
    """Run a call made by ``pickled_call`` (in the worker), with ``more`` arguments after its
    own."""
    import cloudpickle

    fn, args = cloudpickle.loads(payload)
    return fn(*args, *more)
