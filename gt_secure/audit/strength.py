"""How strong an audit was: the largest epsilon its canaries could have shown, its positive
control, and what its verdict means.

The one-run bound (Steinke, Nasr & Jagielski 2023) is capped by the number of canaries: even a
model that ranks every canary right only rejects epsilons up to a ceiling fixed by ``m``,
``delta`` and ``beta``. A claim above that ceiling cannot FAIL, whatever the model leaks.

The positive control (run by ``gt-secure audit run``) scores the same canaries with the same
attack against the same claim on a non-private copy of the target (:data:`CONTROL_TRAINING`:
the audits/ suite's memorising fine-tune). It *detects* when its verdict is FAIL. An attack
whose control does not detect could not have shown a violation of this claim, so a PASS from it
is empty: the audit is INCONCLUSIVE.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from gt_secure.audit.empirical_epsilon import one_run_audit
from gt_secure.audit.results import AuditResult

ReportVerdict = Literal["PASS", "FAIL", "INCONCLUSIVE"]

PASS_MEANS = ("PASS means no evidence of a violation: the empirical lower bound did not exceed "
              "the claim. It is not a proof that the claim holds.")
INCONCLUSIVE_MEANS = ("INCONCLUSIVE means the positive control (the same attack and canaries on "
                      "a non-private copy of the target) did not exceed the claim either: this "
                      "audit could not have shown a violation, so its PASS would be empty.")
FAIL_MEANS = "FAIL means the empirical lower bound exceeds the claim: the claim is violated."
MEANS: dict[str, str] = {"PASS": PASS_MEANS, "FAIL": FAIL_MEANS,
                         "INCONCLUSIVE": INCONCLUSIVE_MEANS}
CONTROL_TRAINING: dict[str, Any] = {"epochs": 30, "lr": 5e-3, "batch_size": 4, "seed": 0}
"""Full fine-tuning without DP that memorises its members (audits/conftest.py's control)."""
CONTROL_ORGANIZATION = "positive control"


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


def control_of(result: AuditResult, controls: Sequence[AuditResult]) -> AuditResult | None:
    """The positive control run with ``result``'s attack, if any."""
    return next((c for c in controls if c.attack == result.attack), None)


def detected(control: AuditResult | None) -> bool:
    """Whether a positive control showed a violation of the claim (its verdict is FAIL)."""
    return control is not None and control.verdict == "FAIL"


def overall_verdict(results: Sequence[AuditResult],
                    controls: Sequence[AuditResult] | None) -> ReportVerdict:
    """FAIL if any result fails; else INCONCLUSIVE when controls ran and some attack's control
    did not detect; else PASS (``controls`` None: no control was run, PASS as measured)."""
    if any(r.verdict == "FAIL" for r in results):
        return "FAIL"
    if controls is not None and not all(detected(control_of(r, controls)) for r in results):
        return "INCONCLUSIVE"
    return "PASS"


def control_summary(controls: Sequence[AuditResult]) -> list[dict[str, Any]]:
    """One row per control: attack, AUC, lower bound, claim, whether it detected."""
    return [{"attack": c.attack, "auc": c.metrics.auc, "eps_lb": c.eps_lb,
             "claimed_epsilon": c.claimed_epsilon, "detected": detected(c)} for c in controls]
