"""Measure every audit control once and print a Markdown table (docs/benchmarks.md, "## Audit").

Run: ``python audits/measure.py`` (one torch thread; several minutes on 2 shared cores). Uses the
same settings as the suite: shipped TinyLM + BPE, 32 Faker public sentences, loss attack,
one-run bound at beta = 0.05, a ledger release of the audit's DP-SGD config (claim ~1.0).

``python audits/measure.py --white-box [SEEDS]``: the white-box gradient-canary audit
(:mod:`gt_secure.audit.gradient_canary`) of the correct DP-SGD and the two planted bugs on seeds
0..SEEDS-1 (default 1; seed 0 is the suite's), one row each, then a summary per setting.
"""

from __future__ import annotations

import copy
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from audit_settings import CLAIMED_EPSILON, DELTA, DP_CANARIES  # noqa: E402

from gt_secure.audit.attacks import LossAttack  # noqa: E402
from gt_secure.audit.canary import audit_model, make_manifest, run_canary_audit  # noqa: E402
from gt_secure.audit.dp_pipeline import (  # noqa: E402
    AUDIT_DP_SGD,
    claimed_epsilon,
    dp_sgd_trainer,
    with_noise,
)
from gt_secure.audit.finetune import finetune_causal_lm, full_finetune_trainer  # noqa: E402
from gt_secure.audit.gradient_canary import (  # noqa: E402
    GRADIENT_AUDIT_DP_SGD,
    audit_org_dp_sgd,
)
from gt_secure.audit.ledger_audit import audit_release, faker_public_texts  # noqa: E402
from gt_secure.audit.results import AuditResult  # noqa: E402
from gt_secure.ledger import Ledger, generate_key  # noqa: E402
from gt_secure.models.loading import base_model_hash, load_base  # noqa: E402
from gt_secure.organization.dp_sgd import DpSgdConfig  # noqa: E402


def _row(name: str, result: AuditResult, seconds: float) -> str:
    tpr = {round(t.target_fpr, 6): t.tpr for t in result.metrics.tpr_at_fpr}[0.01]
    return (f"| {name} | {result.n_canaries} | {result.metrics.auc:.3f} | {tpr:.2f} | "
            f"{result.eps_lb:.2f} | {result.claimed_epsilon:.2f} | {result.verdict} | "
            f"{seconds:.0f} |")


def main() -> None:
    torch.set_num_threads(1)
    base, tok = load_base("tinylm")
    public = faker_public_texts()
    attack = LossAttack(tok)
    print("| control | canaries | AUC | TPR@1%FPR | eps lower bound | claimed eps | verdict "
          "| run time (s) |\n|---|---|---|---|---|---|---|---|")

    def timed(name: str, run: Callable[[], AuditResult]) -> None:
        start = time.perf_counter()
        result = run()
        print(_row(name, result, time.perf_counter() - start), flush=True)

    timed("positive: non-private full fine-tune, 30 epochs", lambda: run_canary_audit(
        full_finetune_trainer(base, tok, epochs=30, lr=5e-3, batch_size=4), [], attack,
        claimed_epsilon=CLAIMED_EPSILON, delta=DELTA, n_canaries=48))
    timed("negative: shipped TinyLM, untrained", lambda: audit_model(
        base, make_manifest(48, 0, 0), attack, claimed_epsilon=CLAIMED_EPSILON, delta=DELTA))
    timed("negative: trainer that drops the canaries", lambda: run_canary_audit(
        lambda texts: finetune_causal_lm(copy.deepcopy(base), [t for t in texts if t in public],
                                         tok, epochs=3, lr=3e-3), public, attack,
        claimed_epsilon=CLAIMED_EPSILON, delta=DELTA, n_canaries=48))

    n = len(public) + len(make_manifest(DP_CANARIES, 0, 0).members)
    key = generate_key()
    ledger = Ledger.create(Path(tempfile.mkdtemp()) / "ledger.jsonl", owner="org-audit",
                           budget={"example": 4.0}, signing_key=key)
    ledger.append_release(org_id="org-audit", release_id="r1", delta=DELTA,
                          mechanisms=[claimed_epsilon(AUDIT_DP_SGD, n)[0]],
                          base_model_hash=base_model_hash("tinylm"), signing_key=key,
                          update_vector_hash="a" * 64, data_fingerprint="b" * 64)

    def ledger_run(trainer: Callable[[DpSgdConfig], object] | None, target: str = "full"
                   ) -> AuditResult:
        report = audit_release(ledger, "r1", public, base=base, tokenizer=tok,
                               trainer=trainer, target=target,  # type: ignore[arg-type]
                               n_canaries=DP_CANARIES)
        return report.results[0]

    huge = 1e6
    timed("DP-SGD (Opacus, full) at the ledger's claim", lambda: ledger_run(None))
    timed("planted bug: noise multiplier 0", lambda: ledger_run(
        lambda c: dp_sgd_trainer(base, tok, with_noise(c, 0.0))))
    timed("planted bug: clipping off (C=1e6, noise for C=1)", lambda: ledger_run(
        lambda c: dp_sgd_trainer(base, tok, with_noise(
            c, (c.noise_multiplier or 0.0) / huge, max_grad_norm=huge))))
    timed("LoRA r=2 (organization adapter), noise 0", lambda: ledger_run(
        lambda c: dp_sgd_trainer(base, tok, with_noise(c, 0.0), target="lora")))


def white_box(seeds: int) -> None:
    """Gradient-canary audit: correct, clipping off, noise off on seeds 0..seeds-1.

    Seed ``s`` drives the canaries, coins and canary sampling and the DP-SGD run (sampling, noise).
    """
    torch.set_num_threads(1)
    print("| setting | seed | canaries | AUC | eps lower bound | claimed eps | verdict "
          "| run time (s) |\n|---|---|---|---|---|---|---|---|")
    summary: dict[str, list[AuditResult]] = {}
    for bug in (None, "clipping_off", "noise_off"):
        for seed in range(seeds):
            cfg = GRADIENT_AUDIT_DP_SGD.model_copy(update={"seed": seed})
            start = time.perf_counter()
            r = audit_org_dp_sgd(cfg=cfg, bug=bug, seed=seed)  # type: ignore[arg-type]
            summary.setdefault(bug or "correct DP-SGD", []).append(r)
            print(f"| {bug or 'correct DP-SGD'} | {seed} | {r.n_canaries} | {r.metrics.auc:.3f} "
                  f"| {r.eps_lb:.2f} | {r.claimed_epsilon:.2f} | {r.verdict} | "
                  f"{time.perf_counter() - start:.1f} |", flush=True)
    for name, rs in summary.items():
        eps, auc = [r.eps_lb for r in rs], [r.metrics.auc for r in rs]
        print(f"{name}: FAIL {sum(r.verdict == 'FAIL' for r in rs)}/{len(rs)}, eps_lb "
              f"{min(eps):.2f}-{max(eps):.2f}, AUC {min(auc):.3f}-{max(auc):.3f}")


if __name__ == "__main__":
    if "--white-box" in sys.argv:
        rest = sys.argv[sys.argv.index("--white-box") + 1:]
        white_box(int(rest[0]) if rest else 1)
    else:
        main()
