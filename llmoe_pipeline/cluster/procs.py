"""Starting, watching and stopping the cluster's processes, leaving no orphans.

Each service runs in its own session (process group) with its output appended to `logs/<service>.log`, and a pid
file (`pids/<service>.json`) records its pid, group and start time (a reused pid is not mistaken for it). Every
process is started with `LLMOE_CLUSTER_ID=<id>` in its environment, which its children inherit (PostgreSQL's
backends, Dagster's run workers, Celery's pool processes, vLLM's engine core), so that `sweep` finds whatever a
service left behind, even outside its group (Erlang's helpers start their own sessions). Pure: no Dagster.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from llmoe_pipeline.core.files import private_mkdir, write_text_atomic

CLUSTER_ID_ENV = "LLMOE_CLUSTER_ID"


class ClusterError(RuntimeError):
    """An expected failure of a cluster command: reported as one line."""


@dataclass(frozen=True)
class Record:
    service: str
    pid: int
    pgid: int
    create_time: float
    argv: list[str]
    spec: str = ""  # a hash of what the service was started with: `up` restarts it when that changed

    def process(self) -> psutil.Process | None:
        """The live process this record describes, or None (gone, a zombie, or a reused pid)."""
        try:
            proc = psutil.Process(self.pid)
            if abs(proc.create_time() - self.create_time) > 0.05 or proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return proc
        except psutil.Error:
            return None


def read_record(pid_file: Path) -> Record | None:
    try:
        return Record(**json.loads(pid_file.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def running(pid_file: Path) -> Record | None:
    """The service's record when its process is alive."""
    record = read_record(pid_file)
    return record if record and record.process() else None


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def start(
    service: str,
    argv: list[str],
    *,
    env: dict[str, str],
    log: Path,
    pid_file: Path,
    cluster_id: str,
    cwd: Path | None = None,
    user: str | None = None,
    spec: str = "",
) -> Record:
    """Start `argv` in a new session, output appended to `log`; write and return its pid record."""
    private_mkdir(log.parent)
    private_mkdir(pid_file.parent)
    with open(log, "ab") as out:
        out.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {service}: {' '.join(argv)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            argv,
            env={**env, CLUSTER_ID_ENV: cluster_id},
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            user=user,
            group=user,
            extra_groups=[] if user else None,
        )
    record = Record(service, proc.pid, proc.pid, psutil.Process(proc.pid).create_time(), argv, spec)
    write_text_atomic(json.dumps(record.__dict__), pid_file)
    return record


def tagged(cluster_id: str) -> list[psutil.Process]:
    """Every live process started by this cluster (its own or a descendant), found by the environment tag."""
    found = []
    for proc in psutil.process_iter(["pid"]):
        with contextlib.suppress(psutil.Error):
            if proc.status() != psutil.STATUS_ZOMBIE and proc.environ().get(CLUSTER_ID_ENV) == cluster_id:
                found.append(proc)
    return found


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def stop(pid_file: Path, sig: int = signal.SIGTERM, grace_s: float = 30) -> bool:
    """Stop a service: `sig` to its process group (and to its descendants outside the group), SIGKILL to whatever
    is left after `grace_s`. Removes the pid file. Returns whether it was running."""
    record = read_record(pid_file)
    proc = record.process() if record else None
    if record is None or proc is None:
        pid_file.unlink(missing_ok=True)
        return False
    family = [proc, *_children(proc)]
    _signal_group(record.pgid, sig)
    for member in family[1:]:
        with contextlib.suppress(psutil.Error, OSError):
            if os.getpgid(member.pid) != record.pgid:
                member.send_signal(sig)
    _, alive = psutil.wait_procs(family, timeout=grace_s)
    if alive:
        _signal_group(record.pgid, signal.SIGKILL)
        for member in alive:
            with contextlib.suppress(psutil.Error):
                member.kill()
        psutil.wait_procs(alive, timeout=10)
    pid_file.unlink(missing_ok=True)
    return True


def kill(pid_file: Path) -> bool:
    """SIGKILL a service's whole process group at once, as a machine that dies would (tests: a worker lost
    mid-step). The pid file stays, so `status` shows the service as down."""
    record = read_record(pid_file)
    proc = record.process() if record else None
    if record is None or proc is None:
        return False
    family = [proc, *_children(proc)]
    _signal_group(record.pgid, signal.SIGKILL)
    for member in family:
        with contextlib.suppress(psutil.Error):
            member.kill()
    psutil.wait_procs(family, timeout=10)
    return True


def _children(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return proc.children(recursive=True)
    except psutil.Error:
        return []


def sweep(cluster_id: str, grace_s: float = 10) -> list[str]:
    """SIGTERM, then SIGKILL, every process still tagged with `cluster_id`; returns what it had to end."""
    left = tagged(cluster_id)
    names = []
    for proc in left:
        with contextlib.suppress(psutil.Error):
            names.append(f"{proc.pid} {' '.join(proc.cmdline())[:120]}")
            proc.terminate()
    _, alive = psutil.wait_procs(left, timeout=grace_s)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=10)
    return names


def wait_until(check: Callable[[], bool], timeout_s: float, what: str, alive: Callable[[], bool], log: Path) -> None:
    """Poll `check` until it holds; a ClusterError naming `what` and the log when `alive()` turns false or time
    runs out."""
    deadline = time.time() + timeout_s
    while True:
        with contextlib.suppress(Exception):
            if check():
                return
        if not alive():
            raise ClusterError(f"{what} exited during start-up; see {log}: {last_line(log)}")
        if time.time() > deadline:
            raise ClusterError(f"{what} not ready after {timeout_s:.0f} s; see {log}: {last_line(log)}")
        time.sleep(0.5)


def last_line(log: Path) -> str:
    try:
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "(no log)"
    return lines[-1][:300] if lines else "(empty log)"
