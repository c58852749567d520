"""``gt-secure ledger verify|show|report|export|keygen``: the compliance officer's commands."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from gt_secure.errors import GtSecureError
from gt_secure.ledger.entry import LedgerEntry


def _entries(path: Path) -> list[LedgerEntry]:
    """Intact entries; a torn tail is reported on stderr, not fatal, for read-only views."""
    from gt_secure.ledger.store import Ledger

    entries, torn = Ledger(path).scan()
    if torn is not None:
        print(f"warning: {path} line {torn.line} is torn ({torn.length} bytes, interrupted "
              "append); showing the intact entries before it", file=sys.stderr)
    return entries


def _verify(args: argparse.Namespace) -> int:
    from gt_secure.ledger.signing import load_trusted_keys
    from gt_secure.ledger.verify import Tolerance, verify_ledger

    report = verify_ledger(args.ledger, load_trusted_keys(args.trusted_keys),
                           Tolerance(args.rtol, args.atol))
    for issue in report.issues:
        print(f"FAIL {issue}")
    print(report.summary())
    return 0 if report.ok else 1


def _show(args: argparse.Namespace) -> int:
    from gt_secure.ledger.report import show_table

    show_table(_entries(args.ledger))
    return 0


def _report(args: argparse.Namespace) -> int:
    from gt_secure.ledger.report import html_report

    verification = None
    if args.trusted_keys:
        from gt_secure.ledger.signing import load_trusted_keys
        from gt_secure.ledger.verify import verify_ledger

        verification = verify_ledger(args.ledger, load_trusted_keys(args.trusted_keys))
    text = html_report(_entries(args.ledger), f"Privacy ledger {args.ledger.name}", verification)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from gt_secure.ledger.report import export

    text = export(_entries(args.ledger), args.format)
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
    return 0


def _keygen(args: argparse.Namespace) -> int:
    from gt_secure.ledger.signing import generate_key, key_id, save_keypair

    key = generate_key()
    private, public = save_keypair(key, args.out_dir, args.owner)
    print(f"key id {key_id(key.public_key())}: private {private} (0600), public {public}")
    return 0


def _guarded(func: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            return int(func(args))
        except (GtSecureError, OSError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2

    return run


def register(subparsers: Any) -> None:
    """Add the ``ledger`` command and its sub-commands."""
    parser = subparsers.add_parser("ledger", help="verify, show, report and export the ledger")
    verbs = parser.add_subparsers(dest="ledger_command", required=True)

    def add(name: str, func: Any, help_text: str) -> argparse.ArgumentParser:
        sub = verbs.add_parser(name, help=help_text)
        sub.set_defaults(func=_guarded(func))
        if name != "keygen":
            sub.add_argument("--ledger", type=Path, required=True, help="ledger JSONL file")
        return sub

    verify = add("verify", _verify, "check chain, signatures, schema and every epsilon")
    verify.add_argument("--trusted-keys", nargs="+", required=True, metavar="PATH",
                        help="directories of <owner>.pub.pem files, or such files")
    verify.add_argument("--rtol", type=float, default=0.05, help="relative accountant tolerance")
    verify.add_argument("--atol", type=float, default=0.05, help="absolute accountant tolerance")
    add("show", _show, "table of epsilon spent vs budget per organization and unit")
    report = add("report", _report, "self-contained HTML report")
    report.add_argument("--out", type=Path, default=Path("ledger_report.html"))
    report.add_argument("--trusted-keys", nargs="+", metavar="PATH",
                        help="verify first and include the result")
    export = add("export", _export, "export entries as CSV or JSON")
    export.add_argument("--format", choices=("csv", "json"), default="json")
    export.add_argument("--out", type=Path, default=None, help="file (default: stdout)")
    keygen = add("keygen", _keygen, "create an Ed25519 signing key pair for an owner")
    keygen.add_argument("--owner", required=True, help="organization or provider id")
    keygen.add_argument("--out-dir", type=Path, required=True)
