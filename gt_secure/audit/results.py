"""The result of one canary audit: attack metrics, empirical vs claimed epsilon, verdict."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gt_secure.audit.empirical_epsilon import EpsilonBound
from gt_secure.audit.metrics import AttackMetrics

Verdict = Literal["PASS", "FAIL"]

RESULT_SINKS: list[Callable[[AuditResult], None]] = []
"""Called with every :class:`AuditResult` built (e.g. the audits/ suite's summary collector)."""


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

    def model_post_init(self, context: Any, /) -> None:
        """Hand the new result to every registered sink."""
        for sink in RESULT_SINKS:
            sink(self)

    @property
    def eps_lb(self) -> float:
        """The empirical lower bound on epsilon."""
        return self.empirical_epsilon.epsilon

    @property
    def claimed_is_finite(self) -> bool:
        """Whether a finite epsilon was claimed (a non-private release claims infinity)."""
        return math.isfinite(self.claimed_epsilon)
