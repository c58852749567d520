"""Audit a release named in an organization's ledger against the epsilon the ledger claims.

The claim is the release entry's ``epsilon_total`` for the ``example`` unit (DP-SGD), at the
entry's ``delta``. :func:`audit_release` re-runs the recorded mechanism (same sample rate, noise
multiplier, steps and clip norm, through the organization's Opacus DP-SGD) on public texts plus
the auditor's secret canaries, attacks the model and bounds epsilon from below. The audit FAILS
when that lower bound exceeds the ledger's claim: the recorded guarantee is then false.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from faker import Faker
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from gt_secure.audit.attacks import LossAttack, MembershipAttack
from gt_secure.audit.canary import audit_model, insert_canaries, make_manifest
from gt_secure.audit.dp_pipeline import AUDIT_DP_SGD, Target, dp_sgd_trainer
from gt_secure.audit.finetune import TrainFn
from gt_secure.audit.report import AuditReport, build_report
from gt_secure.errors import InvalidFieldError
from gt_secure.ledger.accountant import DpSgdMechanism
from gt_secure.ledger.entry import LedgerEntry
from gt_secure.ledger.store import Ledger
from gt_secure.organization.dp_sgd import DpSgdConfig, plan_dp_sgd


@dataclass(frozen=True)
class LedgerClaim:
    """The example-level release entry under audit and the DP-SGD mechanism it records."""

    entry: LedgerEntry
    mechanism: DpSgdMechanism

    @property
    def epsilon(self) -> float:
        """The claim: the organization's total example-level epsilon after this release."""
        return float(self.entry.epsilon_total or 0.0)

    @property
    def delta(self) -> float:
        return float(self.entry.delta or 0.0)

    def summary(self) -> dict[str, Any]:
        """What the report lists for this entry: ids, epsilon, delta and mechanism parameters."""
        e, m = self.entry, self.mechanism
        return {"release_id": e.release_id, "org_id": e.org_id, "unit": e.unit,
                "epsilon": self.epsilon, "epsilon_spent": e.epsilon_spent, "delta": e.delta,
                "accountant": e.accountant, "sample_rate": m.sample_rate,
                "noise_multiplier": m.noise_multiplier, "steps": m.steps,
                "clip_norm": m.clip_norm, "base_model_hash": e.base_model_hash,
                "timestamp": e.timestamp}


def ledger_claim(ledger: Ledger, release_id: str) -> LedgerClaim:
    """The example-unit (DP-SGD) release entry ``release_id`` of ``ledger`` (verified parse)."""
    found = [e for e in ledger.entries() if e.kind == "release" and e.release_id == release_id
             and e.unit == "example"]
    if len(found) != 1:
        raise InvalidFieldError("release_id", release_id, "the id of exactly one example-level "
                                f"release entry in {ledger.path} (found {len(found)})")
    mechanisms = [m for m in found[0].mechanisms if isinstance(m, DpSgdMechanism)]
    if len(mechanisms) != 1 or len(found[0].mechanisms) != 1:
        raise InvalidFieldError("mechanisms", len(found[0].mechanisms),
                                "exactly one DP-SGD mechanism on the audited entry")
    return LedgerClaim(found[0], mechanisms[0])


def faker_public_texts(n: int = 32, seed: int = 123) -> list[str]:
    """Canary-free public stand-in data: ``n`` seeded Faker sentences of 10 words."""
    fake = Faker("en_US")
    fake.seed_instance(seed)
    return [fake.sentence(nb_words=10) for _ in range(n)]


def audit_config(mechanism: DpSgdMechanism, n_members: int, n_public: int, *,
                 delta: float, base: DpSgdConfig = AUDIT_DP_SGD) -> tuple[DpSgdConfig, int]:
    """A DP-SGD config that runs exactly ``mechanism``, and how many public texts to use.

    Opacus's sample rate is ``1 / ceil(N / B)``; with ``q = 1/k`` the data is cut to
    ``N = k B`` examples (all ``n_members`` canaries plus ``k B - n_members`` public texts).
    """
    k = round(1.0 / mechanism.sample_rate)
    if not math.isclose(1.0 / k, mechanism.sample_rate, rel_tol=1e-9):
        raise InvalidFieldError("sample_rate", mechanism.sample_rate, "1/k for an integer k")
    batch = max(math.ceil(n_members / k), (n_members + n_public) // k, 1)
    use_public = k * batch - n_members
    if use_public > n_public:
        raise InvalidFieldError("public_texts", n_public, f">= {use_public} texts for q=1/{k}")
    cfg = DpSgdConfig.model_validate({
        **base.model_dump(), "noise_multiplier": mechanism.noise_multiplier,
        "target_epsilon": None, "max_grad_norm": mechanism.clip_norm, "steps": mechanism.steps,
        "batch_size": batch, "delta": delta})
    if plan_dp_sgd(cfg, k * batch) != mechanism:
        raise InvalidFieldError("mechanism", mechanism, "reproducible by the audit's DP-SGD")
    return cfg, use_public


def audit_release(
    ledger: Ledger,
    release_id: str,
    public_texts: Sequence[str],
    *,
    base: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    trainer: Callable[[DpSgdConfig], TrainFn] | None = None,
    target: Target = "full",
    attacks: Sequence[MembershipAttack] | None = None,
    n_canaries: int = 64,
    canary_seed: int = 0,
    split_seed: int = 0,
    beta: float = 0.05,
) -> AuditReport:
    """Re-run the release's recorded DP-SGD with canaries; compare with the ledger's claim.

    ``trainer(cfg) -> train`` replaces the organization's DP-SGD (:func:`dp_sgd_trainer`), e.g.
    to plant a bug. The report lists the audited entry (:meth:`LedgerClaim.summary`).
    """
    claim = ledger_claim(ledger, release_id)
    manifest = make_manifest(n_canaries, canary_seed, split_seed)
    cfg, n_public = audit_config(claim.mechanism, len(manifest.members), len(public_texts),
                                 delta=claim.delta)
    build = trainer or (lambda c: dp_sgd_trainer(base, tokenizer, c, target=target))
    texts = insert_canaries(list(public_texts)[:n_public], manifest, seed=split_seed)
    model = build(cfg)(texts)
    results = [audit_model(model, manifest, attack, claimed_epsilon=claim.epsilon,
                           delta=claim.delta, beta=beta, organization=claim.entry.org_id,
                           ledger_release_ids=[release_id])
               for attack in (attacks or [LossAttack(tokenizer)])]
    return build_report(results, [claim.summary()])
