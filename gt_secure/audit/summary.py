"""A summary of the numbers an audit suite measured: one JSON file and one HTML table."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from gt_secure.audit.results import AuditResult
from gt_secure.audit.strength import PASS_MEANS, largest_detectable_epsilon


def summary_row(test: str, result: AuditResult) -> dict[str, Any]:
    """One measured audit: where it ran and its AUC, TPR at 0.1% FPR, bound, claim, verdict."""
    tpr = {round(t.target_fpr, 6): t.tpr for t in result.metrics.tpr_at_fpr}
    return {"test": test, "organization": result.organization, "attack": result.attack,
            "n_canaries": result.n_canaries, "auc": result.metrics.auc,
            "tpr_at_0.1%_fpr": tpr.get(0.001), "eps_lower_bound": result.eps_lb,
            "claimed_epsilon": result.claimed_epsilon, "delta": result.delta,
            "largest_detectable_epsilon": largest_detectable_epsilon(result),
            "verdict": result.verdict}


def write_summary(rows: list[dict[str, Any]], out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``summary.json`` and ``summary.html`` into ``out_dir``; return both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out / "summary.json", out / "summary.html"
    json_path.write_text(json.dumps({"pass_means": PASS_MEANS, "audits": rows}, indent=1,
                                    default=str), encoding="utf-8")
    cols = list(rows[0]) if rows else ["test"]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(r.get(c)))}</td>" for c in cols)
                   + "</tr>" for r in rows)
    html_path.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>audit suite summary</title>"
        "<style>table{border-collapse:collapse}td,th{border:1px solid #999;padding:3px 6px}"
        f"</style></head><body><h1>Audit suite summary</h1><p>{html.escape(PASS_MEANS)}</p>"
        f"<table><tr>{head}</tr>{body}</table></body></html>", encoding="utf-8")
    return json_path, html_path


def _cell(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
