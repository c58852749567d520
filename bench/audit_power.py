"""Audit power: each planted/unplanted DP-SGD bug x each audit -> detected runs, time, bounds.

Run: ``python bench/audit_power.py [--audits ...] [--scale S] [--out FILE]`` (FILE defaults to
docs/results/audit_power.json; one torch thread; seeds 0..N-1 per cell, N in ``DEFAULT_RUNS``),
then
``python bench/audit_power.py --tightness-epsilon 8`` replaces the white-box tightness rows at
claim 8: the Gaussian-DP one-run bound of full-batch DP-SGD with 8000 Dirac canaries
(:func:`gt_secure.audit.tightness.audit_tightness`), claim from the RDP and from the PRV
accountant, median/min/max over seeds, its positive control and ceiling (add
``--tightness-data-path`` to re-measure the data-path audit's row at that claim too), and
``python bench/audit_power.py --tightness-epsilon 8 --tightness-subsampled rdp prv
--tightness-runs 3`` replaces the Poisson-subsampled rows (q = 1/2, T = 64): the per-step
white-box audit with 16000 canary records and the f-DP one-run bound with the composed subsampled
Gaussian's curve (:func:`gt_secure.audit.tightness.audit_subsampled_tightness`), its noise-off
positive control and ceiling. Audits:

* ``data_path_canary``: rare-token canary records through the real data path
  (:func:`gt_secure.audit.data_path.audit_org_data_path`, 256 canaries, N = 256, q = 1/8);
* ``gradient_canary``: white-box Dirac gradient canaries inserted at the *recorded* rate
  (:func:`gt_secure.audit.gradient_canary.audit_org_dp_sgd`, 128 canaries);
* ``loss`` (black-box): Faker canary records in 64 texts, full DP fine-tune (Adam), loss attack
  (:func:`gt_secure.audit.canary.run_canary_audit`, 32 canaries).

Detected = verdict FAIL. The claim is always the correct configuration's ledger epsilon (~1).
Also written: power per audit (positive control = ``noise_off``, the one-run ceiling, TPR at
0.1% FPR with its Clopper-Pearson interval on the correct pipeline and the positive control) and
a tightness row per audit (largest lower bound on the correct pipeline vs its claim).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from statistics import median
from typing import Any

import torch

from gt_secure.audit.canary import make_manifest, run_canary_audit
from gt_secure.audit.data_path import DATA_PATH_DP_SGD, audit_org_data_path
from gt_secure.audit.dp_pipeline import AUDIT_DP_SGD, claimed_epsilon, dp_sgd_trainer
from gt_secure.audit.fdp_one_run import fdp_one_run_audit
from gt_secure.audit.gradient_canary import (
    GRADIENT_AUDIT_DP_SGD,
    PLANTED_BUGS,
    PlantedBug,
    audit_org_dp_sgd,
    plant_bug,
)
from gt_secure.audit.results import AuditResult
from gt_secure.audit.strength import largest_detectable_epsilon
from gt_secure.audit.subsampled_curve import SubsampledGaussianFamily
from gt_secure.audit.tightness import (
    audit_subsampled_tightness,
    audit_tightness,
    fraction_guess_grid,
    gdp_ceiling,
)
from gt_secure.ledger.accountant import AccountantName

BUGS: tuple[str, ...] = ("none", *PLANTED_BUGS)
DEFAULT_RUNS = {"data_path_canary": {"none": 20, "steps_x2": 10, "steps_x4": 5,
                                     "sample_rate_x4": 5, "noise_off": 3, "clipping_off": 3},
                "gradient_canary": dict.fromkeys(BUGS, 5),
                "loss": dict.fromkeys(BUGS, 3)}


def _bug(name: str) -> PlantedBug | None:
    return None if name == "none" else name  # type: ignore[return-value]


def _data_path(bug: str, seed: int) -> AuditResult:
    return audit_org_data_path(bug=_bug(bug), seed=seed)[0]


def _gradient(bug: str, seed: int) -> AuditResult:
    cfg = GRADIENT_AUDIT_DP_SGD.model_copy(update={"seed": seed})
    return audit_org_dp_sgd(cfg=cfg, bug=_bug(bug), seed=seed)


def _loss_audit() -> Callable[[str, int], AuditResult]:
    from gt_secure.audit.attacks import LossAttack
    from gt_secure.audit.ledger_audit import faker_public_texts
    from gt_secure.models.loading import load_base

    base, tok = load_base("tinylm")
    n_canaries, total = 32, 64  # N = 64 texts at B = 16: ceil(N / B) = 4, sample_rate_x4 exact

    def run(bug: str, seed: int) -> AuditResult:
        members = len(make_manifest(n_canaries, seed, seed).members)
        public = faker_public_texts(total)[: total - members]
        cfg = AUDIT_DP_SGD.model_copy(update={"seed": seed})
        trainer = dp_sgd_trainer(base, tok, plant_bug(cfg, total, _bug(bug)))
        return run_canary_audit(trainer, public, LossAttack(tok),
                                claimed_epsilon=claimed_epsilon(cfg, total)[1],
                                delta=cfg.delta, n_canaries=n_canaries, canary_seed=seed,
                                split_seed=seed)

    return run


def _tpr(result: AuditResult) -> dict[str, Any]:
    t = next(t for t in result.metrics.tpr_at_fpr if abs(t.target_fpr - 0.001) < 1e-12)
    return {"tpr": t.tpr, "tpr_ci95": list(t.tpr_ci), "fpr": t.fpr}


def _white_box_tightness(epsilon: float, accountant: AccountantName,
                         runs: int) -> dict[str, Any]:
    """The GDP white-box audit on the correct full-batch pipeline, seeds 0..runs-1."""
    results, eps_delta, seconds = [], [], []
    for seed in range(runs):
        start = time.perf_counter()
        r, ed = audit_tightness(epsilon, accountant=accountant, seed=seed)
        seconds.append(time.perf_counter() - start)
        results.append(r)
        eps_delta.append(ed.epsilon)
    first, gdp = results[0], [r.eps_lb for r in results]
    # Opacus's PRV accountant overflows at z = 0: the positive control runs under the RDP claim.
    control = audit_tightness(epsilon, accountant="rdp", bug="noise_off")[0]
    return {"audit": f"gradient_canary_gdp_full_batch ({accountant} claim)",
            "claimed_epsilon": round(first.claimed_epsilon, 4), "lower_bound": median(gdp),
            "lower_bound_min": min(gdp), "lower_bound_max": max(gdp), "runs": runs,
            "lower_bounds": [round(b, 3) for b in gdp], "mu_seed0": first.empirical_epsilon.mu,
            "eps_delta_one_run_same_scores": [round(b, 3) for b in eps_delta],
            "canaries": first.n_canaries, "seconds": round(median(seconds), 1),
            "largest_detectable_epsilon": round(gdp_ceiling(first), 3),
            "positive_control_noise_off": {"eps_lb": control.eps_lb, **_tpr(control)},
            "correct_seed0": {"eps_lb": first.eps_lb, "auc": first.metrics.auc, **_tpr(first)}}


def _data_path_tightness(epsilon: float, runs: int) -> dict[str, Any]:
    """The data-path audit's largest one-run bound on the correct pipeline claimed at epsilon."""
    cfg = DATA_PATH_DP_SGD.model_copy(update={"target_epsilon": epsilon})
    results = [audit_org_data_path(cfg=cfg, seed=seed)[0] for seed in range(runs)]
    return {"audit": "data_path_canary", "claimed_epsilon": round(results[0].claimed_epsilon, 4),
            "lower_bound": max(r.eps_lb for r in results), "runs": runs}


def append_tightness(out: Path, epsilon: float, runs: int, data_path: bool = False) -> None:
    """Replace the white-box tightness rows at claim ``epsilon`` by a fresh measurement.

    Other rows are kept; ``data_path`` also replaces the data-path row (3 seeds, as before).
    """
    found = json.loads(out.read_text())
    gdp = "gradient_canary_gdp"
    audits = (gdp, "data_path_canary") if data_path else (gdp,)
    kept = [t for t in found["tightness"] if not (t["audit"].startswith(audits)
                                                   and abs(t["claimed_epsilon"] - epsilon) < 0.1)]
    if data_path:
        kept.append(_data_path_tightness(epsilon, 3))
    accountants: tuple[AccountantName, ...] = ("rdp", "prv")
    for accountant in accountants:
        row = _white_box_tightness(epsilon, accountant, runs)
        print(json.dumps(row), file=sys.stderr, flush=True)
        kept.append(row)
    found["tightness"] = kept
    out.write_text(json.dumps(found, indent=1) + "\n")


def _subsampled_tightness(epsilon: float, accountant: AccountantName, runs: int,
                          n_canaries: int) -> dict[str, Any]:
    """The per-step f-DP audit on the correct Poisson-subsampled pipeline, seeds 0..runs-1."""
    results, extras, seconds = [], [], []
    for seed in range(runs):
        start = time.perf_counter()
        r, extra = audit_subsampled_tightness(epsilon, accountant=accountant, seed=seed,
                                              n_canaries=n_canaries)
        seconds.append(time.perf_counter() - start)
        results.append(r)
        extras.append(extra)
        print(json.dumps({"seed": seed, "eps_lb": r.eps_lb, "claim": r.claimed_epsilon,
                          "seconds": seconds[-1], **extra}), file=sys.stderr, flush=True)
    first, bounds = results[0], [r.eps_lb for r in results]
    control = audit_subsampled_tightness(epsilon, accountant="rdp", noise_off=True,
                                         n_canaries=n_canaries)[0]
    family = SubsampledGaussianFamily(extras[0]["sample_rate"], int(extras[0]["steps"]))
    ceiling = fdp_one_run_audit([float(y) for y in first.is_member], first.is_member, family,
                                delta=first.delta, guess_grid=fraction_guess_grid(n_canaries),
                                points=3).epsilon
    return {"audit": f"step_canary_fdp_subsampled ({accountant} claim)",
            "claimed_epsilon": round(first.claimed_epsilon, 4), "lower_bound": median(bounds),
            "lower_bound_min": min(bounds), "lower_bound_max": max(bounds), "runs": runs,
            "lower_bounds": [round(b, 3) for b in bounds],
            "true_epsilon_pld": round(extras[0]["true_epsilon_pld"], 3),
            **{k: extras[0][k] for k in ("sample_rate", "steps", "noise_multiplier")},
            "strength_seed0": first.empirical_epsilon.mu,
            "eps_delta_one_run_same_scores": [round(e["eps_delta_one_run"], 3) for e in extras],
            "canaries": n_canaries, "seconds": round(median(seconds), 1),
            "largest_detectable_epsilon": round(ceiling, 3),
            "positive_control_noise_off": {"eps_lb": control.eps_lb, **_tpr(control)},
            "correct_seed0": {"eps_lb": first.eps_lb, "auc": first.metrics.auc, **_tpr(first)}}


def append_subsampled_tightness(out: Path, epsilon: float, runs: int,
                                accountants: list[AccountantName], n_canaries: int) -> None:
    """Replace the subsampled per-step tightness rows at claim ``epsilon`` (others kept)."""
    for accountant in accountants:
        row = _subsampled_tightness(epsilon, accountant, runs, n_canaries)
        print(json.dumps(row), file=sys.stderr, flush=True)
        found = json.loads(out.read_text())
        found["tightness"] = [t for t in found["tightness"] if not (
            t["audit"] == row["audit"] and abs(t["claimed_epsilon"] - epsilon) < 0.1)] + [row]
        out.write_text(json.dumps(found, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audits", nargs="+", default=list(DEFAULT_RUNS))
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every cell's runs")
    parser.add_argument("--out", type=Path, default=Path("docs/results/audit_power.json"))
    parser.add_argument("--tightness-epsilon", type=float,
                        help="only append tightness rows at this claim (needs --out written)")
    parser.add_argument("--tightness-runs", type=int, default=10)
    parser.add_argument("--tightness-data-path", action="store_true",
                        help="also re-measure the data-path audit's tightness row (3 seeds)")
    parser.add_argument("--tightness-subsampled", nargs="+", choices=["rdp", "prv"],
                        help="with --tightness-epsilon: only the Poisson-subsampled per-step "
                        "f-DP rows, claims from these accountants")
    parser.add_argument("--tightness-canaries", type=int, default=16000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.tightness_epsilon is not None and args.tightness_subsampled:
        append_subsampled_tightness(args.out, args.tightness_epsilon, args.tightness_runs,
                                    args.tightness_subsampled, args.tightness_canaries)
        return
    if args.tightness_epsilon is not None:
        append_tightness(args.out, args.tightness_epsilon, args.tightness_runs,
                         args.tightness_data_path)
        return
    runners: dict[str, Callable[[str, int], AuditResult]] = {
        "data_path_canary": _data_path, "gradient_canary": _gradient}
    if "loss" in args.audits:
        runners["loss"] = _loss_audit()
    rows, power, tightness = [], [], []
    for audit in args.audits:
        firsts: dict[str, AuditResult] = {}
        best = 0.0
        for bug in BUGS:
            runs = max(1, round(DEFAULT_RUNS[audit][bug] * args.scale))
            detected, start, bounds = 0, time.perf_counter(), []
            for seed in range(runs):
                r = runners[audit](bug, seed)
                firsts.setdefault(bug, r)
                detected += r.verdict == "FAIL"
                bounds.append(r.eps_lb)
            seconds = (time.perf_counter() - start) / runs
            if bug == "none":
                best = max(bounds)
            rows.append({"bug": bug, "audit": audit, "runs": runs, "detected_runs": detected,
                         "seconds": round(seconds, 2), "eps_lb_max": round(max(bounds), 3),
                         "claimed_epsilon": round(firsts[bug].claimed_epsilon, 4)})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        m = firsts["none"].n_canaries
        ceiling = largest_detectable_epsilon(firsts["none"])
        power.append({"audit": audit, "canaries": m,
                      "positive_control_noise_off": {"eps_lb": firsts["noise_off"].eps_lb,
                                                     **_tpr(firsts["noise_off"])},
                      "largest_detectable_epsilon": round(ceiling, 3),
                      "correct_seed0": {"eps_lb": firsts["none"].eps_lb, **_tpr(firsts["none"])}})
        tightness.append({"audit": audit, "claimed_epsilon": round(firsts["none"].claimed_epsilon,
                                                                   4), "lower_bound": best})
    # Keep what other audits measured (the federation rows of bench/audit_power_federation.py,
    # the white-box tightness rows of --tightness-epsilon); replace only the audits run here.
    found = json.loads(args.out.read_text()) if args.out.exists() else {}
    merged = {key: [r for r in found.get(key, []) if r["audit"] not in args.audits] + new
              for key, new in (("rows", rows), ("power", power))}
    claims = {(t["audit"], t["claimed_epsilon"]) for t in tightness}
    merged["tightness"] = [t for t in found.get("tightness", [])
                           if (t["audit"], t["claimed_epsilon"]) not in claims] + tightness
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(merged, indent=1) + "\n")
    print(json.dumps({"power": power, "tightness": tightness}, indent=1))


if __name__ == "__main__":
    main()
