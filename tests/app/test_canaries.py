"""The canary workflow: the auditor's public canaries join an organization's real DP-SGD data,
and the auditor scores the released adapter with the secret part."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gt_secure.app.config import AppConfig
from gt_secure.app.roles import organization_step, release_config
from gt_secure.audit.canary import CanaryManifest
from gt_secure.data.organizations import org_texts
from gt_secure.errors import InvalidFieldError
from gt_secure.ledger.accountant import DpSgdMechanism
from gt_secure.ledger.entry import data_fingerprint
from gt_secure.ledger.store import Ledger
from gt_secure.organization.canaries import read_public_canaries, with_canaries
from gt_secure.organization.dp_sgd import plan_dp_sgd
from tests.cli.conftest import cli

N_TEXTS = 16


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("auditor")
    run = cli("audit", "canaries", "--n", "8", "--split-seed", "3", "--out", str(out))
    assert run.code == 0 and "PUBLIC" in run.out and "SECRET" in run.out, run.err
    return out


def test_public_and_secret_parts_are_separate(parts: Path) -> None:
    secret = CanaryManifest.load(parts / "canaries_secret.json")
    public = read_public_canaries(parts / "canaries_public.txt")
    assert public == secret.members and 0 < len(public) < len(secret.canaries)
    held_out = set(secret.canaries) - set(public)
    assert held_out and not held_out & set((parts / "canaries_public.txt").read_text().split("\n"))
    assert "is_member" not in (parts / "canaries_public.txt").read_text()


def test_organization_trains_on_its_texts_plus_the_canaries(parts: Path, tmp_path: Path) -> None:
    cfg = AppConfig(protocol="dp-sgd-secagg", local_steps=1, num_texts=N_TEXTS).resolve()
    canaries = read_public_canaries(parts / "canaries_public.txt")
    state = tmp_path / "bank"
    node = {"state-dir": str(state), "canaries": str(parts / "canaries_public.txt")}
    organization_step(cfg, node, "bank", 1, 1, np.zeros(2048, np.float32), (50.0, 50.0))
    [entry] = [e for e in Ledger(state / "ledger.jsonl").entries() if e.unit == "example"]
    texts = with_canaries(org_texts("bank", "train", N_TEXTS), canaries, seed=1)
    assert entry.data_fingerprint == data_fingerprint(texts, (state / "salt").read_bytes())
    dp_sgd = release_config(cfg, (50.0, 50.0), 1).dp_sgd
    [mechanism] = [m for m in entry.mechanisms if isinstance(m, DpSgdMechanism)]
    assert mechanism == plan_dp_sgd(dp_sgd, N_TEXTS + len(canaries))  # canaries count in N


def test_a_missing_canary_file_is_refused_naming_the_option(tmp_path: Path) -> None:
    cfg = AppConfig(protocol="dp-sgd-secagg", local_steps=1, num_texts=N_TEXTS).resolve()
    node = {"state-dir": str(tmp_path / "bank"), "canaries": str(tmp_path / "nope.txt")}
    with pytest.raises(InvalidFieldError, match="canaries must be an existing public canary"):
        organization_step(cfg, node, "bank", 1, 1, np.zeros(2048, np.float32), (50.0, 50.0))


@pytest.mark.slow
def test_canaries_end_to_end_in_the_flower_simulation(parts: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Bank inserts the public part in a real Flower simulation round; the auditor then audits
    the adapter bank received, with the secret part and the claim of bank's verified ledger."""
    from tests.app.test_simulation import REPO, simulate

    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("GT_SECURE_STATE_DIR", str(tmp_path / "orgs"))
    bank = tmp_path / "orgs" / "bank"
    bank.mkdir(parents=True)
    (bank / "canaries.txt").write_bytes((parts / "canaries_public.txt").read_bytes())
    summary = simulate(tmp_path, {"protocol": "dp-sgd-secagg", "num-rounds": 1}, {})
    run_id = summary["run_id"]
    release = f"bank-{run_id}-1"
    [entry] = [e for e in Ledger(bank / "ledger.jsonl").entries() if e.unit == "example"]
    canaries = read_public_canaries(parts / "canaries_public.txt")
    texts = with_canaries(org_texts("bank", "train", 64), canaries, seed=1)
    assert entry.release_id == release
    assert entry.data_fingerprint == data_fingerprint(texts, (bank / "salt").read_bytes())
    adapter = bank / "adapters" / f"{run_id}-round1"
    run = cli("audit", "run", "--target", str(adapter), "--manifest",
              str(parts / "canaries_secret.json"), "--ledger", str(bank / "ledger.jsonl"),
              "--release-id", release, "--trusted-keys", str(bank / "bank.pub.pem"),
              "--attack", "loss", "--out", str(tmp_path / "audit"))
    assert run.code in (0, 1), run.err  # a verdict
    report = json.loads((tmp_path / "audit" / "audit.json").read_text())
    assert report["audited"].startswith("the released artifact: the adapter delivered")
    assert report["ledger_verification"].startswith("verified: OK")
    assert report["results"][0]["organization"] == "bank"
    assert report["results"][0]["n_canaries"] == 8
