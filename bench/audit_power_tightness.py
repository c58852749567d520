"""The audit-power bench's tightness rows: white-box lower bounds on the correct pipeline.

``python bench/audit_power.py --tightness-epsilon 8 [--tightness-subsampled rdp prv]`` calls
these (see bench/audit_power.py's docstring for what each row measures).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from statistics import median
from typing import Any

import torch

from bench.audit_parts import load_cell, run_missing, write_inventory
from bench.docs import write_results
from gt_secure.audit.data_path import DATA_PATH_DP_SGD, audit_org_data_path
from gt_secure.audit.fdp_one_run import fdp_one_run_audit
from gt_secure.audit.results import AuditResult
from gt_secure.audit.subsampled_curve import SubsampledGaussianFamily
from gt_secure.audit.tightness import (
    audit_subsampled_tightness,
    audit_tightness,
    fraction_guess_grid,
    gdp_ceiling,
)
from gt_secure.ledger.accountant import AccountantName


def tpr_at_0_1(result: AuditResult) -> dict[str, Any]:
    """TPR at 0.1% FPR with its Clopper-Pearson interval (the LiRA convention)."""
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
            "positive_control_noise_off": {"eps_lb": control.eps_lb, **tpr_at_0_1(control)},
            "correct_seed0": {"eps_lb": first.eps_lb, "auc": first.metrics.auc,
                              **tpr_at_0_1(first)}}


def _data_path_tightness(epsilon: float, runs: int) -> dict[str, Any]:
    """The data-path audit's largest one-run bound on the correct pipeline claimed at epsilon."""
    cfg = DATA_PATH_DP_SGD.model_copy(update={"target_epsilon": epsilon})
    results = [audit_org_data_path(cfg=cfg, seed=seed)[0] for seed in range(runs)]
    return {"audit": "data_path_canary", "claimed_epsilon": round(results[0].claimed_epsilon, 4),
            "lower_bound": max(r.eps_lb for r in results), "runs": runs}


def replace_rows(out: Path, epsilon: float, rows: list[dict[str, Any]]) -> None:
    """Put ``rows`` into ``out``'s tightness rows, replacing those of the same audit at claim
    ``epsilon`` (others kept), and write this bench's rows at that claim to
    docs/results/audit_power_tightness.json."""
    same = {r["audit"] for r in rows}
    found = json.loads(out.read_text())
    found["tightness"] = [t for t in found["tightness"] if not (
        t["audit"] in same and abs(t["claimed_epsilon"] - epsilon) < 0.1)] + rows
    out.write_text(json.dumps(found, indent=1) + "\n")
    write_results("audit_power_tightness", {"claimed_epsilon": epsilon, "tightness": [
        t for t in found["tightness"] if abs(t["claimed_epsilon"] - epsilon) < 0.1]})


def append_tightness(out: Path, epsilon: float, runs: int, data_path: bool = False) -> None:
    """Replace the white-box tightness rows at claim ``epsilon`` by a fresh measurement.

    Other rows are kept; ``data_path`` also replaces the data-path row (3 seeds, as before).
    """
    rows = [_data_path_tightness(epsilon, 3)] if data_path else []
    accountants: tuple[AccountantName, ...] = ("rdp", "prv")
    for accountant in accountants:
        rows.append(_white_box_tightness(epsilon, accountant, runs))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    replace_rows(out, epsilon, rows)


def subsampled_run(epsilon: float, accountant: AccountantName, seed: int, n_canaries: int,
                   noise_off: bool) -> tuple[list[dict[str, Any]], float, dict[str, Any]]:
    """One per-step f-DP audit run (in a worker): results as JSON, seconds, its extras."""
    torch.set_num_threads(1)
    start = time.perf_counter()
    r, extra = audit_subsampled_tightness(epsilon, accountant=accountant, seed=seed,
                                          n_canaries=n_canaries, noise_off=noise_off)
    return [r.model_dump(mode="json")], time.perf_counter() - start, extra


def _subsampled_cell(epsilon: float, accountant: str, n_canaries: int, noise_off: bool) -> str:
    return f"subsampled-eps{epsilon:g}-{accountant}-{n_canaries}" + ("-noise_off" * noise_off)


def _subsampled_tightness(epsilon: float, accountant: AccountantName, runs: int,
                          n_canaries: int, parts: Path) -> dict[str, Any]:
    """The per-step f-DP audit on the correct Poisson-subsampled pipeline, seeds 0..runs-1,
    from the parts (run first by :func:`append_subsampled_tightness`)."""
    done = load_cell(parts, _subsampled_cell(epsilon, accountant, n_canaries, False), runs)
    results = [run["results"][0] for run in done]
    extras = [run["extra"] for run in done]
    seconds = [run["seconds"] for run in done]
    first, bounds = results[0], [r.eps_lb for r in results]
    # Opacus's PRV accountant overflows at z = 0: the positive control runs under the RDP claim.
    control = load_cell(parts, _subsampled_cell(epsilon, "rdp", n_canaries, True), 1)
    control_result = control[0]["results"][0]
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
            "positive_control_noise_off": {"eps_lb": control_result.eps_lb,
                                           **tpr_at_0_1(control_result)},
            "correct_seed0": {"eps_lb": first.eps_lb, "auc": first.metrics.auc,
                              **tpr_at_0_1(first)}}


def append_subsampled_tightness(out: Path, epsilon: float, runs: int,
                                accountants: list[AccountantName], n_canaries: int,
                                parts: Path, jobs: int = 1, merge: bool = True) -> None:
    """Run the subsampled per-step audits missing from ``parts`` (seeds 0..runs-1 per
    accountant and the noise-off control, ``jobs`` at a time), then replace their rows at claim
    ``epsilon`` in ``out`` (others kept; ``merge=False``: only run)."""
    tasks: list[tuple[Any, ...]] = [(epsilon, "rdp", 0, n_canaries, True)] + [
        (epsilon, a, seed, n_canaries, False) for seed in range(runs) for a in accountants]
    run_missing(tasks, subsampled_run,
                lambda t: (_subsampled_cell(t[0], t[1], t[3], t[4]), t[2]), parts, jobs)
    if not merge:
        return
    rows = [_subsampled_tightness(epsilon, a, runs, n_canaries, parts) for a in accountants]
    for row in rows:
        print(json.dumps(row), file=sys.stderr, flush=True)
    replace_rows(out, epsilon, rows)
    write_inventory(parts)
