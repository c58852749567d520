"""The demo's own simulation SuperLink (gt_secure.demo.local_superlink), with real Flower processes:
the app it submits matches the repository's, and nothing it started outlives it, whether the
command finishes, is interrupted (Ctrl-C) or terminated (SIGTERM)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from gt_secure.demo.local_superlink import LocalSimulation, progress_message, write_app_dir
from gt_secure.deploy.processes import port_open
from tests.cli.conftest import ROOT, cli


def processes_with(marker: str) -> list[str]:
    """Command lines of the live processes whose environment contains ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker.encode() in (entry / "environ").read_bytes():
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue
    return found


def wait_for(predicate: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    return False


def test_generated_app_matches_the_repository(tmp_path: Path) -> None:
    from flwr.cli.build import build_fab_from_disk

    app = write_app_dir(tmp_path / "app")
    ours = tomllib.loads((app / "pyproject.toml").read_text())["tool"]["flwr"]["app"]
    repo = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["flwr"]["app"]
    assert ours["config"] == repo["config"]  # same run-config keys and defaults as `flwr run .`
    assert ours["components"] == repo["components"]
    assert build_fab_from_disk(app)  # Flower accepts it as an app


def test_progress_lines_are_the_server_apps_only() -> None:
    info, warn = "\x1b[92mINFO \x1b[0m:      ", "\x1b[93mWARNING \x1b[0m:   "
    line = "round 1/2: heard 3 of 3 organizations, accepted 3 (bank, hospital, law), refused 0"
    assert progress_message(info + line) == line
    assert progress_message(warn + "round 2/2: heard 3 of 3") == "round 2/2: heard 3 of 3"
    assert progress_message(info + "gt-secure run 7 finished: 1 round(s)") is not None
    assert progress_message(warn + "Since flwr 1.32, default simulated SuperNodes changed") is None
    assert progress_message("Successfully started run 7") is None


def test_superlink_is_stopped_on_exit_and_on_error(tmp_path: Path) -> None:
    home = f"FLWR_HOME={tmp_path / 'sim' / 'home'}\0"
    with pytest.raises(RuntimeError, match="boom"), LocalSimulation(tmp_path / "sim") as sim:
        assert port_open(sim.host, sim.port)
        assert processes_with(home)  # the positive control: the marker finds the SuperLink
        raise RuntimeError("boom")
    assert wait_for(lambda: not processes_with(home), 5), processes_with(home)
    assert not port_open(sim.host, sim.port)


# Ctrl-C mid-federation (Ray's processes up), SIGTERM as soon as the SuperLink runs
@pytest.mark.parametrize(("sig", "running"), [
    pytest.param(signal.SIGINT, "raylet", marks=pytest.mark.slow),  # ~30 s: Ray start-up
    (signal.SIGTERM, "flower-superlink")])
def test_interrupted_command_leaves_no_process(tmp_path: Path, sig: signal.Signals,
                                               running: str) -> None:
    # Prepare: the real CLI in its own process group (as a terminal runs it)
    out = tmp_path / "out"
    home = f"FLWR_HOME={out / '.flower' / 'home'}\0"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gt_secure.cli.main", "protocol", "run", "plain", "--rounds", "1",
         "--local-steps", "1", "--num-texts", "8", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
        start_new_session=True)
    try:
        # Execute: Ctrl-C (SIGINT to the group) or SIGTERM to the command, once it runs Flower
        assert wait_for(lambda: any(running in c for c in processes_with(home)), 180), \
            proc.communicate(timeout=60)
        if sig == signal.SIGINT:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        _, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    # Assert: the command says it was interrupted and nothing it started is left
    assert proc.returncode == 130, err
    assert wait_for(lambda: not processes_with(home), 10), processes_with(home)


@pytest.mark.slow  # ~1 min on 2 cores: Ray start-up, three DP-SGD runs, translation and audit
def test_demo_prints_progress_without_deprecation_and_leaves_no_process(tmp_path: Path) -> None:
    run = cli("demo", "--local-steps", "2", "--num-texts", "64", "--out", str(tmp_path),
              timeout=600)
    console = run.out + run.err
    assert run.code == 0, console[-3000:]
    flat = "".join(console.split())  # rich wraps at 80 columns, inside long paths too

    def shows(text: str) -> bool:
        return "".join(text.split()) in flat

    assert shows(f"results in {tmp_path / 'provider' / 'summary.json'}"), console
    assert shows("round 1/1: heard 3 of 3 organizations, accepted 3 (bank, hospital, law)")
    assert shows("outputs in")
    assert "deprecat" not in console.lower()  # neither run_simulation's notice nor others
    assert not processes_with(f"FLWR_HOME={tmp_path / '.flower' / 'home'}\0")
    assert not processes_with(f"GT_SECURE_STATE_DIR={tmp_path / 'organizations'}\0")
