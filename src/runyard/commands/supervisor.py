"""The supervisor: the detached process that owns a command run from start to end.

It records itself as the run's owner and beats its heartbeat, so a killed supervisor makes the
run ``lost`` (see ``runyard.core.liveness``). It moves the run to ``running``, starts every
replica, pumps buffers through named pipes and logs into the store, and watches for a
cancel request, the timeout, and the replicas' exits. Then it ends the output buffers (complete
only if the run succeeded) and writes the final status with its reason.

``spawn`` starts it by double fork from the calling process (no new interpreter to start), in
a session of its own, so it outlives the command line that started it.
"""

from __future__ import annotations

import contextlib
import os
import resource
import sys
import threading
import time
import traceback
from pathlib import Path

from runyard.commands.codespec import format_seconds
from runyard.commands.context import Context, open_context
from runyard.commands.follow import writer_gone
from runyard.commands.replicas import Plan, Replica
from runyard.core import liveness
from runyard.errors import ConflictError
from runyard.model import Attempt, LogLine, Status, Step

HEARTBEAT_S = 2.0
TICK_S = 0.05
PR_SET_CHILD_SUBREAPER = 36


class Supervisor:
    def __init__(self, ctx: Context, run_id: str) -> None:
        self.ctx, self.run_id = ctx, run_id
        run = ctx.store.get_run(run_id)
        self.plan = Plan.from_parameters(run_id, run.parameters)
        work = ctx.work_dir(run_id)
        self.replicas = [Replica(i, self.plan, work / str(i)) for i in range(self.plan.replicas)]
        self.logs: list[LogLine] = []
        self.lock = threading.Lock()
        self.exited = threading.Event()
        self.beat = self.flushed = 0.0

    # -- lifecycle ---------------------------------------------------------------------------
    def run(self) -> None:
        if not self._take_ownership():
            return
        reason, final = self._execute()
        self._finish(final, reason)

    def _take_ownership(self) -> bool:
        owner = liveness.this_owner()
        self.ctx.store.update_run(self.run_id, owner=owner, heartbeat=time.time())
        for name in self.plan.spec.outputs:
            self.ctx.registry.set_owner(self.plan.buffers[name], owner)
        try:
            self.ctx.store.update_status(self.run_id, Status.RUNNING, expect=Status.PENDING)
        except ConflictError:  # canceled before it started
            self._end_outputs(False, "its run was canceled before it started")
            return False
        return True

    def _execute(self) -> tuple[str | None, Status]:
        gone = writer_gone(self.ctx.store)
        envs = [replica.prepare(self.ctx, gone) for replica in self.replicas]
        for replica, env in zip(self.replicas, envs, strict=True):
            if not replica.start(env):
                self._stop_all()
                self._record_steps()
                return replica.start_error, Status.FAILED
        for replica in self.replicas:
            replica.attach(self.logs, self.lock, self.exited)
        self._record_steps()
        return self._watch()

    def _watch(self) -> tuple[str | None, Status]:
        deadline = None if self.plan.timeout_s is None else time.time() + self.plan.timeout_s
        while any(r.running for r in self.replicas):
            self.exited.wait(TICK_S)
            self.exited.clear()
            self._tick()
            if self._canceling():
                self._stop_all()
                return "canceled by request", Status.CANCELED
            if deadline is not None and time.time() >= deadline:
                self._stop_all()
                return f"timed out after {format_seconds(self.plan.timeout_s or 0)}", Status.FAILED
            if self._pump_failed():
                self._stop_all()
                break
        return self._outcome()

    def _tick(self) -> None:
        now = time.monotonic()
        if now - self.flushed >= 0.1:
            self.flush_logs()
            self.flushed = now
        if now - self.beat >= HEARTBEAT_S:
            self.ctx.store.update_run(self.run_id, heartbeat=time.time())
            self.beat = now

    def _canceling(self) -> bool:
        return self.ctx.store.get_run(self.run_id).status is Status.CANCELING

    def _pump_failed(self) -> bool:
        return any(p.error for r in self.replicas for p in r.pumps)

    def _stop_all(self) -> None:
        for replica in self.replicas:
            replica.stop()

    def _outcome(self) -> tuple[str | None, Status]:
        for replica in self.replicas:
            replica.wind_down()
        failures = [(r.index, r.outcome()) for r in self.replicas if r.outcome() is not None]
        if not failures:
            return None, Status.SUCCEEDED
        index, why = failures[0]
        return (f"replica {index}: {why}" if len(self.replicas) > 1 else why), Status.FAILED

    # -- records -----------------------------------------------------------------------------
    def flush_logs(self) -> None:
        with self.lock:
            batch, self.logs[:] = list(self.logs), []
        if batch:
            self.ctx.store.append_logs(self.run_id, batch)

    def _record_steps(self) -> None:
        for replica in self.replicas:
            pid = None if replica.proc is None else replica.proc.pid
            self.ctx.store.upsert_step(self.run_id, Step(replica.step, kind="replica",
                                                         metadata={"pid": pid}))
            self.ctx.store.upsert_attempt(self.run_id, replica.step,
                                          Attempt(1, Status.RUNNING, replica.started))

    def _finish(self, final: Status, reason: str | None) -> None:
        for replica in self.replicas:
            replica.wind_down()
            replica.cleanup()
        self.flush_logs()
        self._record_attempts(final)
        self._record_resources()
        self._end_outputs(final is Status.SUCCEEDED, None if final is Status.SUCCEEDED
                          else f"its run ended {final.value}: {reason}")
        reap_orphans()
        self.ctx.store.update_status(self.run_id, final, reason)

    def _record_attempts(self, final: Status) -> None:
        for replica in self.replicas:
            if replica.proc is None and replica.start_error is None:
                continue
            why = replica.outcome()
            status = Status.SUCCEEDED if why is None else (
                Status.CANCELED if final is Status.CANCELED else Status.FAILED)
            code = None if replica.proc is None else replica.proc.returncode
            self.ctx.store.upsert_attempt(self.run_id, replica.step, Attempt(
                1, status, replica.started, replica.ended, message=why or "exit code 0",
                outputs={"exit_code": code}))

    def _record_resources(self) -> None:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.ctx.store.update_run(self.run_id, resources={
            "cpu_user_s": round(usage.ru_utime, 3), "cpu_system_s": round(usage.ru_stime, 3),
            "peak_rss_bytes": usage.ru_maxrss * 1024})

    def _end_outputs(self, complete: bool, reason: str | None) -> None:
        for name in self.plan.spec.outputs:
            self.ctx.registry.finish(self.plan.buffers[name], complete, reason)


def reap_orphans() -> None:
    """Kill and reap processes the job left behind (they were reparented to us)."""
    from runyard.commands.executors import tree

    for proc in tree(os.getpid())[1:]:
        with contextlib.suppress(Exception):
            proc.kill()
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def supervise(url: str, run_id: str) -> int:
    """Own and execute run ``run_id`` of the store at ``url`` to its end; the exit code."""
    ctx = open_context(url)
    try:
        Supervisor(ctx, run_id).run()
        return 0
    except BaseException:
        traceback.print_exc()
        _fail(ctx, run_id, f"the supervisor failed: {sys.exc_info()[1]}")
        return 1
    finally:
        ctx.close()


def _fail(ctx: Context, run_id: str, reason: str) -> None:
    with contextlib.suppress(Exception):
        run = ctx.store.get_run(run_id)
        if not run.status.is_final:
            ctx.store.update_status(run_id, Status.FAILED, reason)


class Handle:
    """A supervisor forked before any database was opened, waiting to be told its run."""

    def __init__(self, pid: int, go: int) -> None:
        self.pid, self._go = pid, go

    def start(self, run_id: str, log_path: Path) -> None:
        os.write(self._go, f"{run_id}\n{log_path}".encode())
        self.abandon()

    def abandon(self) -> None:
        """No run after all: the waiting supervisor exits."""
        if self._go >= 0:
            os.close(self._go)
            self._go = -1


def prefork(url: str) -> Handle:
    """Fork the supervisor now (double fork, new session), before this process opens any
    SQLite database: a forked child must not inherit SQLite's per-process lock state. The
    child keeps the modules already imported, so no interpreter has to start."""
    go_read, go_write = os.pipe()
    pid_read, pid_write = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(go_write)
        os.close(pid_read)
        _detached_child(url, go_read, pid_write)
    os.close(go_read)
    os.close(pid_write)
    os.waitpid(child, 0)
    with os.fdopen(pid_read, "rb") as answer:
        return Handle(int(answer.read() or b"0"), go_write)


def _detached_child(url: str, go: int, report: int) -> None:
    code = 1
    try:
        os.setsid()
        if os.fork():
            os._exit(0)
        os.write(report, str(os.getpid()).encode())
        os.close(report)
        with os.fdopen(go, "rb") as orders:
            run_id, _, log_path = orders.read().decode().partition("\n")
        if not run_id:
            code = 0
            return
        code = _become_supervisor(url, run_id, Path(log_path))
    finally:
        os._exit(code)


def _become_supervisor(url: str, run_id: str, log_path: Path) -> int:
    _redirect(log_path)
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1)
    return supervise(url, run_id)


def spawn(url: str, run_id: str, log_path: Path) -> int:
    """Start a supervisor in a fresh interpreter (safe from any process); returns its pid."""
    import subprocess

    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "runyard.commands.supervisor", run_id, "--store", url],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    return proc.pid


def _redirect(log_path: Path) -> None:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    null = os.open(os.devnull, os.O_RDONLY)
    out = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(null)
    os.close(out)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115


def main(argv: list[str] | None = None) -> int:
    """``python -m runyard.commands.supervisor RUN_ID --store URL``."""
    import argparse

    parser = argparse.ArgumentParser(prog="runyard.commands.supervisor")
    parser.add_argument("run_id")
    parser.add_argument("--store", required=True)
    args = parser.parse_args(argv)
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1)
    return supervise(args.store, args.run_id)


if __name__ == "__main__":
    sys.exit(main())
