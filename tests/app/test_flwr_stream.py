"""``flwr run --stream`` on Flower's simulation engine (real CLI, subprocesses): the console shows
the ServerApp's progress per round and where the results are, and the plain release is in each
organization's ledger as unprotected, readable with the keys beside its policy."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from gt_secure.data.organizations import ORGANIZATIONS
from gt_secure.deploy.processes import ManagedProcess, free_port, port_open, tool
from gt_secure.organization.policy import policy_for, write_policy
from tests.cli.conftest import cli

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # ~50 s on 2 cores: Ray start-up and three plain fine-tunes
def test_flwr_run_stream_shows_rounds_and_results(tmp_path: Path) -> None:
    # Prepare: a simulation SuperLink and a connection to it; each organization accepts plain.
    orgs = tmp_path / "orgs"
    for org in ORGANIZATIONS:
        write_policy(policy_for("plain", 10.0, min_organizations=3), orgs / org / "policy.toml")
    env = {**os.environ, "FLWR_HOME": str(tmp_path / "home"), "PYTHONPATH": str(REPO),
           "GT_SECURE_STATE_DIR": str(orgs), "FLWR_DISABLE_UPDATE_CHECK": "1",
           "FLWR_TELEMETRY_ENABLED": "0", "HF_HUB_OFFLINE": "1"}
    port = free_port()
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "config.toml").write_text(
        f'[superlink]\ndefault = "sim"\n\n[superlink.sim]\naddress = "127.0.0.1:{port}"\n'
        "insecure = true\n")
    link = ManagedProcess.start("superlink", [
        tool("flower-superlink"), "--insecure", "--simulation", "--host", "127.0.0.1", "--port",
        str(port), "--disable-runtime-dependency-installation"], tmp_path / "superlink.log", env,
        tmp_path)
    out = tmp_path / "out"
    try:
        deadline = time.monotonic() + 120
        while not port_open("127.0.0.1", port):
            assert link.alive() and time.monotonic() < deadline, link.log()[-2000:]
            time.sleep(0.5)
        # Execute
        run = subprocess.run(
            [tool("flwr"), "run", ".", "sim", "--federation-config", "num-supernodes=3",
             "--run-config", f"protocol='plain' min-orgs=3 num-rounds=1 local-steps=2 "
             f"num-texts=64 output-dir='{out}'", "--stream"],
            capture_output=True, text=True, env=env, cwd=REPO, timeout=480, check=False)
    finally:
        link.stop()
    # Assert: the console names the results and shows the round.
    console = run.stdout + run.stderr
    assert run.returncode == 0, console[-3000:]
    summary = out / "summary.json"
    assert f"protocol plain (plain aggregation), 1 round(s); results in {summary}" in console
    assert "round 1/1: heard 3 of 3 organizations, accepted 3 (bank, hospital, law), " \
           "refused 0; round " in console
    assert f"finished: 1 round(s); results in {summary}" in console
    assert "FutureWarning" not in console and "Loading weights" not in console  # no noise
    assert json.loads(summary.read_text())["rounds"][0]["accepted"] == ["bank", "hospital", "law"]
    # Assert: the compliance officer reads bank's ledger with the key beside its policy.
    shown = cli("ledger", "show", "--ledger", str(orgs / "bank" / "ledger.jsonl"), "--policy",
                str(orgs / "bank" / "policy.toml"), "--format", "json")
    assert shown.code == 0, shown.err
    data = json.loads(shown.out)
    (entry,) = data["ledgers"][0]["entries"]
    assert data["ledgers"][0]["ok"] is True
    assert (entry["kind"], entry["protocol"]) == ("unprotected_release", "plain")
    assert len(data["unprotected_releases"]) == 1
