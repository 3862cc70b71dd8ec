"""The supervisor: the detached process that owns a command run from start to end.

It records itself as the run's owner and beats its heartbeat, so a killed supervisor makes the
run ``lost`` (see ``runyard.core.liveness``). It moves the run to ``running``, starts every
replica, pumps buffers through named pipes and logs into the store, and watches for a
cancel request, the timeout, and the replicas' exits. Then it ends the output buffers (complete
only if the run succeeded) and writes the final status with its reason.

It is started detached (see ``detach``): forked early from the command line, or in a fresh
interpreter; either way in a session of its own, so it outlives the command line. Each status
it writes is also signalled through ``notify`` (the forked one's event pipe).
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable

from runyard.commands.codespec import format_seconds
from runyard.commands.context import open_context
from runyard.commands.follow import writer_gone
from runyard.commands.replicas import Plan, Replica
from runyard.core.context import StoreContext
from runyard.core.lease import Lease
from runyard.errors import ConflictError
from runyard.model import Attempt, LogLine, Status, Step
from runyard.processes.detach import subreaper
from runyard.processes.meter import JobMeter
from runyard.processes.owners import this_owner
from runyard.processes.tree import reap_orphans

HEARTBEAT_S = 2.0
TICK_S = 0.05


class Supervisor:
    def __init__(self, ctx: StoreContext, run_id: str,
                 notify: Callable[[], None] | None = None) -> None:
        self.ctx, self.run_id = ctx, run_id
        self.notify = notify or (lambda: None)
        run = ctx.store.get_run(run_id)
        self.owned = run.owner  # recorded at creation when the supervisor was forked early
        self.plan = Plan.from_parameters(run_id, run.parameters)
        work = ctx.work_dir(run_id)
        self.replicas = [Replica(i, self.plan, work / str(i)) for i in range(self.plan.replicas)]
        self.logs: list[LogLine] = []
        self.lock = threading.Lock()
        self.exited = threading.Event()
        self.flushed = 0.0
        self.lease = Lease(ctx.store, run_id, heartbeat_s=HEARTBEAT_S)
        self.meter = JobMeter.of_this_process()  # the jobs' control groups

    # -- lifecycle ---------------------------------------------------------------------------
    def run(self) -> None:
        try:
            if self._take_ownership():
                reason, final = self._execute()
                self._finish(final, reason)
        finally:
            self.meter.close()

    def _take_ownership(self) -> bool:
        owner = self.lease.owner
        if self.owned != owner:
            self.lease.take()
            for name in self.plan.spec.outputs:
                self.ctx.registry.set_owner(self.plan.buffers[name], owner)
        try:
            self.ctx.store.update_status(self.run_id, Status.RUNNING, expect=Status.PENDING)
        except ConflictError:  # canceled before it started
            self._end_outputs(False, "its run was canceled before it started")
            return False
        self.notify()
        return True

    def _execute(self) -> tuple[str | None, Status]:
        gone = writer_gone(self.ctx.store)
        envs = [replica.prepare(self.ctx, gone) for replica in self.replicas]
        for replica, env in zip(self.replicas, envs, strict=True):
            if not replica.start(env, self.meter.procs_files):
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
            if self._tick():
                self._stop_all()
                return "canceled by request", Status.CANCELED
            if deadline is not None and time.time() >= deadline:
                self._stop_all()
                return f"timed out after {format_seconds(self.plan.timeout_s or 0)}", Status.FAILED
            if self._pump_failed():
                self._stop_all()
                break
        return self._outcome()

    def _tick(self) -> bool:
        """Write the logs now and then, and tick the lease; whether a cancel was asked for."""
        now = time.monotonic()
        if now - self.flushed >= 0.1:
            self.flush_logs()
            self.flushed = now
        return self.lease.tick(now)

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
        self._end_outputs(final is Status.SUCCEEDED, None if final is Status.SUCCEEDED
                          else f"its run ended {final.value}: {reason}")
        reap_orphans()
        self.lease.end(final, reason, resources=self.meter.summary())
        self.notify()

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

    def _end_outputs(self, complete: bool, reason: str | None) -> None:
        for name in self.plan.spec.outputs:
            self.ctx.registry.finish(self.plan.buffers[name], complete, reason)


def prepare(url: str) -> None:
    """Import and look up what a supervisor needs before it knows its run (a forked one does
    this while the command line records the run). The store is not opened yet: that would
    take its write lock while the command line writes, and make it wait."""
    from runyard.commands.context import preload
    from runyard.processes import executors

    executors.prepare()
    # its first job's warden, in the meter's control groups, while the run is being recorded
    executors.prestart(JobMeter.of_this_process().procs_files)
    this_owner()
    preload(url)


def supervise(url: str, run_id: str, notify: Callable[[], None] | None = None,
              linger: Callable[[], None] | None = None) -> int:
    """Own and execute run ``run_id`` of the store at ``url`` to its end; the exit code.

    ``linger``: called once the run has ended, before the store is closed."""
    ctx = open_context(url)
    try:
        Supervisor(ctx, run_id, notify).run()
        if linger is not None:
            linger()
        return 0
    except BaseException:
        import traceback  # only when it failed

        traceback.print_exc()
        _fail(ctx, run_id, f"the supervisor failed: {sys.exc_info()[1]}")
        if notify is not None:
            notify()
        return 1
    finally:
        ctx.close()


def _fail(ctx: StoreContext, run_id: str, reason: str) -> None:
    with contextlib.suppress(Exception):
        run = ctx.store.get_run(run_id)
        if not run.status.is_final:
            ctx.store.update_status(run_id, Status.FAILED, reason)


def main(argv: list[str] | None = None) -> int:
    """``python -m runyard.commands.supervisor RUN_ID --store URL``."""
    import argparse

    parser = argparse.ArgumentParser(prog="runyard.commands.supervisor")
    parser.add_argument("run_id")
    parser.add_argument("--store", required=True)
    args = parser.parse_args(argv)
    subreaper()
    return supervise(args.store, args.run_id)


if __name__ == "__main__":
    sys.exit(main())
