"""Start and stop Flower's long-running processes (Linux), and find free loopback ports.

A :class:`ManagedProcess` runs in its own process group and writes its output to a log file.
Stopping it ends the process, its group (children that outlived it, e.g. the SuperExec a refused
SuperNode leaves behind) and every live descendant that detached into another session (the
SuperLink's SuperExec and ServerApp), each addressed by its own ID: SIGTERM first, SIGKILL for
whatever is still alive after the grace period.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gt_secure.errors import GtSecureError


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that was free when asked (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def tool(name: str) -> str:
    """Path of a console script installed next to this Python (the project's venv)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _members(pgid: int) -> list[int]:
    """PIDs of the live processes in process group ``pgid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid:
                found.append(int(entry.name))
    return found


def descendants(pid: int) -> list[int]:
    """PIDs of every live process below ``pid`` (children first visited first)."""
    tree = _children()
    found: list[int] = []
    stack = list(tree.get(pid, []))
    while stack:
        child = stack.pop()
        found.append(child)
        stack.extend(tree.get(child, []))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _signal(pids: Sequence[int], sig: signal.Signals) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


@dataclass
class ManagedProcess:
    """A started process, its log file and the PIDs it spawned."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @classmethod
    def start(cls, name: str, args: Sequence[str], log_path: Path,
              env: Mapping[str, str], cwd: Path,
              preexec_fn: Callable[[], Any] | None = None) -> ManagedProcess:
        """Launch ``args`` with output appended to ``log_path`` (``preexec_fn`` runs in the
        child before exec)."""
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            popen = subprocess.Popen(list(args), stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=dict(env), cwd=cwd,
                                     start_new_session=True, preexec_fn=preexec_fn)
        return cls(name, popen, log_path)

    def wait_listening(self, host: str, port: int, timeout: float, poll: float = 0.5) -> None:
        """Wait until ``host:port`` accepts connections; raise if the process died first or
        ``timeout`` passed."""
        deadline = time.monotonic() + timeout
        while not port_open(host, port):
            if not self.alive() or time.monotonic() > deadline:
                raise GtSecureError(f"{self.name} did not start; log {self.log_path}:\n"
                                    f"{self.log()[-2000:]}")
            time.sleep(poll)

    @property
    def pid(self) -> int:
        """PID of the launched process."""
        return self.popen.pid

    def alive(self) -> bool:
        """Whether the launched process is still running."""
        return self.popen.poll() is None

    def log(self) -> str:
        """Everything the process wrote so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, text: str, timeout: float) -> bool:
        """Wait up to ``timeout`` s for ``text`` to appear in the log."""
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.5)
        return True

    def wait_exit(self, timeout: float) -> int | None:
        """Wait up to ``timeout`` s for the process to exit; its return code, or None."""
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def log_count(self, text: str) -> int:
        """How many times ``text`` appears in the log so far."""
        return self.log().count(text)

    def kill(self) -> None:
        """Crash the process: SIGKILL it, its group and its descendants at once, no grace."""
        family = sorted(set([self.pid, *descendants(self.pid), *self._group()]))
        _signal([p for p in family if _alive(p)], signal.SIGKILL)
        self.popen.wait()

    def _group(self) -> list[int]:
        return [pid for pid in _members(self.pid) if pid != self.pid]

    def stop(self, grace: float = 10.0) -> None:
        """End the process, its group and its descendants (SIGTERM, SIGKILL after ``grace``)."""
        family = descendants(self.pid) + self._group()
        if self.alive():
            _signal([self.pid], signal.SIGTERM)
            self.wait_exit(grace)
        family = sorted(set(family + descendants(self.pid) + self._group()))
        _signal([p for p in family if _alive(p)], signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(_alive(p) for p in family):
            time.sleep(0.2)
        _signal([p for p in family if _alive(p)], signal.SIGKILL)
        if self.alive():
            self.popen.kill()
        self.popen.wait()
