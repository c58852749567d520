"""The organization's release: budget refusal before training, ledger entries, plain path."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gt_secure.data.organizations import org_texts
from gt_secure.errors import BudgetExceededError, InvalidFieldError
from gt_secure.ledger.accountant import compute_epsilon
from gt_secure.ledger.entry import data_fingerprint
from gt_secure.ledger.signing import generate_key, load_trusted_keys, save_keypair
from gt_secure.ledger.store import Ledger
from gt_secure.ledger.verify import verify_ledger
from gt_secure.models.loading import base_model_hash
from gt_secure.organization import release as release_mod
from gt_secure.organization.dp_sgd import DpSgdConfig
from gt_secure.organization.release import PrivacyBudget, ReleaseConfig, prepare_release
from gt_secure.organization.vector_dp import VectorDpConfig
from gt_secure.update.finetune import FinetuneConfig

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
SALT = b"hospital-salt-0123456789"
TEXTS = org_texts("hospital", "train", 16)
FAST_DP = DpSgdConfig(noise_multiplier=1.5, batch_size=8, steps=2, max_length=48)
FAST_PLAIN = FinetuneConfig.model_validate({"steps": 2, "batch_size": 4, "max_length": 48})


def _cfg(example: float = 10.0, organization: float = 10.0, **kw: Any) -> ReleaseConfig:
    kw.setdefault("dp_sgd", FAST_DP)
    kw.setdefault("vector_dp", VectorDpConfig(noise_multiplier=1.0, clip_norm=0.5))
    return ReleaseConfig(budget=PrivacyBudget(example=example, organization=organization), **kw)


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return generate_key()


def _new_ledger(path: Path, key: Ed25519PrivateKey, owner: str = "hospital") -> Ledger:
    return Ledger.create(path, owner=owner, budget={"example": 10.0, "organization": 10.0},
                         signing_key=key)


def test_dp_release_records_one_signed_entry_per_unit(tmp_path: Path,
                                                      key: Ed25519PrivateKey) -> None:
    # Prepare
    ledger = _new_ledger(tmp_path / "ledger.jsonl", key)
    cfg = _cfg()
    # Execute
    rel = prepare_release("hospital", TEXTS, cfg, ledger, key, salt=SALT, release_id="h-r1",
                          round=1)
    # Assert: entries, commitments, and epsilon = the ledger accountant's for the mechanisms
    assert [e.unit for e in rel.entries] == ["example", "organization"]
    assert ledger.entries() == list(rel.entries)
    for entry in rel.entries:
        assert entry.release_id == "h-r1" and entry.round == 1
        assert entry.update_vector_hash == rel.update.content_hash()
        assert entry.base_model_hash == base_model_hash("tinylm")
        assert entry.data_fingerprint == data_fingerprint(TEXTS, SALT)
        assert entry.delta is not None and entry.accountant is not None
        assert entry.epsilon_spent == compute_epsilon(entry.mechanisms, entry.delta,
                                                      entry.accountant)
        assert entry.epsilon_spent == rel.epsilon[entry.unit]  # type: ignore[index]
    example, organization = (e.mechanisms[0] for e in rel.entries)
    assert example.model_dump() == {"kind": "dp_sgd", "unit": "example", "sample_rate": 0.5,
                                    "noise_multiplier": 1.5, "steps": 2, "clip_norm": 1.0}
    assert (organization.noise_multiplier, organization.clip_norm) == (1.0, 0.5)
    _, public = save_keypair(key, tmp_path / "keys", "hospital")
    assert verify_ledger(ledger.path, load_trusted_keys([public])).ok
    assert rel.update.layout.base_model_hash == base_model_hash("tinylm")


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Replace everything that loads or trains a model with a recorder."""
    calls: list[str] = []
    for name in ("load_base", "train_dp_sgd_texts", "finetune_lora", "privatize_update"):
        monkeypatch.setattr(release_mod, name, lambda *a, _n=name, **k: calls.append(_n))
    return calls


def _ledger_with_earlier_release(tmp_path: Path, key: Ed25519PrivateKey) -> Ledger:
    """A ledger holding release h-r0 of hospital (vector noise z=8, organization unit)."""
    ledger = _new_ledger(tmp_path / "ledger.jsonl", key)
    ledger.append_release(
        org_id="hospital", release_id="h-r0", mechanisms=[VectorDpConfig(
            noise_multiplier=8.0).mechanism()], delta=1e-5,
        base_model_hash="a" * 64, update_vector_hash="b" * 64, data_fingerprint="c" * 64,
        signing_key=key)
    return ledger


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_budget_refusal_trains_nothing_and_leaves_ledger_identical(
        tmp_path: Path, key: Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch) -> None:
    # Prepare: an earlier release of 0.6 (organization unit) already in the ledger
    ledger = _ledger_with_earlier_release(tmp_path, key)
    before = _snapshot(tmp_path)
    calls = _spy(monkeypatch)
    vector = VectorDpConfig(noise_multiplier=8.0)
    alone, composed = (compute_epsilon([vector.mechanism()] * k, 1e-5) for k in (1, 2))
    budget = (alone + composed) / 2  # this release fits alone, not composed with h-r0
    cases = [
        _cfg(example=0.5),  # DP-SGD alone would spend more than 0.5
        _cfg(organization=budget, vector_dp=vector),
        _cfg(dp_sgd=None, plain=FAST_PLAIN),  # no example-level DP: epsilon inf > 10
        _cfg(vector_dp=None),  # no organization-level DP with a finite budget
    ]
    for cfg in cases:
        # Execute / Assert
        with pytest.raises(BudgetExceededError, match="epsilon_total must be <="):
            prepare_release("hospital", TEXTS, cfg, ledger, key, salt=SALT, release_id="h-r1")
    assert calls == []
    assert _snapshot(tmp_path) == before


def test_reused_release_id_or_short_salt_is_refused_before_training(
        tmp_path: Path, key: Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = _ledger_with_earlier_release(tmp_path, key)
    calls = _spy(monkeypatch)
    with pytest.raises(InvalidFieldError, match="release_id must be unused"):
        prepare_release("hospital", TEXTS, _cfg(), ledger, key, salt=SALT, release_id="h-r0")
    with pytest.raises(InvalidFieldError, match="salt must be at least 16 bytes"):
        prepare_release("hospital", TEXTS, _cfg(), ledger, key, salt=b"x", release_id="h-r1")
    with pytest.raises(InvalidFieldError, match="org_id must be 1-200 characters"):
        prepare_release("hospital a", TEXTS, _cfg(), ledger, key, salt=SALT, release_id="h-r1")
    insecure = _cfg(vector_dp=VectorDpConfig(noise_multiplier=1.0, secure_mode=False))
    with pytest.raises(InvalidFieldError, match="vector_generator must be None exactly when"):
        prepare_release("hospital", TEXTS, insecure, ledger, key, salt=SALT, release_id="h-r1")
    assert calls == []


def test_plain_release_needs_explicit_infinite_budgets(tmp_path: Path,
                                                       key: Ed25519PrivateKey) -> None:
    ledger = _new_ledger(tmp_path / "ledger.jsonl", key, owner="bank")
    cfg = _cfg(math.inf, math.inf, dp_sgd=None, vector_dp=None, plain=FAST_PLAIN)
    rel = prepare_release("bank", TEXTS, cfg, ledger, key, salt=SALT, release_id="b-r1",
                          protocol="plain")
    assert rel.mechanisms == ()
    assert rel.epsilon == {"example": math.inf, "organization": math.inf}
    assert rel.update.l2_norm() > 0 and len(rel.losses) == 2
    (entry,) = ledger.entries()  # recorded as unprotected: no epsilon, no budget spent
    assert rel.entries == (entry,) and entry.kind == "unprotected_release"
    assert entry.protocol == "plain" and entry.epsilon_spent == 0.0 and entry.unit is None
    assert entry.update_vector_hash == rel.update.content_hash()


def test_dp_unit_needs_a_finite_budget() -> None:
    with pytest.raises(InvalidFieldError, match="budget.example must be finite"):
        _cfg(example=math.inf)
    with pytest.raises(InvalidFieldError, match="budget.organization must be > 0"):
        _cfg(organization=0.0)
