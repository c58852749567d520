"""A simulation-mode SuperLink that the caller starts and stops itself, and ``flwr run`` on it.

Flower 1.42's supported route for a local simulation: ``flower-superlink --simulation`` (insecure,
loopback, a port the OS found free) runs the ServerApp and the simulated SuperNodes' ClientApps;
the app is submitted with ``flwr run <app> <connection> --stream``. Everything (``FLWR_HOME``, the
generated app directory, the SuperLink's log) lives under ``work_dir``, nothing under ``~/.flwr``.
Use :class:`LocalSimulation` as a context manager: on exit (normal, error, Ctrl-C or SIGTERM) the
SuperLink and every process below it (SuperExec, simulation, Ray) are stopped.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import re
import shutil
import signal
import subprocess
import sys
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from gt_secure.deploy.federation import toml_value
from gt_secure.deploy.processes import ManagedProcess, free_port, tool
from gt_secure.errors import GtSecureError

CONNECTION = "gt-secure-simulation"
# A ServerApp log line as ``flwr run --stream`` prints it: colour codes, level, message.
_COLOUR = r"(?:\x1b\[[0-9;]*m)*"
_LOG_LINE = re.compile(rf"^{_COLOUR}(INFO|WARNING|ERROR)\s*{_COLOUR}\s*:\s*(.*)$")
# The project's progress lines (gt_secure.app.progress): start, one per round, end.
_PROGRESS = re.compile(r"^(gt-secure run \d+[: ]|round \d+/\d+: )")
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the child get SIGTERM when this process dies (Linux prctl;
    resolved here, in the parent: the child only makes the call); None where unavailable."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def progress_message(line: str) -> str | None:
    """The message of a ``flwr run --stream`` line if it is one of the ServerApp's progress
    lines (:mod:`gt_secure.app.progress`), else None (Flower's own notices)."""
    match = _LOG_LINE.match(line)
    if match is None or not _PROGRESS.match(match.group(2)):
        return None
    return match.group(2).strip()


def config_args(values: Mapping[str, Any]) -> str:
    """``key=value`` pairs as ``flwr run --run-config`` / ``--federation-config`` read them."""
    return " ".join(f"{k}={toml_value(v)}" for k, v in values.items())


def write_app_dir(path: Path) -> Path:
    """A Flower app directory for the installed ``gt_secure_flower`` entry points: its
    ``pyproject.toml`` declares the components and the run-config keys with
    :class:`~gt_secure.app.config.AppConfig`'s defaults (works without the repository)."""
    import gt_secure_flower
    from gt_secure import __version__ as version
    from gt_secure.app.config import AppConfig

    package = path / "gt_secure_flower"
    package.mkdir(parents=True, exist_ok=True)
    for source in Path(gt_secure_flower.__file__).parent.glob("*.py"):
        shutil.copyfile(source, package / source.name)
    config = "\n".join(f"{f.name.replace('_', '-')} = {toml_value(getattr(AppConfig(), f.name))}"
                       for f in dataclasses.fields(AppConfig))
    (path / "pyproject.toml").write_text(
        f'[project]\nname = "gt-secure"\nversion = "{version}"\n'
        'description = "gt-secure Flower app"\nlicense = "Apache-2.0"\ndependencies = []\n\n'
        '[tool.flwr.app]\npublisher = "gt-secure"\nfab-include = ["gt_secure_flower/*.py"]\n\n'
        '[tool.flwr.app.components]\nserverapp = "gt_secure_flower.server:app"\n'
        f'clientapp = "gt_secure_flower.client:app"\n\n[tool.flwr.app.config]\n{config}\n')
    return path


class LocalSimulation:
    """A simulation SuperLink on ``host`` (a free port) with its own ``FLWR_HOME``."""

    def __init__(self, work_dir: Path, host: str = "127.0.0.1") -> None:
        self.work_dir = work_dir
        self.host = host
        self.port = free_port(host)
        self.home = work_dir / "home"
        self.run_log = work_dir / "flwr-run.log"
        self.app_dir = write_app_dir(work_dir / "app")
        self.link: ManagedProcess | None = None
        self._old_sigterm: Any = None
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "config.toml").write_text(
            f'[superlink]\ndefault = "{CONNECTION}"\n\n[superlink.{CONNECTION}]\n'
            f'address = "{host}:{self.port}"\ninsecure = true\n')

    def env(self) -> dict[str, str]:
        """The children's environment: this ``FLWR_HOME``, no update check or telemetry, and
        the caller's torch thread count (the ServerApp ran in-process before: same threads)."""
        env = {**os.environ, "FLWR_HOME": str(self.home), "FLWR_DISABLE_UPDATE_CHECK": "1",
               "FLWR_TELEMETRY_ENABLED": "0"}
        if (torch := sys.modules.get("torch")) is not None:
            env["OMP_NUM_THREADS"] = str(torch.get_num_threads())
        return env

    def start(self, timeout: float = 120.0) -> None:
        """Start the SuperLink (cwd: the caller's, so relative paths in the run config resolve
        as they would in-process) and wait until it listens."""
        args = [tool("flower-superlink"), "--insecure", "--simulation", "--host", self.host,
                "--port", str(self.port), "--disable-runtime-dependency-installation"]
        self.link = ManagedProcess.start("superlink", args, self.work_dir / "superlink.log",
                                         self.env(), Path.cwd(), preexec_fn=_die_with_parent())
        self.link.wait_listening(self.host, self.port, timeout, poll=0.2)

    def run(self, run_config: Mapping[str, Any], federation_config: Mapping[str, Any],
            on_line: Callable[[str], None] = lambda line: None) -> str:
        """``flwr run --stream`` the app with ``run_config`` on the simulation engine set up by
        ``federation_config`` (``num-supernodes``, ``client-resources-num-cpus``, ...); each
        output line goes to ``on_line``; the output's last lines (raises if ``flwr run``
        failed)."""
        cmd = [tool("flwr"), "run", str(self.app_dir), CONNECTION,
               "--run-config", config_args(run_config),
               "--federation-config", config_args(federation_config), "--stream"]
        tail: deque[str] = deque(maxlen=40)
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                stdin=subprocess.DEVNULL, env=self.env(), cwd=Path.cwd())
        try:
            assert proc.stdout is not None
            with self.run_log.open("a") as log:
                for line in proc.stdout:
                    log.write(line)
                    tail.append(line.rstrip("\n"))
                    on_line(tail[-1])
            proc.wait()
        finally:  # interrupted or failed: the CLI must not outlive the command
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        if proc.returncode != 0:
            raise GtSecureError(f"flwr run failed with exit code {proc.returncode}; its output: "
                                f"{self.run_log}")
        return "\n".join(tail)

    def close(self) -> None:
        """Stop the SuperLink and everything below it."""
        if self.link is not None:
            self.link.stop()
            self.link = None

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    def __enter__(self) -> LocalSimulation:
        try:
            self._old_sigterm = signal.signal(signal.SIGTERM, self._on_sigterm)
        except ValueError:  # not the main thread: SIGTERM keeps its handler
            self._old_sigterm = None
        try:
            self.start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self.close()
        finally:
            if self._old_sigterm is not None:
                signal.signal(signal.SIGTERM, self._old_sigterm)
