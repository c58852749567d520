"""Run a protocol on Flower's simulation engine with one SuperNode per organization: a
simulation SuperLink started and stopped here, the app submitted with ``flwr run --stream``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gt_secure.data.organizations import ORGANIZATIONS

DEMO_BUDGET = 10.0  # epsilon per protected privacy unit in the demo organizations' policies

BACKEND: dict[str, dict[str, Any]] = {
    "client_resources": {"num_cpus": 1},
    "init_args": {"num_cpus": 2, "logging_level": "ERROR", "log_to_driver": False},
}


def federation_config(num_supernodes: int = len(ORGANIZATIONS)) -> dict[str, Any]:
    """:data:`BACKEND` and ``num_supernodes`` as ``flwr run --federation-config`` keys."""
    config: dict[str, Any] = {"num-supernodes": num_supernodes}
    for section, values in BACKEND.items():
        config.update({f"{section}-{key}".replace("_", "-"): v for key, v in values.items()})
    return config


def run_protocol(
    protocol: str, out: Path, rounds: int = 0, local_steps: int = 32, num_texts: int = 512,
    on_progress: Callable[[str], None] = lambda message: None,
) -> dict[str, Any]:
    """Run ``protocol`` with the real organization and provider steps; returns summary.json.

    Each organization trains on its first ``num_texts`` training texts for ``local_steps`` steps.
    An organization without a policy gets one that accepts exactly ``protocol`` as specified,
    with :data:`DEMO_BUDGET` per protected unit (:func:`write_demo_policies`); one that has a
    policy keeps it, and refuses what it does not accept. ``on_progress`` gets each of the
    ServerApp's progress lines as ``flwr run --stream`` shows them; Flower's files
    (``FLWR_HOME``, the SuperLink's log, the whole stream) go to ``out/.flower``. The
    organizations' state dir is the environment's ``GT_SECURE_STATE_DIR``, inherited by the
    simulation.
    """
    from gt_secure.demo.local_superlink import LocalSimulation, progress_message

    def on_line(line: str) -> None:
        if (message := progress_message(line)) is not None:
            on_progress(message)

    write_demo_policies(protocol)
    overrides = {
        "protocol": protocol,
        "num-rounds": rounds,
        "local-steps": local_steps,
        "num-texts": num_texts,
        "output-dir": str(out / "provider"),
    }
    summary_path = out / "provider" / "summary.json"
    summary_path.unlink(missing_ok=True)  # a previous run's summary is not this run's result
    with LocalSimulation(out / ".flower") as simulation:
        simulation.run(overrides, federation_config(), on_line)
    if not summary_path.exists():
        raise RuntimeError(f"the federation wrote no summary at {summary_path}; see Flower's "
                           f"output in {simulation.run_log}")
    return json.loads(summary_path.read_text())


def write_demo_policies(protocol: str) -> list[Path]:
    """Write each shipped organization's policy into its state dir unless it has one; the
    paths written."""
    from gt_secure.app.policy_mod import policy_path
    from gt_secure.organization.policy import policy_for, write_policy

    policy = policy_for(protocol, budget_epsilon=DEMO_BUDGET)
    written = []
    for org in ORGANIZATIONS:
        path = policy_path(org, {})
        if not path.exists():
            written.append(write_policy(policy, path))
    return written
