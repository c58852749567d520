"""Audit power of the federation audit: planted bugs x released artifact.

Run: ``python -m bench.audit_power_federation [--runs none=5 noise_off=5 ...] [--out F]`` (F
defaults to docs/results/audit_power.json). Each run is the whole federation in Flower's
simulation engine (3 organizations, dp-sgd-secagg: DP-SGD epsilon 1 per organization, the update
clipped to norm 1, SecAgg+, the provider's translator), 64 local steps, 16 own texts per
organization (64 in the ``sample_rate_x4`` cell: 16 texts are one full batch, q = 1)
(:func:`gt_secure.audit.federation.run_federation_audit`). The bank is the audited organization:
with ``--canaries gradient`` (default) its DP-SGD carries 256 Dirac gradient canaries on the
TinyLM LoRA A factors (half "in", Poisson-included at the recorded rate, clipped and noised by
Opacus), scored white-box on the aggregated TinyLM update (their coordinates) and on the
delivered adapter (through the public translator); with ``text``, 64 rare-token canary texts in
its data, scored by loss drop (plus ``--control-steps``: the scores' non-private control outside
the federation). A cell is ``BUG[@all][+translator_copy]=RUNS`` (seeds 0..RUNS-1): ``BUG`` is
planted at the bank (``@all``: at all three organizations) while the ledgers record the plan;
``+translator_copy`` makes the provider translate with a map that copies the TinyLM update into
the adapter (the adapter audit's positive control). One run scores both artifacts: one row per
audit. Rows and power entries of these audits in F are replaced, every other row is kept
(``bench/audit_power.py`` owns those); this bench's own rows also go to
docs/results/audit_power_federation.json. Each run is kept under ``--parts`` (a rerun skips it;
processes started with ``--no-merge`` fill one grid together, seed-major, and a last run without
it writes the results).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.audit_parts import (
    FEDERATION_PARTS,
    has_part,
    load_cell,
    save_part,
    write_inventory,
)
from bench.audit_power_tightness import tpr_at_0_1
from bench.docs import RESULTS, write_results
from gt_secure.audit.federation import (
    ARTIFACTS,
    FederationAuditConfig,
    nonprivate_control,
    run_federation_audit,
)
from gt_secure.audit.results import AuditResult
from gt_secure.audit.strength import largest_detectable_epsilon

SETTINGS: dict[str, dict[str, Any]] = {
    "gradient": {"n_canaries": 256, "local_steps": 64, "num_texts": 16, "canaries": "gradient"},
    "text": {"n_canaries": 64, "local_steps": 64, "num_texts": 16, "canaries": "text"},
}
SAMPLE_RATE_X4_TEXTS = 64  # ceil(64 / 16) = 4 batches: q = 1/4 recorded, 1 run
DEFAULT_RUNS = ["none=20", "noise_off=20", "clipping_off=20", "steps_x2=20", "steps_x4=20",
                "sample_rate_x4=20", "noise_off@all=5", "noise_off+translator_copy=3",
                "none+translator_copy=2"]


def shift(result: AuditResult) -> float:
    """Mean "in" score minus mean "out" score, in "out" score stds: the canaries' measured
    signal-to-noise on the artifact (a Gaussian-DP mechanism's mu, were the scores Gaussian)."""
    scores, member = np.asarray(result.scores), np.asarray(result.is_member)
    return float((scores[member].mean() - scores[~member].mean()) / scores[~member].std(ddof=1))


def parse_cell(cell: str) -> tuple[str, dict[str, Any], int]:
    """``noise_off@all+translator_copy=3`` -> (row name, config fields, runs)."""
    spec, runs = cell.split("=")
    bug, _, provider = spec.partition("+")
    bug, _, where = bug.partition("@")
    fields: dict[str, Any] = {"bug": None if bug == "none" else bug,
                              "bug_at": where or "org", "provider_bug": provider or None}
    name = bug + ("_all_orgs" if where == "all" else "") + (f"+{provider}" if provider else "")
    if bug == "sample_rate_x4":  # 16 texts are one full batch (q = 1): no 4x rate exists
        fields["num_texts"] = SAMPLE_RATE_X4_TEXTS
    return name, fields, int(runs)


def merge(out: Path, settings: dict[str, Any], rows: list[dict[str, Any]],
          power: list[dict[str, Any]]) -> None:
    """Replace the cells (bug x audit) this run measured in ``out`` and in
    docs/results/audit_power_federation.json (same settings: its other cells are kept, and power
    entries are updated key by key); keep everything else."""
    ran = {(r["bug"], r["audit"]) for r in rows}
    found = json.loads(out.read_text()) if out.exists() else {"rows": [], "power": [],
                                                                 "tightness": []}
    found["rows"] = [r for r in found["rows"] if (r["bug"], r["audit"]) not in ran and not (
        r["audit"] in ARTIFACTS and r.get("canaries") != settings["canaries"])] + rows
    mine = RESULTS / "audit_power_federation.json"
    old = json.loads(mine.read_text()) if mine.exists() else {}
    if old.get("settings") == settings:  # the default settings (cells of other counts: named)
        rows = [r for r in old["rows"] if (r["bug"], r["audit"]) not in ran] + rows
        before = {p["audit"]: p for p in old.get("power", [])}
        power = [before.get(p["audit"], {}) | p for p in power] or list(before.values())
    found["power"] = [p for p in found.get("power", []) if p["audit"] not in ARTIFACTS] + power
    out.write_text(json.dumps(found, indent=1) + "\n")
    write_results("audit_power_federation", {"settings": settings, "rows": rows, "power": power})


def power_entries(firsts: dict[tuple[str, str], AuditResult],
                  n_canaries: int) -> list[dict[str, Any]]:
    """Per audit: its positive controls (seed 0) and the largest epsilon its canaries reach."""
    out = []
    for audit in ARTIFACTS:
        entry: dict[str, Any] = {"audit": audit, "canaries": n_canaries}
        for bug in ("noise_off", "noise_off_all_orgs", "noise_off+translator_copy"):
            if (c := firsts.get((bug, audit))) is not None:
                entry[f"positive_control_{bug}"] = {"eps_lb": c.eps_lb, "auc": c.metrics.auc,
                                                    "verdict": c.verdict, **tpr_at_0_1(c)}
        anyone = next(r for (_, a), r in firsts.items() if a == audit)
        entry["largest_detectable_epsilon"] = round(largest_detectable_epsilon(anyone), 3)
        out.append(entry)
    return out


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown: one line per artifact, one column per bug cell: detected/runs, max AUC, max
    eps_lb, mean seconds per run."""
    bugs = list(dict.fromkeys(r["bug"] for r in rows))
    lines = ["| artifact scored | " + " | ".join(bugs) + " |",
             "|---" * (len(bugs) + 1) + "|"]
    for audit in ARTIFACTS:
        cells = []
        for bug in bugs:
            r = next((r for r in rows if r["bug"] == bug and r["audit"] == audit), None)
            cells.append("" if r is None else
                         f"{r['detected_runs']}/{r['runs']} (AUC <= {max(r['auc']):.2f}, eps_lb "
                         f"<= {max(r['eps_lb']):.2f}; {r['seconds']:.0f} s)")
        lines.append(f"| {audit} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


Cell = tuple[str, str, dict[str, Any], int]  # (part cell, row name, config fields, runs)


def fill_parts(parts: Path, cells: list[Cell], reverse: bool = False) -> None:
    """Run every (cell, seed) whose part is missing, seed-major (cells grow together);
    ``reverse``: last seed first, for a second process filling the same cells."""
    seeds = range(max(runs for *_, runs in cells))
    for seed in reversed(seeds) if reverse else seeds:
        for cell, name, fields, runs in cells:
            if seed >= runs or has_part(parts, cell, seed):
                continue
            start = time.perf_counter()
            got = run_federation_audit(FederationAuditConfig(**fields, seed=seed)).results
            save_part(parts, cell, seed, got, time.perf_counter() - start)
            for r in got:
                print(json.dumps({"bug": name, "seed": seed, "audit": r.attack,
                                  "auc": round(r.metrics.auc, 3), "eps_lb": r.eps_lb,
                                  "verdict": r.verdict}), file=sys.stderr, flush=True)


def cell_rows(parts: Path, cells: list[Cell], canaries: str, n: int
              ) -> tuple[list[dict[str, Any]], dict[tuple[str, str], AuditResult]]:
    """One row per cell x artifact from the parts, and each (cell, artifact)'s seed-0 result."""
    rows: list[dict[str, Any]] = []
    firsts: dict[tuple[str, str], AuditResult] = {}
    for cell, name, _, runs in cells:
        done = load_cell(parts, cell, runs)
        seconds = sum(run["seconds"] for run in done) / runs
        results: dict[str, list[AuditResult]] = {a: [] for a in ARTIFACTS}
        for run in done:
            for r in run["results"]:
                results[r.attack].append(r)
                firsts.setdefault((name, r.attack), r)
        for audit, got in results.items():
            rows.append({"bug": name, "audit": audit, "runs": runs,
                         "detected_runs": sum(r.verdict == "FAIL" for r in got),
                         "seconds": round(seconds, 1), "canaries": canaries, "n_canaries": n,
                         "eps_lb": [round(r.eps_lb, 3) for r in got],
                         "auc": [round(r.metrics.auc, 3) for r in got],
                         "shift": [round(shift(r), 3) for r in got],
                         "claimed_epsilon": round(got[0].claimed_epsilon, 4)})
    return rows, firsts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", default=DEFAULT_RUNS,
                        help="BUG[@all][+translator_copy]=RUNS (seeds 0..RUNS-1)")
    parser.add_argument("--canaries", choices=sorted(SETTINGS), default="gradient")
    parser.add_argument("--out", type=Path, default=Path("docs/results/audit_power.json"))
    parser.add_argument("--control-steps", type=int, default=0,
                        help="text canaries: steps of the non-private fine-tune scored as the "
                        "scores' control (0: not run)")
    parser.add_argument("--n-canaries", type=int, default=0,
                        help="canaries per run (0: the setting's); another count names its "
                        "cells 'BUG (N canaries)' and leaves the power entries alone")
    parser.add_argument("--parts", type=Path, default=FEDERATION_PARTS,
                        help="each run's results (kept: a rerun skips the runs found here)")
    parser.add_argument("--no-merge", action="store_true",
                        help="only fill the parts (several processes at once); do not write "
                        "the results files")
    parser.add_argument("--reverse", action="store_true",
                        help="last seed first (a second process filling the same cells)")
    parser.add_argument("--table", action="store_true",
                        help="only print the table of docs/results/audit_power_federation.json")
    args = parser.parse_args()
    if args.table:
        print(table(json.loads((RESULTS / "audit_power_federation.json").read_text())["rows"]))
        return
    settings = SETTINGS[args.canaries]
    n = args.n_canaries or settings["n_canaries"]
    suffix = "" if n == settings["n_canaries"] else f" ({n} canaries)"
    cells = [(f"{args.canaries}-{n}-{name}{suffix}", name + suffix, {**settings, "n_canaries": n,
                                                                      **fields}, runs)
             for name, fields, runs in map(parse_cell, args.runs)]
    fill_parts(args.parts, cells, args.reverse)
    if args.no_merge:
        return
    rows, firsts = cell_rows(args.parts, cells, args.canaries, n)
    power = [] if suffix else power_entries(firsts, n)
    if args.canaries == "text" and args.control_steps:
        first = next(iter(firsts.values()))
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as work:
            control = nonprivate_control(FederationAuditConfig(**settings), first.claimed_epsilon,
                                         first.delta, Path(work), steps=args.control_steps)
        seconds = time.perf_counter() - start
        for entry, c in zip(power, control, strict=True):
            entry[f"positive_control_nonprivate_{args.control_steps}_steps"] = {
                "eps_lb": c.eps_lb, "auc": c.metrics.auc, "verdict": c.verdict,
                "seconds": round(seconds, 1), **tpr_at_0_1(c)}
    merge(args.out, settings, rows, power)
    write_inventory(args.parts)
    for row in rows:
        print(json.dumps(row))
    print(table(rows))


if __name__ == "__main__":
    main()
