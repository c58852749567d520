"""How strong an audit was: the largest epsilon its canaries could have shown, and what PASS means.

The one-run bound (Steinke, Nasr & Jagielski 2023) is capped by the number of canaries: even a
model that ranks every canary right only rejects epsilons up to a ceiling fixed by ``m``,
``delta`` and ``beta``. A claim above that ceiling cannot FAIL, whatever the model leaks.
"""

from __future__ import annotations

from typing import Any

from gt_secure.audit.empirical_epsilon import one_run_audit
from gt_secure.audit.results import AuditResult

PASS_MEANS = ("PASS means no evidence of a violation: the empirical lower bound did not exceed "
              "the claim. It is not a proof that the claim holds.")


def largest_detectable_epsilon(result: AuditResult) -> float:
    """The one-run bound were every canary ranked right (the audit's own guess grid)."""
    labels = result.is_member
    bound = result.empirical_epsilon
    return one_run_audit([float(y) for y in labels], labels, delta=bound.delta,
                         beta=bound.beta).epsilon


def strength(result: AuditResult) -> dict[str, Any]:
    """What weighs a PASS: canaries, ceiling, whether the claim was within reach."""
    ceiling = largest_detectable_epsilon(result)
    return {"n_canaries": result.n_canaries, "largest_detectable_epsilon": ceiling,
            "claim_within_reach": result.claimed_epsilon < ceiling}
