"""Audit power of the federation audit: planted bugs at one organization x released artifact.

Run: ``python -m bench.audit_power_federation [--runs none=2 noise_off=2 steps_x4=1] [--out F]``
(F defaults to docs/results/audit_power.json). Each run is the whole federation in Flower's
simulation engine (3 organizations, dp-sgd-secagg: DP-SGD epsilon 1 per organization, SecAgg+,
the shipped translator), 64 rare-token canaries in the bank's data (half inserted), 64 local
steps, 16 own texts per organization (:func:`gt_secure.audit.federation.run_federation_audit`);
the bug is planted at the bank only, whose ledger still records the planned mechanism. One run
scores both artifacts, so each run gives one row per audit (``federation_tinylm_update``,
``federation_adapter``). Then the scores' own positive control
(:func:`~gt_secure.audit.federation.nonprivate_control`: the bank's texts + "in" canaries
fine-tuned without DP, ``--control-steps`` steps, translated, scored). Rows of these audits in
F are replaced, every other row is kept (``bench/audit_power.py`` owns those), as are the power
rows of the other audits; this bench's own rows also go to docs/results/audit_power_federation.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.docs import write_results
from gt_secure.audit.federation import (
    ARTIFACTS,
    FederationAuditConfig,
    nonprivate_control,
    run_federation_audit,
)
from gt_secure.audit.results import AuditResult
from gt_secure.audit.strength import largest_detectable_epsilon

SETTINGS = {"n_canaries": 64, "local_steps": 64, "num_texts": 16}


def _tpr(result: AuditResult) -> dict[str, Any]:
    t = next(t for t in result.metrics.tpr_at_fpr if abs(t.target_fpr - 0.001) < 1e-12)
    return {"tpr": t.tpr, "tpr_ci95": list(t.tpr_ci), "fpr": t.fpr}


def merge(out: Path, rows: list[dict[str, Any]], power: list[dict[str, Any]]) -> None:
    """Replace this bench's rows and power entries in ``out``; keep everything else."""
    found = json.loads(out.read_text()) if out.exists() else {"rows": [], "power": [],
                                                                 "tightness": []}
    found["rows"] = [r for r in found["rows"] if r["audit"] not in ARTIFACTS] + rows
    found["power"] = [p for p in found.get("power", []) if p["audit"] not in ARTIFACTS] + power
    out.write_text(json.dumps(found, indent=1) + "\n")
    write_results("audit_power_federation", {"settings": SETTINGS, "rows": rows, "power": power})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", default=["none=2", "noise_off=2", "steps_x4=1"],
                        help="bug=runs (seeds 0..runs-1)")
    parser.add_argument("--out", type=Path, default=Path("docs/results/audit_power.json"))
    parser.add_argument("--control-steps", type=int, default=800,
                        help="steps of the non-private fine-tune scored as the scores' control")
    args = parser.parse_args()
    cells = [(bug, int(n)) for bug, n in (item.split("=") for item in args.runs)]
    rows: list[dict[str, Any]] = []
    firsts: dict[tuple[str, str], AuditResult] = {}
    for bug, runs in cells:
        results: dict[str, list[AuditResult]] = {a: [] for a in ARTIFACTS}
        start = time.perf_counter()
        for seed in range(runs):
            cfg = FederationAuditConfig(**SETTINGS, seed=seed,
                                        bug=None if bug == "none" else bug)  # type: ignore[arg-type]
            for r in run_federation_audit(cfg).results:
                results[r.attack].append(r)
                firsts.setdefault((bug, r.attack), r)
                print(json.dumps({"bug": bug, "seed": seed, "audit": r.attack,
                                  "auc": round(r.metrics.auc, 3), "eps_lb": r.eps_lb}),
                      file=sys.stderr, flush=True)
        seconds = (time.perf_counter() - start) / runs
        for audit, got in results.items():
            rows.append({"bug": bug, "audit": audit, "runs": runs,
                         "detected_runs": sum(r.verdict == "FAIL" for r in got),
                         "seconds": round(seconds, 1),
                         "eps_lb_max": round(max(r.eps_lb for r in got), 3),
                         "auc_max": round(max(r.metrics.auc for r in got), 3),
                         "claimed_epsilon": round(got[0].claimed_epsilon, 4)})
        power = [{"audit": a, "canaries": SETTINGS["n_canaries"],
                  "positive_control_noise_off": ({"eps_lb": c.eps_lb, "auc": c.metrics.auc,
                                                  **_tpr(c)} if (c := firsts.get(
                                                      ("noise_off", a))) else None),
                  "largest_detectable_epsilon": round(largest_detectable_epsilon(
                      next(r for (b, x), r in firsts.items() if x == a)), 3)}
                 for a in ARTIFACTS]
        merge(args.out, rows, power)  # after every cell: a long grid keeps what it measured
    first = next(iter(firsts.values()))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        control = nonprivate_control(FederationAuditConfig(**SETTINGS), first.claimed_epsilon,
                                     first.delta, Path(work), steps=args.control_steps)
    seconds = time.perf_counter() - start
    for entry, c in zip(power, control, strict=True):
        entry[f"positive_control_nonprivate_{args.control_steps}_steps"] = {
            "eps_lb": c.eps_lb, "auc": c.metrics.auc, "verdict": c.verdict,
            "seconds": round(seconds, 1), **_tpr(c)}
    merge(args.out, rows, power)
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
