"""A TLS-secured, node-authenticated Flower federation on one machine (demo and tests).

The provider side runs ``flower-superlink`` (TLS + ``--enable-supernode-auth``) and registers each
organization's public key with ``flwr supernode register``; each organization runs
``flower-supernode`` with its private key and ``org-id``. Every process gets its own
``FLWR_HOME`` under ``work_dir``, so nothing touches ``~/.flwr``. Use as a context manager: every
process started is stopped on exit, whatever happened.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from gt_secure.deploy.certs import TlsFiles, generate_tls
from gt_secure.deploy.keys import NodeKey, generate_node_key
from gt_secure.deploy.processes import ManagedProcess, free_port, tool
from gt_secure.errors import GtSecureError

CONNECTION = "gt-secure"


def toml_value(value: Any) -> str:
    """A run-config value as TOML (strings quoted, booleans lower-case)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


class Federation:
    """SuperLink + SuperNodes + the Flower CLI, all on ``host`` with fresh ports."""

    def __init__(self, work_dir: Path, app_dir: Path, host: str = "127.0.0.1") -> None:
        self.work_dir = work_dir
        self.app_dir = app_dir
        self.host = host
        self.port = free_port(host)
        self.processes: list[ManagedProcess] = []
        self.tls: TlsFiles = generate_tls(work_dir / "tls", hosts=("localhost", host))
        self.cli_home = work_dir / "home" / "cli"
        self._write_connection()

    @property
    def address(self) -> str:
        """``host:port`` of the SuperLink (Fleet, Control and Runtime APIs share it)."""
        return f"{self.host}:{self.port}"

    def env(self, home: str) -> dict[str, str]:
        """Environment for a child: own ``FLWR_HOME``, repository on ``PYTHONPATH``."""
        env = dict(os.environ)
        env["FLWR_HOME"] = str(self.work_dir / "home" / home)
        path = env.get("PYTHONPATH", "")
        env["PYTHONPATH"] = f"{self.app_dir}{os.pathsep}{path}" if path else str(self.app_dir)
        env["FLWR_DISABLE_UPDATE_CHECK"] = "1"
        env["FLWR_TELEMETRY_ENABLED"] = "0"
        return env

    def _write_connection(self) -> None:
        self.cli_home.mkdir(parents=True, exist_ok=True)
        (self.cli_home / "config.toml").write_text(
            f'[superlink]\ndefault = "{CONNECTION}"\n\n[superlink.{CONNECTION}]\n'
            f'address = "{self.address}"\nroot-certificates = "{self.tls.ca_cert}"\n')

    def _start(self, name: str, args: list[str], home: str) -> ManagedProcess:
        proc = ManagedProcess.start(name, args, self.work_dir / "logs" / f"{name}.log",
                                    self.env(home), self.work_dir)
        self.processes.append(proc)
        return proc

    def start_superlink(self, enable_auth: bool = True, timeout: float = 120.0) -> ManagedProcess:
        """Start the SuperLink with TLS (and node authentication); wait until it listens."""
        args = [tool("flower-superlink"), "--ssl-ca-certfile", str(self.tls.ca_cert),
                "--ssl-certfile", str(self.tls.server_cert),
                "--ssl-keyfile", str(self.tls.server_key),
                "--host", self.host, "--port", str(self.port),
                "--disable-runtime-dependency-installation"]
        if enable_auth:
            args.append("--enable-supernode-auth")
        proc = self._start("superlink", args, "superlink")
        proc.wait_listening(self.host, self.port, timeout)
        return proc

    def flwr(self, *args: str, timeout: float = 300.0) -> dict[str, Any]:
        """Run a ``flwr`` CLI command with ``--format json``; its parsed JSON output."""
        cmd = [tool("flwr"), *args, "--format", "json"]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env=self.env("cli"), cwd=self.app_dir, check=False)
        start = done.stdout.find("{")
        if done.returncode != 0 or start < 0:
            raise GtSecureError(f"{' '.join(args[:2])} failed ({done.returncode}): "
                                f"{done.stdout[-1500:]} {done.stderr[-1500:]}")
        result: dict[str, Any] = json.loads(done.stdout[start:])
        return result

    def new_node_key(self, org_id: str) -> NodeKey:
        """Generate an organization's key pair (the private key stays with the organization)."""
        return generate_node_key(self.work_dir / "keys", org_id)

    def register(self, key: NodeKey) -> int:
        """Register a node's public key with the SuperLink; the node ID it was given."""
        out = self.flwr("supernode", "register", str(key.public_key), CONNECTION)
        return int(out["node-id"])

    def start_supernode(self, org_id: str, key: NodeKey) -> ManagedProcess:
        """Start an organization's SuperNode (TLS to the SuperLink, authenticated by ``key``);
        its ledger, keys and released vectors go to ``<work_dir>/state/<org_id>``."""
        state = self.work_dir / "state" / org_id
        node_config = f"org-id={toml_value(org_id)} state-dir={toml_value(str(state))}"
        args = [tool("flower-supernode"), "--superlink", self.address,
                "--root-certificates", str(self.tls.ca_cert),
                "--auth-supernode-private-key", str(key.private_key),
                "--node-config", node_config,
                "--host", self.host, "--port", str(free_port(self.host))]
        return self._start(f"supernode-{org_id}", args, f"node-{org_id}")

    def join(self, org_ids: Sequence[str],
             policy: Any = None) -> dict[str, tuple[int, ManagedProcess]]:
        """For each organization: a new key, registered with the SuperLink, and its SuperNode
        started; ``{org_id: (node_id, process)}``. ``policy`` (an
        :class:`~gt_secure.organization.policy.OrganizationPolicy`) is written as each
        organization's ``policy.toml`` first; without a policy a node refuses every request."""
        from gt_secure.organization.policy import POLICY_FILE, write_policy

        joined: dict[str, tuple[int, ManagedProcess]] = {}
        for org in org_ids:
            if policy is not None:
                write_policy(policy, self.work_dir / "state" / org / POLICY_FILE)
            key = self.new_node_key(org)
            joined[org] = (self.register(key), self.start_supernode(org, key))
        return joined

    def online_nodes(self) -> list[int]:
        """IDs of SuperNodes the SuperLink reports online."""
        out = self.flwr("supernode", "ls", CONNECTION)
        return [int(n["node-id"]) for n in out.get("nodes", []) if n.get("status") == "online"]

    def wait_online(self, count: int, timeout: float) -> list[int]:
        """Wait until ``count`` SuperNodes are online."""
        deadline = time.monotonic() + timeout
        while True:
            nodes = self.online_nodes()
            if len(nodes) >= count or time.monotonic() > deadline:
                return nodes
            time.sleep(2.0)

    def run(self, run_config: Mapping[str, Any]) -> int:
        """Submit the app with ``flwr run <app_dir> <connection>``; the run ID."""
        overrides = " ".join(f"{k}={toml_value(v)}" for k, v in run_config.items())
        out = self.flwr("run", str(self.app_dir), CONNECTION, "--run-config", overrides)
        return int(out["run-id"])

    def wait_run(self, run_id: int, timeout: float) -> dict[str, Any]:
        """Wait until the run is finished; its ``flwr ls`` record."""
        deadline = time.monotonic() + timeout
        while True:
            runs = self.flwr("ls", CONNECTION, "--run-id", str(run_id)).get("runs", [])
            record: dict[str, Any] = runs[0] if runs else {}
            if str(record.get("status", "")).startswith("finished"):
                return record
            if time.monotonic() > deadline:
                raise GtSecureError(f"run {run_id} not finished after {timeout} s: {record}")
            time.sleep(3.0)

    def run_log(self, run_id: int, timeout: float = 60.0) -> str:
        """The ServerApp's log of a run (``flwr log <run_id> --show``)."""
        done = subprocess.run([tool("flwr"), "log", str(run_id), CONNECTION, "--show"],
                              capture_output=True, text=True, timeout=timeout,
                              env=self.env("cli"), cwd=self.app_dir, check=False)
        return done.stdout + done.stderr

    def close(self) -> None:
        """Stop every process started, newest first."""
        for proc in reversed(self.processes):
            proc.stop()

    def __enter__(self) -> Federation:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
