"""Supervised local subprocesses: start in their own process group, log to a file, stop for sure.

Everything the dev stack runs (moto, Postgres, Redis, the Airflow components) goes through
:class:`ManagedProcess`, so one stop path covers them all: the stop signal to the leader,
then SIGTERM and SIGKILL to whatever is left in its process group or below it, including
descendants that moved to a group of their own (Airflow's task supervisor puts each task
process in a new group, so ``killpg`` alone misses them).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections import deque
from pathlib import Path
from typing import Callable

import psutil


class StackError(RuntimeError):
    """A local service failed to start or died; the message carries the tail of its log."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago.

    Another process can take it before ours binds; the services start within a second, so
    a clash is rare, and a clash shows up as a start failure with the log tail.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tail(path: Path, lines: int = 40) -> str:
    """:return: the last ``lines`` lines of a text file, or a note if it does not exist."""
    try:
        with open(path, errors="replace") as fh:
            return "".join(deque(fh, maxlen=lines))
    except FileNotFoundError:
        return f"(no log at {path})\n"


class ManagedProcess:
    """One long-running subprocess with its own process group and log file.

    :param name: short name used in messages ("moto", "scheduler", ...).
    :param argv: the command line.
    :param log_path: file that receives stdout and stderr (appended).
    :param env: full environment for the child (default: this process's).
    :param cwd: working directory.
    :param user: run as this user (only when we are root: PostgreSQL refuses to run as root).
    :param stop_signal: first signal sent on stop; SIGINT for programs that treat it as the
        clean shutdown (``airflow standalone`` stops its components on Ctrl-C only,
        PostgreSQL does a fast shutdown on SIGINT but waits for clients on SIGTERM).
    """

    def __init__(
        self,
        name: str,
        argv: list[str],
        log_path: Path,
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        user: str | None = None,
        stop_signal: int = signal.SIGTERM,
    ) -> None:
        self.name = name
        self.argv = argv
        self.log_path = Path(log_path)
        self.env = env
        self.cwd = cwd
        self.user = user
        self.stop_signal = stop_signal
        self.popen: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def start(self) -> ManagedProcess:
        """Start the process in a new session (hence its own process group)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                user=self.user if self.user and os.geteuid() == 0 else None,
                start_new_session=True,
            )
        return self

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def check(self) -> None:
        """Raise :class:`StackError` with the log tail if the process has exited."""
        if self.popen is not None and self.popen.poll() is not None:
            raise StackError(self.describe_exit())

    def describe_exit(self) -> str:
        rc = self.popen.returncode if self.popen else None
        return f"{self.name} exited (rc={rc}); last lines of {self.log_path}:\n{tail(self.log_path)}"

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the process and everything it started.

        The stop signal goes to the leader alone: Airflow's components and ``standalone`` shut
        their own children down, and signalling the whole group at once made them hang
        (measured: ``standalone`` exits in 5 s on its own SIGINT, not at all after a group
        SIGINT). Whatever is left then, in the group or below the leader, gets SIGTERM and,
        5 s later, SIGKILL.

        :param timeout: seconds to wait for the leader after the stop signal.
        """
        if self.popen is None:
            return
        pgid = self.popen.pid  # leader of its own session, so pgid == pid
        # Collected before the leader exits: its orphans are re-parented and cannot be found
        # from it afterwards (task processes also sit in process groups of their own).
        procs = _descendants(self.popen.pid)
        if self.popen.poll() is None:
            _signal(self.popen.pid, self.stop_signal)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                procs += _descendants(self.popen.pid)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            _signal_group(pgid, sig)
            for proc in procs:
                _signal(proc, sig)
            if self.popen.poll() is None:
                _signal(self.popen.pid, sig)
            _, procs = psutil.wait_procs([p for p in procs if p.is_running()], timeout=5)
            try:
                self.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _signal(proc: psutil.Process | int, sig: int) -> None:
    try:
        (proc if isinstance(proc, psutil.Process) else psutil.Process(proc)).send_signal(sig)
    except psutil.Error:
        pass


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def wait_until(
    ready: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    procs: list[ManagedProcess] = (),
    interval: float = 0.5,
    check: Callable[[], None] | None = None,
) -> float:
    """Poll ``ready`` until it returns true; fail early if a supervised process dies.

    :param ready: the readiness check; exceptions count as "not yet".
    :param timeout: seconds before giving up.
    :param what: what we wait for, for the error message.
    :param procs: processes that must stay alive meanwhile; their log tails go in errors.
    :param interval: seconds between checks.
    :param check: extra liveness check that raises :class:`StackError` when something died.
    :return: seconds waited.
    :raises StackError: on timeout or when one of ``procs`` exits.
    """
    start = time.monotonic()
    while True:
        for proc in procs:
            proc.check()
        if check:
            check()
        try:
            if ready():
                return time.monotonic() - start
        except Exception:  # noqa: BLE001 - a check that raises is simply not ready yet
            pass
        if time.monotonic() - start > timeout:
            logs = "".join(f"\n--- {p.name}: {p.log_path}\n{tail(p.log_path)}" for p in procs)
            raise StackError(f"timed out after {timeout:.0f}s waiting for {what}{logs}")
        time.sleep(interval)
