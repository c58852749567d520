"""Check an audit report directory: ``audit.json`` carries its hash, ``audit.html`` is its page.

:func:`verify_report` recomputes ``report_sha256`` (SHA-256 of ``audit.json`` without that key),
re-derives every computed field (verdict, strength, positive control) from the recorded
results, and re-renders the HTML page from the JSON it embeds: the page must equal it byte for
byte, so an edit of what a reader sees (a FAIL turned into a PASS, a figure swapped) is found.
The figures are re-drawn with this machine's matplotlib; another version may draw them
differently, which is then reported as a difference of the page.
A SHA-256 alone can be recomputed by whoever edits both files; compare it with the value the
auditor published (``expected``) to bind the report to the audit that was run.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gt_secure.errors import InvalidFieldError

_EMBED = re.compile(r"<script type='application/json' id='([\w-]+)'>(.*?)</script>", re.S)


@dataclass(frozen=True)
class ReportCheck:
    """Outcome of :func:`verify_report`: the recorded hash and every problem found."""

    directory: Path
    sha256: str | None
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when no check failed."""
        return not self.problems


def _first_difference(a: str, b: str) -> str:
    line = next((i for i, (x, y) in enumerate(zip(a.splitlines(), b.splitlines(), strict=False),
                                                start=1) if x != y),
                min(a.count("\n"), b.count("\n")) + 1)
    return f"first difference on line {line}"


def _load(data: dict[str, Any]) -> Any:
    from gt_secure.audit.report import AuditReport

    return AuditReport.model_validate(data)  # computed keys (verdict, ...) are ignored


def verify_report(directory: str | Path, expected: str | None = None) -> ReportCheck:
    """Check ``directory``'s audit.json and audit.html; raise only when a file is missing."""
    from gt_secure.audit.report import EMBED_ID, embeddable, report_hash

    directory = Path(directory)
    paths = {name: directory / name for name in ("audit.json", "audit.html")}
    for name, path in paths.items():
        if not path.is_file():
            raise InvalidFieldError("DIR", str(directory), f"an audit report directory (no {name})")
    text = paths["audit.json"].read_text(encoding="utf-8")
    page = paths["audit.html"].read_text(encoding="utf-8")
    problems: list[str] = []
    try:
        data = json.loads(text)
        recorded = data.get("report_sha256") if isinstance(data, dict) else None
    except ValueError as err:
        return ReportCheck(directory, None, (f"audit.json is not JSON ({err})",))
    if not isinstance(recorded, str):
        return ReportCheck(directory, None, ("audit.json has no report_sha256",))
    if report_hash(data) != recorded:
        problems.append(f"audit.json: report_sha256 {recorded} does not match its content "
                        f"(recomputed {report_hash(data)})")
    if expected is not None and expected.lower() != recorded:
        problems.append(f"audit.json: report_sha256 {recorded} is not the expected {expected}")
    try:
        report = _load(data)
    except ValidationError as err:
        return ReportCheck(directory, recorded, (*problems, f"audit.json is not an audit report "
                                                 f"({err.error_count()} schema errors)"))
    wrong = [k for k, v in report.computed().items() if data.get(k) != v]
    if wrong:
        problems.append(f"audit.json: its {', '.join(wrong)} do not follow from its results")
    embedded = _EMBED.search(page)
    if embedded is None or embedded.group(1) != EMBED_ID:
        problems.append("audit.html: no embedded report JSON")
    elif embedded.group(2) != embeddable(text):
        problems.append("audit.html: its embedded report differs from audit.json")
    if f"<code id='report-sha256'>{recorded}</code>" not in page:
        problems.append(f"audit.html: does not show report SHA-256 {recorded}")
    rendered = report.to_html(text)
    if rendered != page:
        problems.append("audit.html: differs from the page its report renders to "
                        f"({_first_difference(rendered, page)})")
    return ReportCheck(directory, recorded, tuple(problems))
