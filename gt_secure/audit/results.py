"""The result of one canary audit: attack metrics, empirical vs claimed epsilon, verdict."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gt_secure.audit.empirical_epsilon import EpsilonBound
from gt_secure.audit.metrics import AttackMetrics

Verdict = Literal["PASS", "FAIL"]


def verdict(empirical_epsilon: float, claimed_epsilon: float) -> Verdict:
    """PASS when the empirical lower bound does not exceed the claimed epsilon."""
    return "PASS" if empirical_epsilon <= claimed_epsilon else "FAIL"


class AuditResult(BaseModel):
    """Outcome of a canary audit of one model (one organization, one attack)."""

    model_config = ConfigDict(frozen=True)
    organization: str
    attack: str
    metrics: AttackMetrics
    empirical_epsilon: EpsilonBound
    claimed_epsilon: float
    delta: float
    verdict: Verdict
    canary_seed: int
    split_seed: int
    n_canaries: int
    ledger_release_ids: list[str] = Field(default_factory=list)
    scores: list[float]
    is_member: list[bool]

    @property
    def eps_lb(self) -> float:
        """The empirical lower bound on epsilon."""
        return self.empirical_epsilon.epsilon

    @property
    def claimed_is_finite(self) -> bool:
        """Whether a finite epsilon was claimed (a non-private release claims infinity)."""
        return math.isfinite(self.claimed_epsilon)
