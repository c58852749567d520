"""Audit power: each planted/unplanted DP-SGD bug x each audit -> detected runs, time, bounds.

Run: ``python bench/audit_power.py [--groups ...] [--runs 20] [--jobs J] [--out FILE]`` (FILE
defaults to docs/results/audit_power.json; seeds 0..RUNS-1 per cell, one torch thread per run,
J runs at a time in spawned processes; each run's results are kept under ``--parts``, so an
interrupted grid resumes and several machines can fill one grid), then
``python bench/audit_power.py --tightness-epsilon 8`` replaces the white-box tightness rows at
claim 8: the Gaussian-DP one-run bound of full-batch DP-SGD with 8000 Dirac canaries
(:func:`gt_secure.audit.tightness.audit_tightness`), claim from the RDP and from the PRV
accountant, median/min/max over seeds, its positive control and ceiling (add
``--tightness-data-path`` to re-measure the data-path audit's row at that claim too), and
``python bench/audit_power.py --tightness-epsilon 8 --tightness-subsampled rdp prv
--tightness-runs 3`` replaces the Poisson-subsampled rows (q = 1/2, T = 64): the per-step
white-box audit with 16000 canary records and the f-DP one-run bound with the composed subsampled
Gaussian's curve (:func:`gt_secure.audit.tightness.audit_subsampled_tightness`), its noise-off
positive control and ceiling (bench/audit_power_tightness.py). Audit groups:

* ``data_path_canary``: rare-token canary records through the real data path
  (:func:`gt_secure.audit.data_path.audit_org_data_path`, 256 canaries, N = 256, q = 1/8);
* ``gradient_canary``: white-box Dirac gradient canaries inserted at the *recorded* rate
  (:func:`gt_secure.audit.gradient_canary.audit_org_dp_sgd`, 128 canaries);
* ``black_box``: Faker canary records in 64 texts, full DP fine-tune (Adam), one trained model
  scored by four attacks, one row each: ``loss``, ``zlib``, ``min_k`` (Min-K% prob) and
  ``reference`` (the public base TinyLM as reference model: the difference attack), 32 canaries.

Detected = verdict FAIL. The claim is always the correct configuration's ledger epsilon (~1).
Also written: power per audit (positive control = ``noise_off``, the one-run ceiling, TPR at
0.1% FPR with its Clopper-Pearson interval on the correct pipeline and the positive control) and
a tightness row per audit (largest lower bound on the correct pipeline vs its claim).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import torch

from bench.audit_parts import GRID_PARTS, load_cell, run_missing, write_inventory
from bench.audit_power_tightness import (
    append_subsampled_tightness,
    append_tightness,
    tpr_at_0_1,
)
from gt_secure.audit.canary import audit_model, insert_canaries, make_manifest
from gt_secure.audit.data_path import audit_org_data_path
from gt_secure.audit.dp_pipeline import AUDIT_DP_SGD, claimed_epsilon, dp_sgd_trainer
from gt_secure.audit.gradient_canary import (
    GRADIENT_AUDIT_DP_SGD,
    PLANTED_BUGS,
    PlantedBug,
    audit_org_dp_sgd,
    plant_bug,
)
from gt_secure.audit.results import AuditResult
from gt_secure.audit.strength import largest_detectable_epsilon

BUGS: tuple[str, ...] = ("none", *PLANTED_BUGS)
GROUPS: tuple[str, ...] = ("data_path_canary", "gradient_canary", "black_box")
BLACK_BOX_ATTACKS: tuple[str, ...] = ("loss", "zlib", "min_k", "reference")
RUN_COST = {"steps_x2": 2, "steps_x4": 4, "sample_rate_x4": 5}  # ~ relative time of one run


def _bug(name: str) -> PlantedBug | None:
    return None if name == "none" else name  # type: ignore[return-value]


def _data_path(bug: str, seed: int) -> list[AuditResult]:
    return [audit_org_data_path(bug=_bug(bug), seed=seed)[0]]


def _gradient(bug: str, seed: int) -> list[AuditResult]:
    cfg = GRADIENT_AUDIT_DP_SGD.model_copy(update={"seed": seed})
    return [audit_org_dp_sgd(cfg=cfg, bug=_bug(bug), seed=seed)]


@cache
def _tinylm() -> Any:
    from gt_secure.models.loading import load_base

    return load_base("tinylm")


def _black_box(bug: str, seed: int) -> list[AuditResult]:
    """One DP fine-tune with 32 Faker canaries, scored by every black-box attack."""
    from gt_secure.audit.attacks import LossAttack, MinKProbAttack, ReferenceAttack, ZlibAttack
    from gt_secure.audit.ledger_audit import faker_public_texts

    base, tok = _tinylm()
    n_canaries, total = 32, 64  # N = 64 texts at B = 16: ceil(N / B) = 4, sample_rate_x4 exact
    manifest = make_manifest(n_canaries, seed, seed)
    public = faker_public_texts(total)[: total - len(manifest.members)]
    cfg = AUDIT_DP_SGD.model_copy(update={"seed": seed})
    model = dp_sgd_trainer(base, tok, plant_bug(cfg, total, _bug(bug)))(
        insert_canaries(public, manifest, seed=seed))
    claim = claimed_epsilon(cfg, total)[1]
    attacks = [LossAttack(tok), ZlibAttack(tok), MinKProbAttack(tok), ReferenceAttack([base], tok)]
    return [audit_model(model, manifest, a, claimed_epsilon=claim, delta=cfg.delta)
            for a in attacks]


RUNNERS: dict[str, Callable[[str, int], list[AuditResult]]] = {
    "data_path_canary": _data_path, "gradient_canary": _gradient, "black_box": _black_box}


def run_one(group: str, bug: str, seed: int) -> tuple[list[dict[str, Any]], float,
                                                    dict[str, Any]]:
    """One run (in a worker): its results as JSON and its wall time in seconds."""
    torch.set_num_threads(1)
    start = time.perf_counter()
    results = RUNNERS[group](bug, seed)
    return [r.model_dump(mode="json") for r in results], time.perf_counter() - start, {}


def fill_parts(parts: Path, groups: list[str], runs: int, jobs: int) -> None:
    """Run every (group, bug, seed) whose part is missing, longest first, ``jobs`` at a time."""
    tasks = sorted(((g, b, s) for g in groups for b in BUGS for s in range(runs)),
                   key=lambda t: -RUN_COST.get(t[1], 1))
    run_missing(tasks, run_one, lambda t: (f"{t[0]}-{t[1]}", t[2]), parts, jobs)


def grid_rows(parts: Path, groups: list[str], runs: int) -> tuple[list[dict[str, Any]], ...]:
    """Rows (one per bug x audit), power and tightness entries from the parts of seeds
    0..runs-1."""
    rows, power, tightness = [], [], []
    for group in groups:
        cells = {bug: load_cell(parts, f"{group}-{bug}", runs) for bug in BUGS}
        audits = BLACK_BOX_ATTACKS if group == "black_box" else (group,)
        for i, audit in enumerate(audits):
            firsts = {bug: runs_[0]["results"][i] for bug, runs_ in cells.items()}
            for bug, got in cells.items():
                results = [run["results"][i] for run in got]
                rows.append({"bug": bug, "audit": audit, "runs": runs,
                             "detected_runs": sum(r.verdict == "FAIL" for r in results),
                             "seconds": round(sum(run["seconds"] for run in got) / runs, 2),
                             "eps_lb_max": round(max(r.eps_lb for r in results), 3),
                             "claimed_epsilon": round(firsts[bug].claimed_epsilon, 4)})
            none, control = firsts["none"], firsts["noise_off"]
            power.append({"audit": audit, "canaries": none.n_canaries,
                          "positive_control_noise_off": {"eps_lb": control.eps_lb,
                                                         **tpr_at_0_1(control)},
                          "largest_detectable_epsilon": round(
                              largest_detectable_epsilon(none), 3),
                          "correct_seed0": {"eps_lb": none.eps_lb, **tpr_at_0_1(none)}})
            best = max(run["results"][i].eps_lb for run in cells["none"])
            tightness.append({"audit": audit, "claimed_epsilon": round(none.claimed_epsilon, 4),
                              "lower_bound": best})
    return rows, power, tightness


def merge_grid(out: Path, rows: list[dict[str, Any]], power: list[dict[str, Any]],
               tightness: list[dict[str, Any]]) -> None:
    """Replace the audits measured here in ``out``; keep the others (the federation rows of
    bench/audit_power_federation.py, the tightness rows of --tightness-epsilon)."""
    found = json.loads(out.read_text()) if out.exists() else {}
    audits = {r["audit"] for r in rows}
    merged = {key: [r for r in found.get(key, []) if r["audit"] not in audits] + new
              for key, new in (("rows", rows), ("power", power))}
    claims = {(t["audit"], t["claimed_epsilon"]) for t in tightness}
    merged["tightness"] = [t for t in found.get("tightness", [])
                           if (t["audit"], t["claimed_epsilon"]) not in claims] + tightness
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(merged, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", nargs="+", choices=GROUPS, default=list(GROUPS))
    parser.add_argument("--runs", type=int, default=20, help="seeds per bug x audit cell")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (processes)")
    parser.add_argument("--parts", type=Path, default=GRID_PARTS,
                        help="each run's results (kept: a rerun skips the runs found here)")
    parser.add_argument("--no-merge", action="store_true",
                        help="only fill the parts; do not write --out")
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
                                    args.tightness_subsampled, args.tightness_canaries,
                                    args.parts, args.jobs, merge=not args.no_merge)
        return
    if args.tightness_epsilon is not None:
        append_tightness(args.out, args.tightness_epsilon, args.tightness_runs,
                         args.tightness_data_path)
        return
    fill_parts(args.parts, args.groups, args.runs, args.jobs)
    if args.no_merge:
        return
    rows, power, tightness = grid_rows(args.parts, args.groups, args.runs)
    merge_grid(args.out, rows, power, tightness)
    write_inventory(args.parts)
    for row in rows:
        print(json.dumps(row))
    print(json.dumps({"power": power, "tightness": tightness}, indent=1))


if __name__ == "__main__":
    main()
