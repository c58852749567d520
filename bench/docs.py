"""Write one ``## ...`` section of docs/benchmarks.md, leaving the other sections untouched."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def write_section(section: str, path: Path = DOC) -> None:
    """Replace (or append) the section whose heading is ``section``'s first line."""
    heading = section.splitlines()[0]
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1).rstrip("\n") + "\n"
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


RESULTS = DOC.parent / "results"


def _number(cell: str) -> float | str:
    """``"1.75x"`` -> 1.75, ``"12.3"`` -> 12.3; anything else stays text."""
    text = cell.strip().rstrip("x").replace(",", "")
    try:
        return float(text)
    except ValueError:
        return cell


def table_records(columns: list[str] | tuple[str, ...], rows: list[list[str]]) -> list[dict]:
    """A printed table's rows as ``{column: number or text}`` records."""
    return [{c: _number(v) for c, v in zip(columns, row, strict=True)} for row in rows]


def write_results(name: str, payload: dict) -> Path:
    """Write ``docs/results/<name>.json`` (the numbers a bench printed, for target checks)."""
    import json
    import os
    import platform
    import time

    path = RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"date": time.strftime("%Y-%m-%d"), "machine": platform.machine(),
            "cpu_count": os.cpu_count()}
    path.write_text(json.dumps(meta | payload, indent=2) + "\n")
    return path
