"""``gt-secure audit verify-report DIR``: check an audit report's hash and its HTML page.

Exit 0 when ``audit.json`` matches its ``report_sha256`` (and ``--sha256``, the value the
auditor published, when given) and ``audit.html`` is the page that JSON renders to; 1 when a
check fails (each problem printed); 2 when DIR holds no audit report.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register_verify_report(sub: Any) -> None:
    """Add ``audit verify-report``."""
    check = sub.add_parser("verify-report", help="check an audit report: audit.json against "
                           "its SHA-256, audit.html against the page it renders to; exit 1 "
                           "when a check fails",
                           description="Check an audit report directory written by audit run.")
    check.add_argument("dir", type=Path, metavar="DIR",
                       help="the folder holding audit.json and audit.html")
    check.add_argument("--sha256", metavar="HEX",
                       help="the report SHA-256 the auditor published; the report must carry it")
    check.set_defaults(func=_verify_report, needs_torch=False)


def _verify_report(args: argparse.Namespace) -> int:
    from gt_secure.audit.report_verify import verify_report

    found = verify_report(args.dir, args.sha256)
    for problem in found.problems:
        print(f"FAIL {problem}")
    if found.ok:
        print(f"OK: {args.dir} audit.json has report SHA-256 {found.sha256} and audit.html is "
              "its page")
        return 0
    print(f"FAILED: {len(found.problems)} problem(s) in {args.dir}")
    return 1
