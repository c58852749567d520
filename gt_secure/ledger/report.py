"""Human views of a ledger: budget table (rich), self-contained HTML report, CSV/JSON export."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from gt_secure.errors import InvalidFieldError
from gt_secure.ledger.entry import LedgerEntry
from gt_secure.ledger.verify import VerifyReport

EXPORT_FIELDS = ("line", "timestamp", "kind", "org_id", "release_id", "round", "unit",
                 "accountant", "delta", "epsilon_spent", "epsilon_total", "budget_epsilon",
                 "mechanisms", "parents", "base_model_hash", "update_vector_hash",
                 "data_fingerprint", "signer", "prev_hash", "signature")


@dataclass(frozen=True)
class BudgetRow:
    """Spent versus budget for one organization and privacy unit."""

    org_id: str
    unit: str
    releases: int
    spent: float
    budget: float
    accountant: str
    delta: float

    @property
    def remaining(self) -> float:
        """Budget left."""
        return max(0.0, self.budget - self.spent)


def budget_rows(entries: Sequence[LedgerEntry]) -> list[BudgetRow]:
    """One row per ``(org_id, unit)`` with a release, sorted; budget from the last release."""
    last: dict[tuple[str, str], LedgerEntry] = {}
    counts: dict[tuple[str, str], int] = {}
    for entry in entries:
        if entry.kind == "release" and entry.unit is not None:
            key = (entry.org_id, entry.unit)
            last[key] = entry
            counts[key] = counts.get(key, 0) + 1
    return [BudgetRow(org, unit, counts[(org, unit)], e.epsilon_total or 0.0,
                      e.budget_epsilon or 0.0, e.accountant or "", e.delta or 0.0)
            for (org, unit), e in sorted(last.items())]


def show_table(entries: Sequence[LedgerEntry], console: Console | None = None) -> Table:
    """Print (and return) the per-organization budget table."""
    table = Table(title="Privacy budget per organization and unit")
    for column in ("org_id", "unit", "releases", "spent", "budget", "remaining", "used",
                   "accountant", "delta"):
        table.add_column(column, no_wrap=True,
                         justify="left" if column in ("org_id", "unit") else "right")
    for row in budget_rows(entries):
        used = row.spent / row.budget if row.budget else 0.0
        style = "red" if used > 0.9 else "yellow" if used > 0.5 else "green"
        table.add_row(row.org_id, row.unit, str(row.releases), f"{row.spent:.4f}",
                      f"{row.budget:.4f}", f"{row.remaining:.4f}", f"[{style}]{used:.0%}[/]",
                      row.accountant, f"{row.delta:.0e}")
    post = sum(1 for e in entries if e.kind == "post_processing")
    table.caption = f"{len(entries)} entries, {post} post-processing (no epsilon)"
    if console is None:
        console = Console() if sys.stdout.isatty() else Console(width=120)
    console.print(table)
    return table


def export_rows(entries: Sequence[LedgerEntry]) -> list[dict[str, Any]]:
    """Flat rows (one per entry, ledger order); mechanisms and parents as JSON strings."""
    rows = []
    for line, entry in enumerate(entries, start=1):
        data = entry.model_dump(mode="json")
        data["line"] = line
        data["mechanisms"] = json.dumps(data["mechanisms"], sort_keys=True)
        data["parents"] = json.dumps(data["parents"])
        rows.append({name: data.get(name) for name in EXPORT_FIELDS})
    return rows


def export(entries: Sequence[LedgerEntry], fmt: str) -> str:
    """The entries as ``csv`` (flat rows) or ``json`` (full entries, a list)."""
    if fmt == "json":
        return json.dumps([e.model_dump(mode="json") for e in entries], indent=2) + "\n"
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=EXPORT_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(export_rows(entries))
        return buffer.getvalue()
    raise InvalidFieldError("fmt", fmt, "one of 'csv', 'json'")


def epsilon_plot_png(entries: Sequence[LedgerEntry]) -> bytes:
    """PNG of cumulative epsilon over time, one step line per organization and unit."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4), dpi=100)
    axes = figure.add_subplot()
    series: dict[tuple[str, str], list[tuple[datetime, float]]] = {}
    for entry in entries:
        if entry.kind == "release" and entry.unit is not None:
            point = (datetime.fromisoformat(entry.timestamp), entry.epsilon_total or 0.0)
            series.setdefault((entry.org_id, entry.unit), []).append(point)
    for (org, unit), points in sorted(series.items()):
        times, values = zip(*points, strict=True)
        axes.step(times, values, where="post", marker="o", label=f"{org} ({unit})")
    axes.set_xlabel("time (UTC)")
    axes.set_ylabel("cumulative epsilon")
    axes.set_title("Epsilon over time per organization")
    if series:
        axes.legend(fontsize="small")
    figure.autofmt_xdate()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def _mechanism_text(entry: LedgerEntry) -> str:
    parts = []
    for m in entry.mechanisms:
        fields = m.model_dump(exclude={"kind", "unit"})
        parts.append(m.kind + "(" + ", ".join(f"{k}={v}" for k, v in fields.items()) + ")")
    return "; ".join(parts) or "-"


def _cell(value: object) -> str:
    return f"<td>{html.escape('-' if value is None else str(value))}</td>"


def html_report(entries: Sequence[LedgerEntry], title: str,
                verification: VerifyReport | None = None) -> str:
    """A self-contained HTML report: status, budget table, epsilon plot, every entry."""
    png = base64.b64encode(epsilon_plot_png(entries)).decode("ascii")
    if verification is None:
        status = "<p>Not verified (no trusted keys given).</p>"
    else:
        items = "".join(f"<li>{html.escape(str(i))}</li>" for i in verification.issues)
        status = f"<p><b>{html.escape(verification.summary())}</b></p><ul>{items}</ul>"
    budget = "".join(
        "<tr>" + "".join(_cell(v) for v in (*asdict(r).values(), f"{r.remaining:.4f}")) + "</tr>"
        for r in budget_rows(entries))
    rows = "".join(
        "<tr>" + "".join(_cell(v) for v in (
            line, e.timestamp, e.kind, e.org_id, e.release_id, e.round, e.unit,
            _mechanism_text(e), e.accountant, e.delta, f"{e.epsilon_spent:.4f}",
            e.epsilon_total, e.budget_epsilon, ", ".join(e.parents) or "-",
            e.update_vector_hash[:16], e.signer)) + "</tr>"
        for line, e in enumerate(entries, start=1))
    head = ("line", "time", "kind", "org", "release", "round", "unit", "mechanisms",
            "accountant", "delta", "eps spent", "eps total", "budget", "parents (lineage)",
            "update hash", "signer")
    budget_head = ("org", "unit", "releases", "spent", "budget", "accountant", "delta",
                   "remaining")
    th = "".join
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:3px 6px}}th{{background:#eee}}</style></head><body>
<h1>{html.escape(title)}</h1>
<h2>Verification</h2>{status}
<h2>Budget per organization</h2>
<table><tr>{th(f"<th>{h}</th>" for h in budget_head)}</tr>{budget}</table>
<h2>Epsilon over time</h2><img alt="epsilon over time" src="data:image/png;base64,{png}">
<h2>Releases and lineage</h2>
<p>Post-processing entries (aggregation, translation) add no epsilon; parents give lineage.</p>
<table><tr>{th(f"<th>{h}</th>" for h in head)}</tr>{rows}</table>
</body></html>
"""
