"""One replica of a command run: its work folder, named pipes, process, pumps and log readers."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runyard.commands.buffers import WriterGone
from runyard.commands.codespec import Codespec
from runyard.commands.pipes import InputPump, LogReader, OutputPump, Pump, make_fifo
from runyard.core.context import StoreContext
from runyard.model import LogLine
from runyard.processes import executors
from runyard.processes.sandbox import private_folder
from runyard.processes.tree import kill_tree, sweep_group


@dataclass
class Plan:
    """What the supervisor runs, as recorded in the run's parameters."""

    run_id: str
    spec: Codespec
    buffers: dict[str, str]
    replicas: int
    timeout_s: float | None
    executor: str

    @classmethod
    def from_parameters(cls, run_id: str, params: dict[str, Any]) -> Plan:
        from runyard.commands.codespec import from_mapping

        timeout = params.get("timeout_s")
        return cls(run_id, from_mapping(params["spec"]), dict(params["buffers"]),
                   int(params.get("replicas", 1)), None if timeout is None else float(timeout),
                   str(params.get("executor", "local")))


@dataclass
class Replica:
    index: int
    plan: Plan
    folder: Path
    proc: subprocess.Popen[bytes] | None = None
    pumps: list[Pump] = field(default_factory=list)
    readers: list[LogReader] = field(default_factory=list)
    started: float | None = None
    ended: float | None = None
    start_error: str | None = None

    @property
    def step(self) -> str:
        return f"replica-{self.index}"

    def prepare(self, ctx: StoreContext, gone: WriterGone) -> dict[str, str]:
        """Make the folder and a named pipe per buffer; the job's environment."""
        private_folder(self.folder)  # the run's folder too: see processes.sandbox
        env = {**os.environ, **self.plan.spec.env,
               "RUNYARD_RUN_ID": self.plan.run_id,
               "RUNYARD_REPLICA_INDEX": str(self.index),
               "RUNYARD_REPLICA_COUNT": str(self.plan.replicas)}
        for name in self.plan.spec.parameters:
            path = make_fifo(self.folder / f"{name}.pipe")
            env[f"{name.upper()}_PIPE"] = str(path)
            buffer_id = self.plan.buffers[name]
            if name in self.plan.spec.inputs:
                self.pumps.append(InputPump(path, ctx.registry, ctx.blobs, buffer_id, gone))
            else:
                self.pumps.append(OutputPump(path, ctx.registry, ctx.blobs, buffer_id,
                                             self.index))
        return env

    def start(self, env: dict[str, str], cgroups: Sequence[str] = ()) -> bool:
        """Start the process (pumps and readers come after); False if it could not start.

        ``cgroups``: the ``cgroup.procs`` files of the run's meter, which the job joins."""
        command = self.plan.spec.command
        if executors.find_program(command[0], env, self.folder) is None:
            self.start_error = f"failed to start: command {command[0]!r} not found"
            return False
        cmd = executors.argv(self.plan.executor, command, self.folder)
        try:
            self.proc = executors.start(cmd, env, self.folder, cgroups)
        except OSError as exc:
            self.start_error = f"failed to start: {exc.strerror or exc}"
            return False
        self.started = time.time()
        return True

    def attach(self, logs: list[LogLine], lock: threading.Lock,
               exited: threading.Event) -> None:
        """Start the pumps, the log readers and a thread that waits for the process."""
        assert self.proc is not None and self.proc.stdout and self.proc.stderr
        self.readers = [LogReader(self.proc.stdout, "stdout", self.step, logs, lock),
                        LogReader(self.proc.stderr, "stderr", self.step, logs, lock)]
        for thread in [*self.pumps, *self.readers]:
            thread.start()
        threading.Thread(target=self._wait, args=(exited,), daemon=True).start()

    def _wait(self, exited: threading.Event) -> None:
        assert self.proc is not None
        self.proc.wait()
        self.ended = time.time()
        exited.set()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.ended is None

    def stop(self) -> None:
        if self.proc is not None:
            kill_tree(self.proc)
            self.ended = self.ended or time.time()

    def wind_down(self) -> None:
        """After the process ended: clear its group, release the pumps, drain the logs."""
        if self.proc is not None:
            sweep_group(self.proc.pid)
        for pump in self.pumps:
            if isinstance(pump, InputPump):
                pump.release.set()
            pump.finish()
        for reader in self.readers:
            reader.join(5.0)

    def outcome(self) -> str | None:
        """Why this replica failed, or ``None`` if it succeeded."""
        if self.start_error is not None:
            return self.start_error
        errors = [p.error for p in self.pumps if p.error is not None]
        if errors:
            return errors[0]
        code = None if self.proc is None else self.proc.returncode
        return exit_reason(code)

    def cleanup(self) -> None:
        """Remove the named pipes; files the job wrote in its folder stay."""
        for name in self.plan.spec.parameters:
            (self.folder / f"{name}.pipe").unlink(missing_ok=True)


def exit_reason(code: int | None) -> str | None:
    if code is None:
        return "did not run"
    if code == 0:
        return None
    if code < 0:
        import signal

        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}"
    return f"non-zero exit code {code}"
