"""bench/aggregation.py: a tiny run, the table, and the docs section it rewrites."""

from __future__ import annotations

from pathlib import Path

from bench.aggregation import HEADING, markdown, run, table_rows, write_section


def test_tiny_run_and_section_rewrite(tmp_path: Path) -> None:
    # Prepare
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n## Utility\n\nkeep me\n\n## Aggregation\n\nold\n\n## Z\n\nz\n")
    # Execute
    rows, keygen = run([1000], [3])
    section = markdown(rows, keygen, "python -m bench.aggregation --sizes 1e3 --orgs 3")
    write_section(section, path=doc)
    write_section(section, path=doc)  # idempotent
    # Assert
    assert [r.mode for r in rows] == ["plain", "secagg+", "ckks"]
    assert all(r.error < 1e-4 for r in rows)
    assert [c[9] for c in table_rows(rows)][0] == "1.00x"
    text = doc.read_text()
    assert text.count(HEADING) == 1 and "keep me" in text and "## Z\n\nz" in text
    assert "old" not in text and "| 1e+03 | 3 | ckks |" in text
