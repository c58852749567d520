"""``gt-secure ledger verify|show|report|export|keygen``: the compliance officer's commands.

``show`` and ``report`` verify every ledger first (``--trusted-keys``) or, with
``--unverified``, stamp their output UNVERIFIED. Exit codes: 0 verified (or read unverified),
1 a verification failed, 2 usage or input error (missing or empty ledger, bad option).
None of these commands imports torch.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gt_secure.cli import ledger_log
from gt_secure.errors import InvalidFieldError

if TYPE_CHECKING:
    from gt_secure.ledger.entry import LedgerEntry
    from gt_secure.ledger.report import Filters, LedgerView


def _read(path: Path) -> tuple[list[LedgerEntry], tuple[int, ...], dict[str, float]]:
    """Entries, their line numbers and the header's budgets; warnings on stderr. A missing or
    empty ledger is an input error (exit 2)."""
    from gt_secure.ledger.report import read_ledger

    found = read_ledger(path, "--ledger")
    if found.torn_line is not None:
        print(f"warning: {path} line {found.torn_line} is torn (interrupted append); showing "
              "the intact entries before it", file=sys.stderr)
    if found.unreadable:
        print(f"warning: {path} line(s) {list(found.unreadable)} are not ledger entries; not "
              "shown", file=sys.stderr)
    return found.entries, found.lines, found.budgets


def _entries(path: Path) -> list[LedgerEntry]:
    return _read(path)[0]


def _policy_keys(policy_file: Path) -> list[Path]:
    """The key files or folders the organization's policy names (``ledger_keys``, relative to
    the policy file), else the ``*.pub.pem`` files beside the policy (its state directory)."""
    from gt_secure.ledger.signing import PUBLIC_SUFFIX
    from gt_secure.organization.policy import load_policy

    try:
        policy = load_policy(policy_file)
    except InvalidFieldError as err:
        if err.field != "policy-file":
            raise
        raise InvalidFieldError("--policy", str(policy_file), err.constraint) from None
    base = policy_file.parent
    paths = ([base / name for name in policy.ledger_keys] if policy.ledger_keys
             else sorted(base.glob(f"*{PUBLIC_SUFFIX}")))
    missing = [str(p) for p in paths if not p.exists()]
    if missing or not paths:
        raise InvalidFieldError("--policy", str(policy_file), "a policy whose ledger_keys name "
                                f"existing public keys (missing: {missing}), or with "
                                f"<owner>{PUBLIC_SUFFIX} files beside it" if missing else
                                f"a policy with ledger_keys set or <owner>{PUBLIC_SUFFIX} files "
                                "beside it (none found)")
    return paths


def _trusted(args: argparse.Namespace) -> dict[str, Any] | None:
    option, paths = "--trusted-keys", getattr(args, "trusted_keys", None)
    if getattr(args, "policy", None):
        option, paths = "--policy", _policy_keys(args.policy)
    if not paths:
        if getattr(args, "unverified", False):
            return None
        raise InvalidFieldError("--trusted-keys", None, "given (directories or .pub.pem files "
                                "of the signers), or --policy naming the organization's policy, "
                                "to verify first, or pass --unverified")
    from gt_secure.ledger.signing import load_trusted_keys

    try:
        return dict(load_trusted_keys(paths))
    except ValueError as err:  # cryptography: not a PEM public key
        raise InvalidFieldError(option, [str(p) for p in paths], "directories or files of "
                                f"PEM Ed25519 public keys ({err})") from err


def _views(args: argparse.Namespace) -> list[LedgerView]:
    from gt_secure.ledger.report import LedgerView
    from gt_secure.ledger.verify import Tolerance, verify_ledger

    trusted = _trusted(args)
    signers = {kid: key.owner for kid, key in (trusted or {}).items()}
    views = []
    for path in args.ledger:
        entries, lines, budgets = _read(path)
        check = None if trusted is None else verify_ledger(
            path, trusted, Tolerance(args.rtol, args.atol), cache=not args.no_cache,
            **ledger_log.external(args))
        views.append(LedgerView(path, entries, check, signers, budgets, lines))
    return views


def _time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO 8601 date or time such as 2026-11-26 or 2026-11-26T12:00, got "
            f"{text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _filters(args: argparse.Namespace) -> Filters:
    from gt_secure.ledger.report import Filters

    if args.since and args.until and args.since > args.until:
        raise InvalidFieldError("--since", args.since.isoformat(), "not after --until")
    return Filters(args.since, args.until, args.unit)


def _failed(views: list[LedgerView]) -> bool:
    return any(v.verification is not None and not v.verification.ok for v in views)


def _verify(args: argparse.Namespace) -> int:
    from gt_secure.ledger.report import view_json

    views = _views(args)
    if args.format == "json":
        data = view_json(views)
        print(json.dumps({"ok": not _failed(views), "ledgers": [
            {k: v for k, v in ledger.items() if k != "entries"} for ledger in data["ledgers"]]},
            indent=2))
    else:
        for view in views:
            assert view.verification is not None
            for issue in view.verification.issues:
                print(f"FAIL {issue}")
            print(view.verification.summary())
    return 1 if _failed(views) else 0


def _show(args: argparse.Namespace) -> int:
    from gt_secure.ledger.report import show_table, view_json

    views = _views(args)
    if args.format == "json":
        print(json.dumps(view_json(views, _filters(args)), indent=2))
    else:
        show_table(views, _filters(args))
    return 1 if _failed(views) else 0


def _report(args: argparse.Namespace) -> int:
    from gt_secure.ledger.report_html import html_report

    views = _views(args)
    names = ", ".join(p.name for p in args.ledger)
    text = html_report(views, f"Privacy ledger report: {names}", _filters(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    state = ("VERIFICATION FAILED" if _failed(views) else
             "UNVERIFIED" if args.unverified else "verified")
    print(f"wrote {args.out} ({state})")
    if args.pdf is not None:
        from gt_secure.ledger.report_html import chromium

        chromium(args.out, pdf=args.pdf)
        print(f"wrote {args.pdf} ({state})")
    return 1 if _failed(views) else 0


def _export(args: argparse.Namespace) -> int:
    from gt_secure.ledger.report import export

    text = export(_entries(args.ledger), args.format)
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
    return 0


def _keygen(args: argparse.Namespace) -> int:
    """Private key in ``<out-dir>/private/`` (0700 folder, 0600 file), public key beside it."""
    from gt_secure.ledger.signing import PUBLIC_SUFFIX, generate_key, key_id, save_keypair

    public_target = args.out_dir / f"{args.owner}{PUBLIC_SUFFIX}"
    if public_target.exists():
        raise InvalidFieldError("--out-dir", str(args.out_dir), f"a directory without "
                                f"{public_target.name} (keys are never overwritten)")
    private_dir = args.out_dir / "private"
    private_dir.mkdir(parents=True, exist_ok=True)
    private_dir.chmod(0o700)
    key = generate_key()
    private, public = save_keypair(key, private_dir, args.owner)
    public.replace(public_target)
    print(f"key id {key_id(key.public_key())}: private {private} (0600, stays with "
          f"{args.owner}), public {public_target} (give it to whoever verifies the ledger)")
    return 0


def _add_reading(sub: argparse.ArgumentParser, keys: str = "or-unverified") -> None:
    """``--ledger`` (one for ``keys='none'``, else several) and the trusted-key options."""
    several = keys != "none"
    sub.add_argument("--ledger", type=Path, required=True, nargs="+" if several else None,
                     metavar="PATH", help="ledger JSONL file(s); several give a roll-up"
                     if several else "ledger JSONL file")
    sub.set_defaults(unverified=False, trusted_keys=None, policy=None, no_cache=False)
    if not several:
        return
    group = sub.add_mutually_exclusive_group(required=keys == "required")
    group.add_argument("--trusted-keys", nargs="+", metavar="PATH",
                       help="directories of <owner>.pub.pem files, or such files, of every "
                       "signer (organizations, provider)")
    group.add_argument("--policy", type=Path, metavar="FILE",
                       help="the organization's policy.toml: trust the keys its ledger_keys "
                       "names, else the <owner>.pub.pem files beside it")
    if keys == "or-unverified":
        group.add_argument("--unverified", action="store_true",
                           help="read without verifying; the output is stamped UNVERIFIED")
    sub.add_argument("--rtol", type=float, default=0.05,
                     help="relative tolerance between the two accountants (default: 0.05)")
    sub.add_argument("--atol", type=float, default=0.05,
                     help="absolute tolerance between the two accountants (default: 0.05)")
    sub.add_argument("--no-cache", action="store_true",
                     help="recompute every epsilon; by default lines whose prefix this machine "
                     "verified before reuse its own earlier recomputation (~/.cache/gt-secure)")


def _add_filters(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--since", type=_time, help="count releases from this UTC date/time")
    sub.add_argument("--until", type=_time, help="count releases up to this UTC date/time")
    sub.add_argument("--unit", choices=("example", "organization"),
                     help="only this privacy unit")


def register(subparsers: Any) -> None:
    """Add the ``ledger`` command and its sub-commands."""
    parser = subparsers.add_parser("ledger", help="verify, show, report and export ledgers")
    verbs = parser.add_subparsers(dest="ledger_command", required=True, metavar="ACTION")

    def add(name: str, func: Any, help_text: str) -> argparse.ArgumentParser:
        sub = verbs.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(func=func, needs_torch=False)
        return sub

    verify = add("verify", _verify, "check chain, signatures, schema and every epsilon; exit 1 "
                 "when a check fails")
    _add_reading(verify, keys="required")
    verify.add_argument("--format", choices=("table", "json"), default="table",
                        help="output format (default: table)")
    ledger_log.add_verify_options(verify)
    show = add("show", _show, "epsilon spent vs budget per organization and unit (verified "
               "first); exit 1 when verification fails")
    _add_reading(show)
    _add_filters(show)
    show.add_argument("--format", choices=("table", "json"), default="table",
                      help="table, or JSON with every entry's plain-language statement")
    report = add("report", _report, "self-contained HTML report (verified first); exit 1 when "
                 "verification fails")
    _add_reading(report)
    _add_filters(report)
    report.add_argument("--out", type=Path, default=Path("ledger_report.html"),
                        help="HTML file to write (default: ledger_report.html)")
    report.add_argument("--pdf", type=Path, default=None,
                        help="also print the report to this PDF (headless Chromium)")
    export = add("export", _export, "export one ledger's entries as CSV or JSON (unverified)")
    _add_reading(export, keys="none")
    export.add_argument("--format", choices=("csv", "json"), default="json",
                        help="output format (default: json)")
    export.add_argument("--out", type=Path, default=None, help="file (default: stdout)")
    keygen = add("keygen", _keygen, "create an Ed25519 signing key pair for an owner")
    keygen.add_argument("--owner", required=True, help="organization or provider id")
    keygen.add_argument("--out-dir", type=Path, required=True,
                        help="directory for <owner>.pub.pem (to share) and private/"
                        "<owner>.key.pem (0600, in a 0700 folder; never share)")
    ledger_log.register(add)
