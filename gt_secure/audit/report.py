"""Audit report: one JSON document and one self-contained HTML page (inline base64 PNGs)."""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gt_secure.audit.metrics import RocCurve, roc_curve
from gt_secure.audit.plot import epsilon_png, roc_png
from gt_secure.audit.results import AuditResult

_CSS = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #999;padding:4px 8px;text-align:right}"
        ".PASS{color:#060;font-weight:bold}.FAIL{color:#b00;font-weight:bold}"
        "pre{background:#f4f4f4;padding:6px;font-size:80%}")


class AuditReport(BaseModel):
    """Audit results plus the ledger entries they are checked against."""

    model_config = ConfigDict(frozen=True)
    title: str = "gt-secure privacy audit"
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat())
    results: list[AuditResult]
    ledger_entries: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def verdict(self) -> str:
        """FAIL if any result fails, else PASS."""
        return "FAIL" if any(r.verdict == "FAIL" for r in self.results) else "PASS"

    def to_json(self) -> str:
        """The report as indented JSON (``claimed_epsilon`` may be ``Infinity``)."""
        data = self.model_dump(mode="python")
        data["verdict"] = self.verdict
        return json.dumps(data, indent=1, default=str)

    def linked_entries(self, result: AuditResult) -> list[dict[str, Any]]:
        """Ledger entries whose ``release_id`` (or ``id``) is linked by ``result``."""
        ids = set(result.ledger_release_ids)
        return [e for e in self.ledger_entries
                if str(e.get("release_id", e.get("id", ""))) in ids]

    def to_html(self) -> str:
        """A self-contained HTML page: verdict, epsilon table and chart, ROC curves, ledger."""
        esc = html.escape
        parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(self.title)}"
                 f"</title><style>{_CSS}</style></head><body><h1>{esc(self.title)}</h1>",
                 f"<p>created {esc(self.created_at)} &mdash; overall verdict "
                 f"<span class='{self.verdict}'>{self.verdict}</span></p>"]
        parts.append("<h2>Empirical vs claimed epsilon</h2><table><tr><th>organization</th>"
                     "<th>attack</th><th>AUC [CI]</th><th>TPR@0.1%FPR</th><th>TPR@1%FPR</th>"
                     "<th>eps lower bound</th><th>claimed eps</th><th>delta</th><th>verdict</th>"
                     "<th>canary / split seed</th><th>ledger releases</th></tr>")
        for r in self.results:
            m = r.metrics
            tprs = {round(t.target_fpr, 6): t.tpr for t in m.tpr_at_fpr}
            parts.append(
                f"<tr><td>{esc(r.organization)}</td><td>{esc(r.attack)}</td>"
                f"<td>{m.auc:.3f} [{m.auc_ci[0]:.3f}, {m.auc_ci[1]:.3f}]</td>"
                f"<td>{tprs.get(0.001, float('nan')):.3f}</td>"
                f"<td>{tprs.get(0.01, float('nan')):.3f}</td>"
                f"<td>{r.eps_lb:.3f}</td><td>{r.claimed_epsilon:g}</td><td>{r.delta:g}</td>"
                f"<td class='{r.verdict}'>{r.verdict}</td>"
                f"<td>{r.canary_seed} / {r.split_seed}</td>"
                f"<td>{esc(', '.join(r.ledger_release_ids))}</td></tr>")
        parts.append("</table>")
        if self.results:
            labels = [f"{r.organization}/{r.attack}" for r in self.results]
            png = epsilon_png(labels, [r.eps_lb for r in self.results],
                              [r.claimed_epsilon for r in self.results])
            parts.append(_img(png, "empirical vs claimed epsilon"))
        parts.append("<h2>ROC curves</h2>")
        for org in dict.fromkeys(r.organization for r in self.results):
            curves: dict[str, RocCurve] = {
                r.attack: roc_curve(r.scores, r.is_member)
                for r in self.results if r.organization == org}
            parts.append(f"<h3>{esc(org or '(unnamed)')}</h3>")
            parts.append(_img(roc_png(curves, title=f"ROC {org}"), f"ROC {org}"))
        parts.append("<h2>Linked ledger entries</h2>")
        for r in self.results:
            for entry in self.linked_entries(r):
                parts.append(f"<pre>{esc(json.dumps(entry, indent=1, default=str))}</pre>")
        parts.append("</body></html>")
        return "\n".join(parts)

    def write(self, out_dir: str | Path) -> tuple[Path, Path]:
        """Write ``audit.json`` and ``audit.html`` into ``out_dir``; return both paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        json_path, html_path = out / "audit.json", out / "audit.html"
        json_path.write_text(self.to_json(), encoding="utf-8")
        html_path.write_text(self.to_html(), encoding="utf-8")
        return json_path, html_path


def build_report(results: Sequence[AuditResult],
                 ledger_entries: Sequence[dict[str, Any]] = ()) -> AuditReport:
    """Bundle results and ledger entries into a report."""
    return AuditReport(results=list(results), ledger_entries=list(ledger_entries))


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f"<p><img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'></p>"
