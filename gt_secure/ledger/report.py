"""Human views of one or several ledgers: plain-language statements, the roll-up of spent vs
budget per organization and unit (time and unit filters), tables, JSON, CSV/JSON export.

The HTML report is :mod:`gt_secure.ledger.report_html`. A :class:`LedgerView` carries a ledger's
entries with its verification (``None``: read unverified, which every view states).
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from gt_secure.errors import InvalidFieldError
from gt_secure.ledger.entry import LedgerEntry
from gt_secure.ledger.statement import UNPROTECTED, statement, statements
from gt_secure.ledger.verify import VerifyReport

EXPORT_FIELDS = ("line", "timestamp", "kind", "org_id", "release_id", "round", "unit",
                 "accountant", "delta", "epsilon_spent", "epsilon_total", "budget_epsilon",
                 "mechanisms", "parents", "base_model_hash", "update_vector_hash",
                 "data_fingerprint", "protocol", "signer", "prev_hash", "signature")
__all__ = ["Filters", "LedgerRead", "LedgerView", "RollupRow", "export", "export_rows",
           "read_ledger", "rollup", "show_table", "statement", "statements", "unprotected",
           "view_json", "view_of"]
UNVERIFIED = "UNVERIFIED: signatures, hash chain and epsilon were not checked"


@dataclass(frozen=True)
class LedgerView:
    """One ledger's intact entries, its verification (None: unverified) and known signers."""

    path: Path
    entries: list[LedgerEntry]
    verification: VerifyReport | None
    signers: dict[str, str] = field(default_factory=dict)  # key id -> owner
    budgets: dict[str, float] = field(default_factory=dict)  # unit -> epsilon (ledger header)
    lines: tuple[int, ...] = ()  # file line of each entry (default: 1, 2, ...)

    def numbered(self) -> list[tuple[int, LedgerEntry, str]]:
        """``(file line, entry, plain-language statement)`` of every entry."""
        lines = self.lines or tuple(range(1, len(self.entries) + 1))
        return list(zip(lines, self.entries, statements(self.entries), strict=True))

    def failed_lines(self) -> set[int]:
        """Line numbers named by a failed check."""
        return {i.line for i in self.verification.issues} if self.verification else set()

    def budget_of(self, entry: LedgerEntry) -> float:
        """The budget of the entry's unit: the ledger header's, else the entry's own."""
        if entry.unit in self.budgets:
            return self.budgets[entry.unit]
        return float(getattr(entry, "budget_epsilon", None) or 0.0)

    def signer_name(self, entry: LedgerEntry) -> str:
        """``owner (key id)`` when the key is trusted, else the bare key id."""
        owner = self.signers.get(entry.signer)
        return f"{owner} ({entry.signer})" if owner else entry.signer


@dataclass(frozen=True)
class Filters:
    """Which releases count: time window (inclusive, UTC) and privacy unit."""

    since: datetime | None = None
    until: datetime | None = None
    unit: str | None = None

    def before_end(self, entry: LedgerEntry) -> bool:
        """True when the entry is not after ``until``."""
        return self.until is None or datetime.fromisoformat(entry.timestamp) <= self.until

    def in_window(self, entry: LedgerEntry) -> bool:
        """True when the entry is inside ``[since, until]``."""
        time = datetime.fromisoformat(entry.timestamp)
        return self.before_end(entry) and (self.since is None or time >= self.since)


@dataclass(frozen=True)
class RollupRow:
    """Spend of one organization at one privacy unit (``org_id='*'``: all organizations)."""

    org_id: str
    unit: str
    releases: int
    spent_in_window: float
    epsilon_total: float
    budget: float
    accountant: str
    delta: float

    @property
    def remaining(self) -> float:
        """Budget left at the end of the window."""
        return max(0.0, self.budget - self.epsilon_total)


@dataclass(frozen=True)
class LedgerRead:
    """What :func:`read_ledger` found: entries, their file lines, header budgets, problems."""

    entries: list[LedgerEntry]
    lines: tuple[int, ...]
    budgets: dict[str, float]
    unreadable: tuple[int, ...]
    torn_line: int | None


def read_ledger(path: Path, field_name: str = "ledger") -> LedgerRead:
    """Every line of ``path`` that parses as an entry, with its line number, and the header's
    budgets. Tolerant on purpose: a tampered line must reach a view (marked by verification),
    not stop it. A missing file or one without entries is an :class:`InvalidFieldError` on
    ``field_name`` naming the path."""
    from pydantic import ValidationError

    from gt_secure.ledger.store import split_lines

    if not path.is_file():
        raise InvalidFieldError(field_name, str(path), "an existing ledger file (JSONL)")
    scan = split_lines(path.read_bytes())
    entries: list[LedgerEntry] = []
    lines: list[int] = []
    budgets: dict[str, float] = {}
    unreadable = []
    for number, raw in enumerate(scan.lines, start=1):
        try:
            entries.append(LedgerEntry.model_validate_json(raw))
            lines.append(number)
        except ValidationError:
            try:
                data = json.loads(raw)
            except ValueError:
                data = None
            if number == 1 and isinstance(data, dict) and data.get("kind") == "header":
                budgets = {str(k): float(v) for k, v in (data.get("budget") or {}).items()}
            else:
                unreadable.append(number)
    if not entries:
        raise InvalidFieldError(field_name, str(path), "a ledger with at least one entry (this "
                                "file has none)")
    torn = scan.torn.line if scan.torn is not None else None
    return LedgerRead(entries, tuple(lines), budgets, tuple(unreadable), torn)


def view_of(path: Path, verification: VerifyReport | None, signers: dict[str, str],
            field_name: str = "ledger") -> LedgerView:
    """:class:`LedgerView` of the ledger at ``path`` (see :func:`read_ledger`)."""
    found = read_ledger(path, field_name)
    return LedgerView(path, found.entries, verification, signers, found.budgets, found.lines)


def rollup(views: Sequence[LedgerView], filters: Filters | None = None) -> list[RollupRow]:
    """Per ``(org, unit)`` rows, then one ``'*'`` total row per unit (sum over organizations:
    a total of spend, not a joint guarantee). ``epsilon_total`` is the cumulative epsilon at the
    end of the window; ``spent_in_window`` its increase within the window."""
    filters = filters or Filters()
    before: dict[tuple[str, str], float] = {}
    last: dict[tuple[str, str], tuple[LedgerEntry, float]] = {}
    counts: dict[tuple[str, str], int] = {}
    for view, entry in ((v, e) for v in views for e in v.entries):
        if entry.kind != "release" or entry.unit is None or not filters.before_end(entry):
            continue
        if filters.unit is not None and entry.unit != filters.unit:
            continue
        key = (entry.org_id, entry.unit)
        if filters.in_window(entry):
            last[key] = (entry, view.budget_of(entry))
            counts[key] = counts.get(key, 0) + 1
        else:
            before[key] = entry.epsilon_total or 0.0
    rows = [RollupRow(org, unit, counts[(org, unit)],
                      (e.epsilon_total or 0.0) - before.get((org, unit), 0.0),
                      e.epsilon_total or 0.0, budget, e.accountant or "", e.delta or 0.0)
            for (org, unit), (e, budget) in sorted(last.items())]
    for unit in sorted({r.unit for r in rows}):
        same = [r for r in rows if r.unit == unit]
        rows.append(RollupRow("*", unit, sum(r.releases for r in same),
                              sum(r.spent_in_window for r in same),
                              sum(r.epsilon_total for r in same), sum(r.budget for r in same),
                              "", max(r.delta for r in same)))
    return rows


def unprotected(views: Sequence[LedgerView], filters: Filters | None = None) -> list[str]:
    """One line per unprotected release (no DP) in the window: they spend no budget, so the
    roll-up cannot show them, and every view lists them instead."""
    filters = filters or Filters()
    return [f"{e.org_id} {e.release_id} ({e.timestamp}): {UNPROTECTED}"
            for v in views for e in v.entries
            if e.kind == "unprotected_release" and filters.in_window(e)]


def verification_text(view: LedgerView) -> str:
    """One line: the verification summary, or the UNVERIFIED stamp."""
    return UNVERIFIED if view.verification is None else view.verification.summary()


def show_table(views: Sequence[LedgerView], filters: Filters | None = None,
               console: Any = None) -> Any:
    """Print (and return) the roll-up table with each ledger's verification line."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Privacy budget per organization and unit")
    for column in ("org_id", "unit", "releases", "spent (window)", "epsilon total", "budget",
                   "remaining", "used", "accountant", "delta"):
        table.add_column(column, no_wrap=True,
                         justify="left" if column in ("org_id", "unit") else "right")
    for row in rollup(views, filters):
        used = row.epsilon_total / row.budget if row.budget else 0.0
        style = "red" if used > 0.9 else "yellow" if used > 0.5 else "green"
        name = "all (sum)" if row.org_id == "*" else row.org_id
        table.add_row(name, row.unit, str(row.releases), f"{row.spent_in_window:.4f}",
                      f"{row.epsilon_total:.4f}", f"{row.budget:.4f}", f"{row.remaining:.4f}",
                      f"[{style}]{used:.0%}[/]", row.accountant, f"{row.delta:.0e}")
    entries = sum(len(v.entries) for v in views)
    table.caption = f"{entries} entries in {len(views)} ledger(s)"
    if console is None:
        console = Console() if sys.stdout.isatty() else Console(width=140)
    for view in views:
        ok = view.verification is not None and view.verification.ok
        console.print(f"[{'green' if ok else 'bold red'}]{view.path}: "
                      f"{verification_text(view)}[/]", highlight=False)
        for issue in (view.verification.issues if view.verification else ()):
            console.print(f"[red]  FAIL {issue}[/]", highlight=False)
    console.print(table)
    for line in unprotected(views, filters):
        console.print(f"[bold red]UNPROTECTED release {line}[/]", highlight=False)
    return table


def view_json(views: Sequence[LedgerView], filters: Filters | None = None) -> dict[str, Any]:
    """The roll-up, verification and every entry with its plain-language statement."""
    ledgers = []
    for view in views:
        failed = view.failed_lines()
        ledgers.append({
            "path": str(view.path),
            "verified": view.verification is not None,
            "ok": None if view.verification is None else view.verification.ok,
            "verification": verification_text(view),
            "issues": [str(i) for i in view.verification.issues] if view.verification else [],
            "entries": [{"line": n, "failed": n in failed, "statement": text,
                         "signer_name": view.signer_name(e), **e.model_dump(mode="json")}
                        for n, e, text in view.numbered()],
        })
    rows = [{**r.__dict__, "remaining": r.remaining} for r in rollup(views, filters)]
    return {"unverified": any(v.verification is None for v in views), "rollup": rows,
            "unprotected_releases": unprotected(views, filters), "ledgers": ledgers}


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
