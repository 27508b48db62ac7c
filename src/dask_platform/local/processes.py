"""Starting, watching and stopping the local platform's processes.

Every component runs in its own session (process group) so that stopping it also stops what it
started; every process the platform starts - including the Dask schedulers and workers the
gateway spawns - carries ``MARKER_ENV`` in its environment, so ``local down`` can find and stop
anything left behind and then verify that nothing is.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from dask_platform.credentials import FORBIDDEN_ENV_VARS

MARKER_ENV = "DASK_PLATFORM_LOCAL_STATE_DIR"
"""Set in every process of one local platform to its state directory (not a secret)."""


class ComponentError(RuntimeError):
    """A component failed to start or stopped unexpectedly; the message says which and why."""


def write_json_atomic(path: Path, data: Any, mode: int = 0o600) -> None:
    """Write JSON so a reader sees the old or the new file, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def clean_environment(base: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """The parent environment without any AWS variable, plus ``extra``.

    The operator running ``local up`` may have real AWS credentials or a profile in their
    shell; none of it may reach the gateway (and so its workers) or the emulator.
    """
    env = {
        k: v
        for k, v in base.items()
        if not k.upper().startswith("AWS_") and k.upper() not in FORBIDDEN_ENV_VARS
    }
    env.update(extra)
    return env


def log_tail(path: Path, lines: int = 15) -> str:
    if not path.is_file():
        return "(no log written)"
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(f"    {line}" for line in text[-lines:]) or "(log is empty)"


@dataclass
class Spawned:
    name: str
    pid: int
    log: Path


def spawn(name: str, argv: list[str], env: Mapping[str, str], log: Path, cwd: Path) -> Spawned:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv,
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            # Own session: the component and everything it starts can be signalled as a group,
            # and it outlives the CLI process that started it.
            start_new_session=True,
        )
    return Spawned(name=name, pid=proc.pid, log=log)


def is_alive(pid: int) -> bool:
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _timeouts() -> Any:
    from dask_platform.local.settings import LocalTimeouts  # it imports this module

    return LocalTimeouts.from_environment()


def wait_for(spawned: Spawned, ready: Path, timeout: float, check: Any = None) -> dict[str, Any]:
    """Wait until the component wrote its ready file (and ``check()`` passes, if given)."""
    poll = _timeouts().ready_poll_seconds
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(spawned.pid):
            raise ComponentError(
                f"{spawned.name} exited while starting (pid {spawned.pid}); last lines of "
                f"{spawned.log}:\n{log_tail(spawned.log)}"
            )
        if ready.is_file():
            data: dict[str, Any] = read_json(ready)
            if check is None or check(data):
                return data
        time.sleep(poll)
    raise ComponentError(
        f"{spawned.name} did not become ready within {timeout:g}s (pid {spawned.pid}); last "
        f"lines of {spawned.log}:\n{log_tail(spawned.log)}"
    )


def marked_processes(state_dir: Path) -> list[psutil.Process]:
    """Every live process of this platform (found by its marker), except the caller."""
    wanted = str(state_dir)
    found = []
    for proc in psutil.process_iter(["pid"]):
        if proc.pid == os.getpid():
            continue
        try:
            if proc.environ().get(MARKER_ENV) == wanted and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def terminate(pids: Iterable[int], timeout: float | None = None) -> list[int]:
    """SIGTERM each process group (then SIGKILL after ``timeout``, default the setting
    ``stop_grace_seconds``); return pids still alive."""
    timeouts = _timeouts()
    timeout = timeouts.stop_grace_seconds if timeout is None else timeout
    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue
    for proc in procs:
        for sig_target in (_group_of(proc.pid), None):
            try:
                if sig_target is not None:
                    os.killpg(sig_target, signal.SIGTERM)
                else:
                    proc.terminate()
            except (ProcessLookupError, PermissionError, psutil.NoSuchProcess):
                pass
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for proc in alive:
        try:
            group = _group_of(proc.pid)
            if group is not None:
                os.killpg(group, signal.SIGKILL)
            proc.kill()
        except (ProcessLookupError, PermissionError, psutil.NoSuchProcess):
            pass
    _, still = psutil.wait_procs(alive, timeout=timeouts.kill_wait_seconds)
    return [p.pid for p in still]


def _group_of(pid: int) -> int | None:
    try:
        group = os.getpgid(pid)
    except ProcessLookupError:
        return None
    # Never signal our own group (the CLI or the test runner).
    return None if group == os.getpgid(0) else group
