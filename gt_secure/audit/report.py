"""Audit report: one JSON document and one self-contained HTML page (inline base64 PNGs)."""

from __future__ import annotations

import base64
import hashlib
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
from gt_secure.audit.strength import (
    MEANS,
    PASS_MEANS,
    ReportVerdict,
    control_of,
    control_summary,
    detected,
    overall_verdict,
    strength,
)


def _version() -> str:
    from gt_secure import __version__

    return __version__

_CSS = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #999;padding:4px 8px;text-align:right}"
        ".PASS{color:#060;font-weight:bold}.FAIL{color:#b00;font-weight:bold}"
        ".INCONCLUSIVE{color:#b60;font-weight:bold}"
        "pre{background:#f4f4f4;padding:6px;font-size:80%}")


class AuditReport(BaseModel):
    """Audit results, the ledger entries they are checked against, and what was audited how.

    ``audited`` says what the attacks scored (the released artifact, or a re-simulation of the
    mechanism a ledger entry records); ``ledger_verification`` how the claim's ledger was read;
    ``positive_control`` how the positive control was made and ``controls`` its results, one per
    attack (None: no control was run); ``settings`` the run's options. The JSON carries
    ``report_sha256``, the SHA-256 of the JSON without that key; the HTML page embeds that JSON
    and shows the hash, and is a pure function of it (:mod:`gt_secure.audit.report_verify`).
    """

    model_config = ConfigDict(frozen=True)
    title: str = "gt-secure privacy audit"
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat())
    results: list[AuditResult]
    ledger_entries: list[dict[str, Any]] = Field(default_factory=list)
    audited: str = "not stated"
    ledger_verification: str = "no ledger claim"
    positive_control: str | None = None
    controls: list[AuditResult] | None = None
    settings: dict[str, Any] = Field(default_factory=dict)
    tool_version: str = Field(default_factory=_version)

    @property
    def verdict(self) -> ReportVerdict:
        """FAIL if any result fails; INCONCLUSIVE if a positive control ran and did not detect;
        else PASS (:func:`gt_secure.audit.strength.overall_verdict`)."""
        return overall_verdict(self.results, self.controls)

    def _body(self) -> dict[str, Any]:
        data = self.model_dump(mode="python")
        data["verdict"] = self.verdict
        data["verdict_means"] = MEANS[self.verdict]
        data["pass_means"] = PASS_MEANS
        data["strength"] = [strength(r) for r in self.results]
        data["positive_control_results"] = (None if self.controls is None
                                            else control_summary(self.controls))
        return data

    @property
    def sha256(self) -> str:
        """SHA-256 of the JSON report without its ``report_sha256`` key (:func:`report_hash`)."""
        return report_hash(self._body())

    def to_json(self) -> str:
        """The report as indented JSON (``claimed_epsilon`` may be ``Infinity``) with its hash."""
        data = self._body()
        data["report_sha256"] = report_hash(data)
        return json.dumps(data, indent=1, default=str)

    def linked_entries(self, result: AuditResult) -> list[dict[str, Any]]:
        """Ledger entries whose ``release_id`` (or ``id``) is linked by ``result``."""
        ids = set(result.ledger_release_ids)
        return [e for e in self.ledger_entries
                if str(e.get("release_id", e.get("id", ""))) in ids]

    def computed(self) -> dict[str, Any]:
        """The fields derived from the results (verdict, strength, positive control), as JSON
        values: what :func:`gt_secure.audit.report_verify.verify_report` re-derives."""
        body = self._body()
        return {k: json.loads(json.dumps(body[k], default=str)) for k in COMPUTED}

    def to_html(self, report_json: str | None = None) -> str:
        """A self-contained HTML page: verdict, epsilon table and chart, ROC curves, ledger;
        it embeds ``report_json`` (default: :meth:`to_json`) and shows its hash."""
        esc = html.escape
        parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(self.title)}"
                 f"</title><style>{_CSS}</style></head><body><h1>{esc(self.title)}</h1>",
                 f"<p>created {esc(self.created_at)} &mdash; overall verdict "
                 f"<span class='{self.verdict}'>{self.verdict}</span> "
                 f"({esc(MEANS[self.verdict])})</p>"]
        parts.append(self._what_and_how_html())
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
        linked = [e for r in self.results for e in self.linked_entries(r)]
        for entry in {json.dumps(e, sort_keys=True, default=str): e for e in linked}.values():
            parts.append(f"<pre>{esc(json.dumps(entry, indent=1, default=str))}</pre>")
        if not linked:
            parts.append("<p>No ledger entry is linked (no --release-id found in the ledger)."
                         "</p>")
        parts.append(f"<h2>Run settings</h2><pre>"
                     f"{esc(json.dumps(self.settings, indent=1, default=str))}</pre>")
        text = self.to_json() if report_json is None else report_json
        digest = json.loads(text)["report_sha256"]
        parts.append(f"<p>gt-secure {esc(self.tool_version)} &mdash; report SHA-256 "
                     f"<code id='report-sha256'>{digest}</code> (of the report JSON embedded "
                     "in this page and written as audit.json, without its report_sha256 key; "
                     "this page is rendered from it: check both with <code>gt-secure audit "
                     "verify-report DIR</code>)</p>")
        parts.append(f"<script type='application/json' id='{EMBED_ID}'>"
                     f"{embeddable(text)}</script></body></html>")
        return "\n".join(parts)

    def _what_and_how_html(self) -> str:
        esc = html.escape
        rows = "".join(
            f"<tr><td>{esc(r.organization)}</td><td>{esc(r.attack)}</td><td>{r.n_canaries}</td>"
            f"<td>{s['largest_detectable_epsilon']:.3f}</td><td>{r.claimed_epsilon:g}</td>"
            f"<td>{'yes' if s['claim_within_reach'] else 'no: this audit cannot FAIL it'}</td>"
            "</tr>" for r, s in zip(self.results, (strength(r) for r in self.results),
                                    strict=True))
        return (f"<h2>What was audited</h2><p>{esc(self.audited)}</p>"
                f"<p>Claim's ledger: {esc(self.ledger_verification)}</p>"
                f"<h2>How strong the test was</h2>{self._control_html()}"
                "<table><tr><th>organization</th><th>attack</th><th>canaries</th>"
                "<th>largest detectable eps</th><th>claimed eps</th><th>claim within reach</th>"
                f"</tr>{rows}</table>")

    def _control_html(self) -> str:
        esc = html.escape
        if self.controls is None:
            return "<p>Positive control: not run in this audit.</p>"
        rows = []
        for r in self.results:
            c = control_of(r, self.controls)
            found = ("<td colspan='3'>not run</td>" if c is None else
                     f"<td>{c.metrics.auc:.3f}</td><td>{c.eps_lb:.3f}</td>"
                     f"<td>{c.claimed_epsilon:g}</td>")
            state = ("<td class='PASS'>yes</td>" if detected(c) else
                     "<td class='INCONCLUSIVE'>no: this attack's PASS is inconclusive</td>")
            rows.append(f"<tr><td>{esc(r.attack)}</td>{found}{state}</tr>")
        return (f"<p>Positive control: {esc(self.positive_control or '')}</p>"
                "<table id='positive-control'><tr><th>attack</th><th>control AUC</th>"
                "<th>control eps lower bound</th><th>claimed eps</th><th>control detected</th>"
                f"</tr>{''.join(rows)}</table>")

    def write(self, out_dir: str | Path) -> tuple[Path, Path]:
        """Write ``audit.json`` and ``audit.html`` into ``out_dir``; return both paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        json_path, html_path = out / "audit.json", out / "audit.html"
        json_path.write_text(self.to_json(), encoding="utf-8")
        html_path.write_text(self.to_html(), encoding="utf-8")
        return json_path, html_path


EMBED_ID = "gt-secure-audit-report"
COMPUTED = ("verdict", "verdict_means", "pass_means", "strength", "positive_control_results")


def build_report(results: Sequence[AuditResult],
                 ledger_entries: Sequence[dict[str, Any]] = (), **about: Any) -> AuditReport:
    """Bundle results and ledger entries into a report; ``about``: the other report fields."""
    return AuditReport(results=list(results), ledger_entries=list(ledger_entries), **about)


def embeddable(text: str) -> str:
    """JSON ``text`` safe inside ``<script>``: ``<``, ``>`` and ``&`` written as their JSON
    escapes (``\\u003c`` ...), so the page's parser never sees markup; it decodes to the same
    JSON."""
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def report_hash(data: dict[str, Any]) -> str:
    """SHA-256 of a report's JSON (``json.dumps(indent=1)``) without its ``report_sha256`` key."""
    body = {k: v for k, v in data.items() if k != "report_sha256"}
    return hashlib.sha256(json.dumps(body, indent=1, default=str).encode()).hexdigest()


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f"<p><img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'></p>"
