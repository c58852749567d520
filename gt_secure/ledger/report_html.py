"""Self-contained HTML report of one or several ledgers (see :mod:`gt_secure.ledger.report`).

Top: verification banner (green OK; red naming every failing entry; an UNVERIFIED stamp fixed
on every printed page when read without trusted keys), then the one-page summary (spent vs
budget per organization and unit, epsilon over time with each budget as a dashed line), then
every entry with its plain-language statement; rows of failing entries are marked.
"""

from __future__ import annotations

import base64
import html
import io
import shutil
import subprocess
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from gt_secure.errors import InvalidFieldError
from gt_secure.ledger.report import (
    UNVERIFIED,
    Filters,
    LedgerView,
    rollup,
    unprotected,
    verification_text,
)

STYLE = """body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 6px;vertical-align:top}th{background:#eee}
.banner{padding:10px 14px;margin:1em 0;border-radius:4px;font-weight:bold}
.ok{background:#e6f4ea;color:#137333;border:2px solid #137333}
.fail{background:#fce8e6;color:#a50e0e;border:3px solid #d93025}
.unverified{background:#fff4e5;color:#8a4b00;border:3px solid #e37400}
.stamp{position:fixed;top:8px;right:8px;background:#e37400;color:#fff;padding:4px 10px;
font-weight:bold;z-index:10}tr.failed td{background:#fce8e6;color:#a50e0e}
table.entries td:nth-child(8){min-width:28em}"""


def epsilon_plot_png(views: Sequence[LedgerView]) -> bytes:
    """PNG of cumulative epsilon over time per organization and unit, budgets dashed."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.dates import date2num
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4), dpi=100)
    axes = figure.add_subplot()
    series: dict[tuple[str, str], list[tuple[datetime, float]]] = {}
    budgets: dict[tuple[str, str], float] = {}
    for view, entry in ((v, e) for v in views for e in v.entries):
        if entry.kind == "release" and entry.unit is not None:
            point = (datetime.fromisoformat(entry.timestamp), entry.epsilon_total or 0.0)
            series.setdefault((entry.org_id, entry.unit), []).append(point)
            budgets[(entry.org_id, entry.unit)] = view.budget_of(entry)
    for (org, unit), points in sorted(series.items()):
        times, values = zip(*points, strict=True)
        line = axes.step(times, values, where="post", marker="o", label=f"{org} ({unit})")[0]
        axes.axhline(budgets[(org, unit)], color=line.get_color(), linestyle="--",
                     linewidth=1, label=f"budget {org} ({unit})")
    instants = {t for points in series.values() for t, _ in points}
    if len(instants) == 1:  # one instant: show the hour around it, not years
        (only,) = instants
        axes.set_xlim(date2num(only - timedelta(minutes=30)),
                      date2num(only + timedelta(minutes=30)))
    axes.set_xlabel("time (UTC)")
    axes.set_ylabel("cumulative epsilon")
    axes.set_title("Epsilon over time per organization (dashed: budget)")
    if series:
        axes.legend(fontsize="x-small")
    figure.autofmt_xdate()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def _cells(values: Sequence[object], tag: str = "td") -> str:
    return "".join(f"<{tag}>{html.escape('-' if v is None else str(v))}</{tag}>" for v in values)


def _banner(views: Sequence[LedgerView]) -> str:
    parts = []
    for view in views:
        name = html.escape(str(view.path))
        if view.verification is None:
            parts.append(f'<div class="banner unverified">{name}: {UNVERIFIED}</div>')
        elif view.verification.ok:
            parts.append(f'<div class="banner ok">{html.escape(verification_text(view))}</div>')
        else:
            items = "".join(f"<li>{html.escape(str(i))}</li>"
                            for i in view.verification.issues)
            parts.append(f'<div class="banner fail">VERIFICATION FAILED for {name}: '
                         f"{len(view.verification.issues)} failing check(s); do not rely on "
                         f"the entries marked below<ul>{items}</ul></div>")
    return "".join(parts)


def _summary(views: Sequence[LedgerView], filters: Filters) -> str:
    head = ("organization", "unit", "releases", "spent in window", "epsilon total", "budget",
            "remaining", "used", "delta")
    rows = "".join(
        "<tr>" + _cells((
            "all organizations (sum)" if r.org_id == "*" else r.org_id, r.unit, r.releases,
            f"{r.spent_in_window:.4f}", f"{r.epsilon_total:.4f}", f"{r.budget:.4f}",
            f"{r.remaining:.4f}", f"{r.epsilon_total / r.budget:.0%}" if r.budget else "-",
            f"{r.delta:g}")) + "</tr>"
        for r in rollup(views, filters))
    window = (f"{filters.since.isoformat() if filters.since else 'start'} to "
              f"{filters.until.isoformat() if filters.until else 'now'}"
              + (f", unit {filters.unit}" if filters.unit else ""))
    naked = "".join(f"<li>{html.escape(line)}</li>" for line in unprotected(views, filters))
    return (f"<h2>Summary: budget spent vs remaining ({html.escape(window)})</h2>"
            f"<table><tr>{_cells(head, 'th')}</tr>{rows}</table>"
            + (f'<div class="banner fail">UNPROTECTED releases (no differential privacy, not '
               f"in the budget above):<ul>{naked}</ul></div>" if naked else "") +
            "<p>Rows 'all organizations (sum)' add up spend; they are not a joint guarantee. "
            "Example-level and organization-level epsilons are different statements and never "
            "add up.</p>")


def _entries(view: LedgerView) -> str:
    failed = view.failed_lines()
    head = ("line", "status", "time", "kind", "organization", "release", "round",
            "guarantee (plain language)", "eps spent", "eps total", "budget",
            "update hash", "signer")
    rows = []
    for line, e, text in view.numbered():
        bad = line in failed
        status = "FAILED" if bad else ("unverified" if view.verification is None else "ok")
        total = None if e.epsilon_total is None else f"{e.epsilon_total:.4f}"
        cells = _cells((line, status, e.timestamp, e.kind, e.org_id, e.release_id, e.round, text,
                        "no DP" if e.kind == "unprotected_release" else f"{e.epsilon_spent:.4f}",
                        total,
                        view.budget_of(e) if e.kind == "release" else None,
                        e.update_vector_hash[:16], view.signer_name(e)))
        rows.append(f'<tr class="{"failed" if bad else "entry"}">{cells}</tr>')
    return (f"<h3>{html.escape(str(view.path))}</h3><table class=\"entries\"><tr>"
            f"{_cells(head, 'th')}</tr>"
            + "".join(rows) + "</table>")


def html_report(views: Sequence[LedgerView], title: str, filters: Filters | None = None) -> str:
    """The report as one HTML page (the plot is an inline PNG)."""
    filters = filters or Filters()
    png = base64.b64encode(epsilon_plot_png(views)).decode("ascii")
    unverified = any(v.verification is None for v in views)
    stamp = '<div class="stamp">UNVERIFIED</div>' if unverified else ""
    shown = ("UNVERIFIED: " if unverified else "") + title
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(shown)}</title>
<style>{STYLE}</style></head><body>{stamp}
<h1>{html.escape(shown)}</h1>
{_banner(views)}
{_summary(views, filters)}
<img alt="epsilon over time" src="data:image/png;base64,{png}">
<h2>Entries</h2>
<p>Post-processing entries (aggregation, translation) add no epsilon; their parents give the
lineage. Each guarantee is stated as recorded; verification recomputes every epsilon.</p>
{"".join(_entries(v) for v in views)}
</body></html>
"""


def chromium(page: Path, *, pdf: Path | None = None, screenshot: Path | None = None,
             timeout: float = 120) -> None:
    """Render ``page`` in headless Chromium to a PDF and/or a 1200x900 PNG screenshot."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        raise InvalidFieldError("--pdf", str(pdf or screenshot), "written by Chromium, which "
                                "is not installed (apt-get install chromium)")
    flags = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
             "--window-size=1200,900"]
    if pdf is not None:
        flags.append(f"--print-to-pdf={pdf.resolve()}")
    if screenshot is not None:
        flags.append(f"--screenshot={screenshot.resolve()}")
    subprocess.run([*flags, page.resolve().as_uri()], check=True, capture_output=True,
                   timeout=timeout)
