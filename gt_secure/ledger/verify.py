"""Verify a ledger file: chain, signatures, schema, lineage, and every epsilon recomputed twice.

For each line, in order:

1. parse + schema (pydantic, unknown fields rejected) and canonical form (the line must equal
   the canonical JSON of what it parses to, so any byte change that keeps the JSON valid is seen);
2. hash chain: ``prev_hash`` equals SHA-256 of the previous line's raw bytes;
3. signature: Ed25519 by a trusted key whose owner is the entry's ``org_id``;
4. lineage: ids and ``parents`` (see :mod:`gt_secure.ledger.rules`);
5. epsilon (release entries): ``epsilon_spent`` and ``epsilon_total`` are recomputed with Opacus
   and must match the recorded values to ``RECORD_RTOL`` (relative), the total must be within the
   budget, and both are recomputed independently with dp-accounting (``rdp`` entries with its RDP
   accountant, ``prv`` entries with its PLD accountant). Disagreement beyond :class:`Tolerance`
   (default: relative 5% *or* absolute 0.05, whichever is looser) is reported. On the tested
   grid (epsilon 0.03 to 40) the implementations agree within 1% relative or 0.011 absolute (PRV
   reports an upper bound with ``eps_error=0.01``); beyond epsilon ~40 the two RDP order grids
   differ by several percent and are flagged, which is the point of an independent check.

Line 1 is the signed header (owner, origin, budget per unit): every release must be the owner's
and record the header's budget. Then the log: the owner's checkpoint (``<ledger>.checkpoint``)
and any checkpoint or receipt given by the caller must be extended by the ledger (see
:mod:`gt_secure.ledger.logcheck`: truncation, rollback, deletion and forks are reported); lines
past the owner's checkpoint are reported as uncommitted. Every issue names the line number
(0: the file) and, when the line still parses as JSON, its ``release_id``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from gt_secure.errors import InvalidFieldError, LedgerIntegrityError
from gt_secure.ledger import budget, logcheck, rules
from gt_secure.ledger._model import as_invalid_field
from gt_secure.ledger.accountant import REFERENCE_METHOD, reference_epsilon
from gt_secure.ledger.entry import GENESIS_HASH, LedgerEntry, sha256_hex
from gt_secure.ledger.header import LedgerHeader
from gt_secure.ledger.log import LedgerScan, checkpoint_path, split_lines
from gt_secure.ledger.merkle import MerkleTree
from gt_secure.ledger.prefetch import prefetch, release_jobs
from gt_secure.ledger.signing import TrustedKey, verify_signature
from gt_secure.ledger.verify_cache import AccountingCache, Values

RECORD_RTOL = 1e-6


@dataclass(frozen=True)
class Tolerance:
    """Agreement between two accountants: ``|a - b| <= max(absolute, relative * max(a, b))``."""

    relative: float = 0.05
    absolute: float = 0.05

    def agree(self, a: float, b: float) -> bool:
        """Whether ``a`` and ``b`` agree within this tolerance (inf agrees only with inf)."""
        if math.isinf(a) or math.isinf(b):
            return a == b
        return abs(a - b) <= max(self.absolute, self.relative * max(abs(a), abs(b)))


@dataclass(frozen=True)
class Issue:
    """One failed check, naming the entry."""

    line: int
    release_id: str | None
    check: str
    message: str

    def __str__(self) -> str:
        rid = f" release_id={self.release_id!r}" if self.release_id else ""
        return f"line {self.line}{rid}: [{self.check}] {self.message}"


@dataclass(frozen=True)
class EpsilonCheck:
    """Recorded and recomputed epsilon of one release entry."""

    line: int
    release_id: str
    org_id: str
    unit: str
    recorded_spent: float
    opacus_spent: float
    reference_spent: float
    recorded_total: float
    opacus_total: float
    reference_total: float


@dataclass(frozen=True)
class VerifyReport:
    """Outcome of :func:`verify_ledger`."""

    path: Path
    lines: int
    entries: int
    issues: tuple[Issue, ...]
    epsilon_checks: tuple[EpsilonCheck, ...] = field(default=())
    notes: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """True when no check failed."""
        return not self.issues

    def summary(self) -> str:
        """One line for humans."""
        if self.ok:
            extra = f" ({'; '.join(self.notes)})" if self.notes else ""
            return f"OK: {self.entries} entries verified in {self.path}{extra}"
        return f"FAILED: {len(self.issues)} issue(s) in {self.path}; first: {self.issues[0]}"


def _release_id_of(raw: bytes) -> str | None:
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    value = obj.get("release_id") if isinstance(obj, dict) else None
    return value if isinstance(value, str) else None


def _close(recorded: float | None, recomputed: float) -> bool:
    if recorded is None:
        return False
    return abs(recorded - recomputed) <= RECORD_RTOL * max(1.0, abs(recomputed))


def _recompute(previous: list[LedgerEntry], entry: LedgerEntry) -> Values:
    """Opacus spent/total, then dp-accounting's reference spent/total, of ``entry``."""
    assert entry.accountant is not None and entry.delta is not None and entry.unit is not None
    projection = budget.project(previous, entry.org_id, entry.mechanisms, entry.delta,
                                entry.accountant)
    method = REFERENCE_METHOD[entry.accountant]
    history = [m for e in budget.releases_of(previous, entry.org_id, entry.unit)
               for m in e.mechanisms] + list(entry.mechanisms)
    return (projection.epsilon_spent, projection.epsilon_total,
            reference_epsilon(entry.mechanisms, entry.delta, method),
            reference_epsilon(history, entry.delta, method))


def _check_epsilon(
    previous: list[LedgerEntry], entry: LedgerEntry, line: int, tolerance: Tolerance,
    cache: AccountingCache | None,
) -> tuple[list[Issue], EpsilonCheck | None]:
    def issue(check: str, message: str) -> Issue:
        return Issue(line, entry.release_id, check, message)

    assert entry.accountant is not None and entry.unit is not None
    values = cache.get() if cache is not None else None
    if values is None:
        try:
            values = _recompute(previous, entry)
        except InvalidFieldError as err:
            return [issue("epsilon", str(err))], None
        if cache is not None:
            cache.put(values)
    spent, total, ref_spent, ref_total = values
    issues = []
    if not _close(entry.epsilon_spent, spent):
        issues.append(issue("epsilon", f"epsilon_spent={entry.epsilon_spent} but Opacus "
                            f"{entry.accountant} gives {spent}"))
    if not _close(entry.epsilon_total, total):
        issues.append(issue("epsilon", f"epsilon_total={entry.epsilon_total} but Opacus "
                            f"{entry.accountant} gives {total}"))
    if entry.budget_epsilon is not None and not total <= entry.budget_epsilon:
        issues.append(issue("budget", f"epsilon_total={total} exceeds "
                            f"budget_epsilon={entry.budget_epsilon}"))
    method = REFERENCE_METHOD[entry.accountant]
    for name, ours, ref in (("epsilon_spent", spent, ref_spent),
                            ("epsilon_total", total, ref_total)):
        if not tolerance.agree(ours, ref):
            issues.append(issue("reference", f"{name}: Opacus {entry.accountant} {ours:.6g} vs "
                                f"dp-accounting {method} {ref:.6g} disagree beyond {tolerance}"))
    check = EpsilonCheck(line, entry.release_id, entry.org_id, entry.unit, entry.epsilon_spent,
                         spent, ref_spent, entry.epsilon_total or 0.0, total, ref_total)
    return issues, check


def verify_ledger(
    path: str | Path,
    trusted_keys: Mapping[str, TrustedKey],
    tolerance: Tolerance | None = None,
    checkpoint: str | None = None,
    receipt: str | None = None,
    cache: bool = False,
) -> VerifyReport:
    """Check every line of the ledger at ``path``; never raises on a bad ledger, reports it.

    ``checkpoint`` (signed by the owner) or ``receipt`` (also cosigned by another trusted party)
    is a signed checkpoint kept outside the ledger: the ledger must extend it. ``cache`` reuses
    this machine's own earlier recomputations of unchanged prefixes (:mod:`.verify_cache`).
    """
    path = Path(path)
    tolerance = tolerance or Tolerance()
    scan = split_lines(path.read_bytes())
    trusted = dict(trusted_keys)
    header, problems = logcheck.header_problems(scan.lines, trusted)
    issues = [Issue(line, None, check, message) for line, check, message in problems]
    checks: list[EpsilonCheck] = []
    parsed: list[LedgerEntry] = []
    expected_prev = sha256_hex(scan.lines[0]) if scan.lines else GENESIS_HASH
    if scan.lines:
        _prefetch(scan.lines, cache)
    memo = AccountingCache(scan.lines[0]) if cache and scan.lines else None
    if memo is not None:
        memo.advance(scan.lines[0])
    for number, raw in enumerate(scan.lines[1:], start=2):
        rid = _release_id_of(raw)
        prev, expected_prev = expected_prev, sha256_hex(raw)
        if memo is not None:
            memo.advance(raw)
        try:
            entry = LedgerEntry.model_validate_json(raw)
        except ValidationError as err:
            issues.append(Issue(number, rid, "schema", str(as_invalid_field(err))))
            continue
        if entry.canonical_line() != raw:
            issues.append(Issue(number, rid, "canonical", "line is not canonical JSON"))
        if entry.prev_hash != prev:
            issues.append(Issue(number, rid, "chain", "prev_hash does not match the previous "
                                "line"))
        try:
            verify_signature(trusted, entry.signer, entry.org_id, entry.signing_payload(),
                             entry.signature, number)
        except LedgerIntegrityError as err:
            issues.append(Issue(number, rid, "signature", err.reason))
        for problem in rules.lineage_problems(parsed, entry):
            issues.append(Issue(number, rid, "lineage", problem))
        if entry.kind == "release":
            issues.extend(Issue(number, rid, check, message)
                          for check, message in _header_rules(header, entry))
            found, check = _check_epsilon(parsed, entry, number, tolerance, memo)
            issues.extend(found)
            if check is not None:
                checks.append(check)
        elif entry.kind == "unprotected_release" and header is not None \
                and entry.org_id != header.owner:
            issues.append(Issue(number, rid, "owner", f"release of org_id={entry.org_id!r} in "
                                f"the ledger of {header.owner!r}"))
        parsed.append(entry)
    if memo is not None:
        memo.save()
    notes: list[str] = []
    if header is not None:
        found_log, notes = _log_issues(path, scan, header, trusted, checkpoint, receipt)
        issues.extend(found_log)
    elif scan.torn is not None:
        issues.append(Issue(scan.torn.line, None, "torn", f"last line has no trailing newline "
                            f"({scan.torn.length} bytes): an append was interrupted"))
    return VerifyReport(path, len(scan.lines) + (scan.torn is not None), len(parsed),
                        tuple(issues), tuple(checks), tuple(notes))


def _prefetch(lines: Sequence[bytes], cache: bool) -> None:
    """Evaluate in parallel the slow epsilons the checks below will ask for (those this machine
    has not cached): a parse-only pass over the lines, then :func:`prefetch`."""
    memo = AccountingCache(lines[0]) if cache else None  # a scratch copy, never saved
    if memo is not None:
        memo.advance(lines[0])
    parsed: list[LedgerEntry] = []
    jobs = []
    for raw in lines[1:]:
        if memo is not None:
            memo.advance(raw)
        try:
            entry = LedgerEntry.model_validate_json(raw)
        except ValidationError:
            continue
        if entry.kind == "release" and (memo is None or memo.get() is None):
            jobs += release_jobs(parsed, entry)
        parsed.append(entry)
    prefetch(jobs)


def _header_rules(header: LedgerHeader | None, entry: LedgerEntry) -> list[tuple[str, str]]:
    if header is None:
        return []
    found = []
    if entry.org_id != header.owner:
        found.append(("owner", f"release of org_id={entry.org_id!r} in the ledger of "
                      f"{header.owner!r}"))
    allowed = header.budget.get(entry.unit)  # type: ignore[arg-type]
    if entry.budget_epsilon != allowed:
        found.append(("budget", f"budget_epsilon={entry.budget_epsilon} but the signed header "
                      f"gives {allowed} for unit={entry.unit!r}"))
    return found


def _log_issues(path: Path, scan: LedgerScan, header: LedgerHeader,
                trusted: dict[str, TrustedKey], checkpoint: str | None,
                receipt: str | None) -> tuple[list[Issue], list[str]]:
    tree = MerkleTree.of_lines(scan.lines)
    local = checkpoint_path(path)
    problems: list[tuple[int, str, str]] = []
    notes: list[str] = []
    committed: int | None = None
    if local.exists():
        committed, found = logcheck.checkpoint_problems(
            scan.lines, tree, header, local.read_text(encoding="utf-8"),
            f"checkpoint {local.name}", trusted)
        problems.extend(found)
    elif len(scan.lines) > 1 or scan.torn is not None:
        problems.append((2, "checkpoint", f"{local.name} is missing: nothing after the header is "
                         "committed"))
    for text, what, cosigned in ((checkpoint, "the given checkpoint", False),
                                 (receipt, "the given receipt", True)):
        if text is not None:
            size, found = logcheck.checkpoint_problems(scan.lines, tree, header, text, what,
                                                       trusted, cosigned)
            problems.extend(found)
            if not found:
                notes.append(f"extends {what} of size {size}")
    if committed is not None and (len(scan.lines) > committed or scan.torn is not None):
        extra = max(len(scan.lines) - committed, 0)
        problems.append((committed + 1, "uncommitted", f"{extra} complete line(s)"
                         f"{' and a torn line' if scan.torn else ''} after the {committed} the "
                         "checkpoint commits to: an interrupted append (the next append or "
                         "Ledger.repair(confirm=True) drops them)"))
    return [Issue(line, None, check, message) for line, check, message in problems], notes
