"""No per-organization fingerprint in a masked round: the server's view of a real SecAgg+ round
(Flower simulation engine) holds no value equal to an organization's vector hash.

The production ServerApp's federation runs on a Grid that records every message the server
receives; the organizations (production ClientApp) keep the vectors they sent. Their SHA-256 (the
ledger's plain ``update_vector_hash`` and the wire ``content-hash``, hex and raw) must appear
nowhere in what the server received nor in what it wrote; the ledger entries that did travel
carry a commitment that only the organization's opening key opens.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flwr.app import Context, Message, RecordDict
from flwr.serverapp import Grid, ServerApp
from flwr.simulation import run_simulation

from gt_secure.aggregation.secagg_round import DelegatingGrid
from gt_secure.app.client_app import make_client_app
from gt_secure.app.config import AppConfig
from gt_secure.app.roles import release_id_of
from gt_secure.app.server_app import run_federation
from gt_secure.data.organizations import ORGANIZATIONS
from gt_secure.organization.commitment import opens
from gt_secure.organization.policy import policy_for, write_policy
from gt_secure.update import UpdateVector

REPO = Path(__file__).resolve().parents[2]
BACKEND = {"client_resources": {"num_cpus": 1},
           "init_args": {"num_cpus": 2, "logging_level": "ERROR"}}


@pytest.fixture(autouse=True)
def _ray_workers_import_repo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("GT_SECURE_STATE_DIR", str(tmp_path / "orgs"))


def _values(content: RecordDict) -> Iterable[str]:
    """Every value of a message's content as text (bytes and arrays as hex)."""
    for record in content.config_records.values():
        for key, value in record.items():
            yield str(key)
            for item in value if isinstance(value, list) else [value]:
                yield item.hex() if isinstance(item, bytes) else str(item)
    for array_record in content.array_records.values():
        for array in array_record.values():
            yield array.numpy().tobytes().hex()


class RecordingGrid(DelegatingGrid):
    """Delegating Grid that keeps, as text, every value of every message the server receives."""

    def __init__(self, inner: Grid) -> None:
        super().__init__(inner)
        self.seen: list[str] = []

    def _record(self, replies: Iterable[Message]) -> list[Message]:
        kept = list(replies)
        for reply in kept:
            if not reply.has_error():
                self.seen.extend(_values(reply.content))
        return kept

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return self._record(self.inner.pull_messages(message_ids))

    def send_and_receive(self, messages: Iterable[Message], *,
                         timeout: float | None = None) -> Iterable[Message]:
        return self._record(self.inner.send_and_receive(messages, timeout=timeout))


def recording_server_app(overrides: dict[str, Any], view: Path) -> ServerApp:
    """The production federation on a recording Grid; the view is written to ``view``."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        recording = RecordingGrid(grid)
        cfg = AppConfig.from_run_config(context.run_config, overrides).resolve()
        try:
            run_federation(recording, context, cfg)
        finally:
            view.write_text(json.dumps(recording.seen))

    return app


def test_secagg_round_sends_the_server_no_hash_of_an_individual_vector(tmp_path: Path) -> None:
    # Prepare: three organizations that accept dp-sgd-secagg; one SecAgg+ round.
    policy = policy_for("dp-sgd-secagg", budget_epsilon=8.0)
    for org in ORGANIZATIONS:
        write_policy(policy, tmp_path / "orgs" / org / "policy.toml")
    out, view = tmp_path / "out", tmp_path / "server_view.json"
    overrides = {"protocol": "dp-sgd-secagg", "num-rounds": 1, "local-steps": 2,
                 "num-texts": 64, "output-dir": str(out), "round-timeout": 300.0}

    # Execute
    run_simulation(recording_server_app(overrides, view), make_client_app(overrides),
                   num_supernodes=len(ORGANIZATIONS), backend_config=BACKEND)

    # Assert: the round aggregated all three (the view is not empty for a trivial reason).
    summary = json.loads((out / "summary.json").read_text())
    (record,) = summary["rounds"]
    assert record["accepted"] == sorted(ORGANIZATIONS)
    seen = json.loads(view.read_text())
    written = "\n".join(p.read_text(errors="replace") for p in out.rglob("*.json"))
    haystack = "\n".join(seen) + "\n" + written
    entries = [json.loads(v) for v in seen if v.startswith('[{"') and '"release_id"' in v]
    assert len(entries) == len(ORGANIZATIONS)  # each organization's ledger entry travelled
    for org in ORGANIZATIONS:
        release_id = release_id_of(org, summary["run_id"], 1)
        kept = tmp_path / "orgs" / org / "releases"
        update = UpdateVector.load(kept / f"{release_id}.safetensors")
        wire = hashlib.sha256(np.ascontiguousarray(update.flat, np.float32).tobytes())
        # Assert: no form of the vector's hash reached the server or its outputs.
        for digest in (update.content_hash(), wire.hexdigest()):
            assert digest == digest.lower() and len(digest) == 64
            assert digest not in haystack, (org, digest)
            assert bytes.fromhex(digest).hex() not in haystack
        # Assert: the organization keeps the plain hash; its travelling entry holds a
        # commitment that its opening key opens to the vector it sent (and to nothing else).
        local = json.loads((kept / f"{release_id}.json").read_text())
        assert local["update_vector_hash"] == update.content_hash()
        (entry,) = [e for entries_of in entries for e in entries_of
                    if e["release_id"] == release_id]
        key = bytes.fromhex(local["commitment_key"])
        assert opens(entry["update_vector_hash"], update, key)
        assert not opens(entry["update_vector_hash"], update.replace(update.flat * 0.5), key)
