"""gt_secure.audit: membership-inference attacks, canary audits, empirical epsilon, reports.

Exports load lazily (PEP 562): ``from gt_secure.audit import X`` imports only X's module, so a
light command such as ``gt-secure audit verify-report`` does not pay for torch and Opacus.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gt_secure.audit.attacks import (
        ATTACKS,
        LossAttack,
        MembershipAttack,
        MinKProbAttack,
        ReferenceAttack,
        ZlibAttack,
        make_attack,
    )
    from gt_secure.audit.canary import (
        CanaryManifest,
        audit_model,
        generate_canaries,
        insert_canaries,
        make_manifest,
        run_canary_audit,
    )
    from gt_secure.audit.data_path import MechanismCheck, audit_org_data_path, run_data_path_audit
    from gt_secure.audit.dp_pipeline import AUDIT_DP_SGD, dp_sgd_hook, dp_sgd_trainer
    from gt_secure.audit.empirical_epsilon import (
        EpsilonBound,
        clopper_pearson_epsilon,
        one_run_audit,
        one_run_epsilon,
    )
    from gt_secure.audit.finetune import TrainFn, finetune_causal_lm, full_finetune_trainer
    from gt_secure.audit.gradient_canary import (
        GradientCanaries,
        audit_org_dp_sgd,
        run_gradient_canary_audit,
    )
    from gt_secure.audit.hooks import DPTrainingHook, load_hook
    from gt_secure.audit.ledger_audit import LedgerClaim, audit_release, ledger_claim
    from gt_secure.audit.metrics import AttackMetrics, attack_metrics, roc_auc, roc_curve
    from gt_secure.audit.report import AuditReport, build_report
    from gt_secure.audit.results import AuditResult
    from gt_secure.audit.tokens import ByteTokenizer

_EXPORTS: dict[str, tuple[str, ...]] = {
    "attacks": ("ATTACKS", "LossAttack", "MembershipAttack", "MinKProbAttack",
                "ReferenceAttack", "ZlibAttack", "make_attack"),
    "canary": ("CanaryManifest", "audit_model", "generate_canaries", "insert_canaries",
               "make_manifest", "run_canary_audit"),
    "data_path": ("MechanismCheck", "audit_org_data_path", "run_data_path_audit"),
    "dp_pipeline": ("AUDIT_DP_SGD", "dp_sgd_hook", "dp_sgd_trainer"),
    "empirical_epsilon": ("EpsilonBound", "clopper_pearson_epsilon", "one_run_audit",
                          "one_run_epsilon"),
    "finetune": ("TrainFn", "finetune_causal_lm", "full_finetune_trainer"),
    "gradient_canary": ("GradientCanaries", "audit_org_dp_sgd", "run_gradient_canary_audit"),
    "hooks": ("DPTrainingHook", "load_hook"),
    "ledger_audit": ("LedgerClaim", "audit_release", "ledger_claim"),
    "metrics": ("AttackMetrics", "attack_metrics", "roc_auc", "roc_curve"),
    "report": ("AuditReport", "build_report"),
    "results": ("AuditResult",),
    "tokens": ("ByteTokenizer",),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str) -> Any:
    """Import the module that defines ``name`` on first use."""
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "ATTACKS",
    "AUDIT_DP_SGD",
    "AttackMetrics",
    "AuditReport",
    "AuditResult",
    "ByteTokenizer",
    "CanaryManifest",
    "DPTrainingHook",
    "EpsilonBound",
    "GradientCanaries",
    "LedgerClaim",
    "LossAttack",
    "MechanismCheck",
    "MembershipAttack",
    "MinKProbAttack",
    "ReferenceAttack",
    "TrainFn",
    "ZlibAttack",
    "attack_metrics",
    "audit_model",
    "audit_org_data_path",
    "audit_org_dp_sgd",
    "audit_release",
    "build_report",
    "clopper_pearson_epsilon",
    "dp_sgd_hook",
    "dp_sgd_trainer",
    "finetune_causal_lm",
    "full_finetune_trainer",
    "generate_canaries",
    "insert_canaries",
    "ledger_claim",
    "load_hook",
    "make_attack",
    "make_manifest",
    "one_run_audit",
    "one_run_epsilon",
    "roc_auc",
    "roc_curve",
    "run_canary_audit",
    "run_data_path_audit",
    "run_gradient_canary_audit",
]
