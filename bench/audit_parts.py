"""One audit run's results kept as a part file, so a long grid resumes and runs in pieces.

A grid cell (an audit x a bug) is run over seeds 0..N-1; each run's :class:`AuditResult` list
and its wall time go to ``PARTS/<cell>/<seed>.json`` (written atomically). A bench skips the
runs whose part exists, so several processes (or machines) can fill one grid, and the table is
built from the parts alone.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from gt_secure.audit.results import AuditResult


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
