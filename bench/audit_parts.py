"""One audit run's results kept as a part file, so a long grid resumes and runs in pieces.

A grid cell (an audit x a bug) is run over seeds 0..N-1; each run's :class:`AuditResult` list
and its wall time go to ``PARTS/<cell>/<seed>.json`` (written atomically). A bench skips the
runs whose part exists, so several processes (or machines) can fill one grid, and the table is
built from the parts alone.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from gt_secure.audit.results import AuditResult

GRID_PARTS = Path("runs/audit_power_parts")  # bench/audit_power.py (grid and tightness runs)
FEDERATION_PARTS = Path("runs/audit_power_federation_parts")  # bench/audit_power_federation.py


def cell_dir(parts: Path, cell: str) -> Path:
    """``PARTS/<cell>`` with the cell name reduced to file-safe characters."""
    return parts / re.sub(r"[^A-Za-z0-9_.@+-]", "_", cell)


def part_path(parts: Path, cell: str, seed: int) -> Path:
    return cell_dir(parts, cell) / f"{seed}.json"


def save_part(parts: Path, cell: str, seed: int, results: list[AuditResult],
              seconds: float, extra: dict[str, Any] | None = None) -> None:
    """Write one run's results atomically (a crash leaves no half-written part)."""
    path = part_path(parts, cell, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"cell": cell, "seed": seed, "seconds": seconds, "extra": extra or {},
            "results": [r.model_dump(mode="json") for r in results]}
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(body))
    os.replace(tmp, path)


def has_part(parts: Path, cell: str, seed: int) -> bool:
    return part_path(parts, cell, seed).exists()


def load_cell(parts: Path, cell: str, runs: int) -> list[dict[str, Any]]:
    """Seeds 0..runs-1 of ``cell``: each ``{"seed", "seconds", "extra", "results"}`` with the
    results as :class:`AuditResult`. A missing seed is an error naming the part file."""
    out = []
    for seed in range(runs):
        path = part_path(parts, cell, seed)
        if not path.exists():
            raise FileNotFoundError(f"missing audit run {path} (cell {cell!r}, seed {seed}): "
                                    "run the bench for this cell first")
        body = json.loads(path.read_text())
        body["results"] = [AuditResult.model_validate(r) for r in body["results"]]
        out.append(body)
    return out


Task = tuple[Any, ...]


def run_missing(tasks: list[Task], run: Callable[..., tuple[list[dict[str, Any]], float,
                                                                 dict[str, Any]]],
                where: Callable[[Task], tuple[str, int]], parts: Path, jobs: int) -> None:
    """Run ``run(*task)`` for every task whose part (``where(task)`` = (cell, seed)) is missing,
    ``jobs`` at a time in spawned processes (torch is loaded: no fork), in the order given, and
    save each as it ends. ``run`` returns (results as JSON, seconds, extra) and must be a
    module-level function (it is pickled)."""
    todo = [t for t in tasks if not has_part(parts, *where(t))]
    print(f"{len(todo)} runs to do, {jobs} at a time", file=sys.stderr, flush=True)

    def keep(task: Task, out: tuple[list[dict[str, Any]], float, dict[str, Any]]) -> None:
        results = [AuditResult.model_validate(r) for r in out[0]]
        cell, seed = where(task)
        save_part(parts, cell, seed, results, out[1], out[2])
        print(json.dumps({"cell": cell, "seed": seed, "seconds": round(out[1], 1),
                          "eps_lb": [round(r.eps_lb, 3) for r in results],
                          "verdicts": [r.verdict for r in results]}),
              file=sys.stderr, flush=True)

    if jobs <= 1:
        for task in todo:
            keep(task, run(*task))
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = {pool.submit(run, *task): task for task in todo}
        for future in as_completed(futures):
            keep(futures[future], future.result())


def inventory(parts: Path) -> list[dict[str, Any]]:
    """Per cell kept under ``parts``: the seeds, mean and total wall seconds, and per result
    position (an audit) the FAIL verdicts: what every grid row was built from."""
    out = []
    for directory in sorted(d for d in parts.iterdir() if d.is_dir()) if parts.is_dir() else []:
        bodies = [json.loads(p.read_text()) for p in directory.glob("*.json")]
        seconds = [b["seconds"] for b in bodies]
        audits = [r["attack"] for r in bodies[0]["results"]] if bodies else []
        out.append({"cell": directory.name, "seeds": sorted(b["seed"] for b in bodies),
                    "runs": len(bodies), "seconds_mean": round(sum(seconds) / len(bodies), 2)
                    if bodies else None, "seconds_total": round(sum(seconds), 1),
                    "fail": {a: sum(b["results"][i]["verdict"] == "FAIL" for b in bodies)
                             for i, a in enumerate(audits)}})
    return out


def write_inventory(parts: Path) -> Path:
    """Update docs/results/audit_parts.json with the inventory of ``parts`` (other directories'
    entries are kept)."""
    from bench.docs import RESULTS, write_results

    path = RESULTS / "audit_parts.json"
    found = json.loads(path.read_text()).get("parts", {}) if path.exists() else {}
    return write_results("audit_parts", {"parts": found | {str(parts): inventory(parts)}})
