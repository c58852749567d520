"""Append-only, hash-chained, signed JSONL ledger file.

Writes are serialised by an exclusive ``fcntl.flock`` on ``<ledger>.lock`` and are crash-safe:
the file is opened ``O_APPEND``, each entry is one ``write`` of the full line including its
newline, then the file is fsynced (and its directory, when the write created the file). A crash
can therefore leave at most a *torn tail*: a last line without its newline. Reading reports it
(:class:`TornTail`) with every earlier entry intact; :meth:`Ledger.repair` truncates it only when
called with ``confirm=True``. Appending to a ledger with a torn tail is refused.

Policy checks (budget, ids, lineage) run under the lock before any byte is written, so a refused
release leaves the ledger byte-identical.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from gt_secure.errors import InvalidFieldError, LedgerIntegrityError
from gt_secure.ledger import budget, rules
from gt_secure.ledger._model import as_invalid_field
from gt_secure.ledger.accountant import AccountantName, Mechanism
from gt_secure.ledger.entry import GENESIS_HASH, LedgerEntry, sha256_hex, utc_now
from gt_secure.ledger.signing import key_id, sign


@dataclass(frozen=True)
class TornTail:
    """A last line without its newline: an interrupted append."""

    line: int
    offset: int
    length: int


@dataclass(frozen=True)
class LedgerScan:
    """Complete lines (without newlines) and the torn tail, if any."""

    lines: tuple[bytes, ...]
    torn: TornTail | None


def split_lines(data: bytes) -> LedgerScan:
    """Split ledger bytes into complete lines and a possible torn tail."""
    parts = data.split(b"\n")
    tail = parts.pop()
    torn = None
    if tail:
        torn = TornTail(line=len(parts) + 1, offset=len(data) - len(tail), length=len(tail))
    return LedgerScan(tuple(parts), torn)


def parse_entries(lines: Sequence[bytes]) -> list[LedgerEntry]:
    """Parse lines and check their hash chain (not signatures: see ``verify_ledger``)."""
    entries: list[LedgerEntry] = []
    prev_hash = GENESIS_HASH
    for number, raw in enumerate(lines, start=1):
        try:
            entry = LedgerEntry.model_validate_json(raw)
        except ValidationError as err:
            raise LedgerIntegrityError(number, f"invalid entry: {as_invalid_field(err)}") from err
        if entry.canonical_line() != raw:
            raise LedgerIntegrityError(number, "line is not canonical JSON")
        if entry.prev_hash != prev_hash:
            raise LedgerIntegrityError(number, "prev_hash does not match the previous line")
        prev_hash = sha256_hex(raw)
        entries.append(entry)
    return entries


def _torn_error(torn: TornTail, intact: int) -> LedgerIntegrityError:
    return LedgerIntegrityError(
        torn.line, f"torn last line ({torn.length} bytes, no trailing newline) after {intact} "
        "intact entries; an append was interrupted: run repair(confirm=True) to drop it")


class Ledger:
    """A privacy ledger stored at ``path`` (JSONL, one signed entry per line)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")

    def read_bytes(self) -> bytes:
        """The raw file contents (empty if the ledger does not exist yet)."""
        return self.path.read_bytes() if self.path.exists() else b""

    def scan(self) -> tuple[list[LedgerEntry], TornTail | None]:
        """Intact entries and the torn tail, if any; raise on any other corruption."""
        scan = split_lines(self.read_bytes())
        return parse_entries(scan.lines), scan.torn

    def entries(self) -> list[LedgerEntry]:
        """All entries; raise ``LedgerIntegrityError`` on a torn tail or corruption."""
        entries, torn = self.scan()
        if torn is not None:
            raise _torn_error(torn, len(entries))
        return entries

    def spent(self, org_id: str, unit: str) -> float:
        """Epsilon spent so far by ``org_id`` for privacy ``unit``."""
        return budget.spent(self.entries(), org_id, unit)

    def repair(self, confirm: bool = False) -> TornTail | None:
        """Drop a torn tail (only with ``confirm=True``); return it, or None if there was none."""
        with self._locked():
            scan = split_lines(self.read_bytes())
            parse_entries(scan.lines)
            if scan.torn is not None and confirm:
                with open(self.path, "r+b") as handle:
                    handle.truncate(scan.torn.offset)
                    handle.flush()
                    os.fsync(handle.fileno())
            return scan.torn

    def append_release(
        self,
        *,
        org_id: str,
        release_id: str,
        mechanisms: Sequence[Mechanism],
        delta: float,
        budget_epsilon: float,
        base_model_hash: str,
        update_vector_hash: str,
        data_fingerprint: str,
        signing_key: Ed25519PrivateKey,
        accountant: AccountantName = "rdp",
        round: int | None = None,
        timestamp: str | None = None,
    ) -> LedgerEntry:
        """Check the budget, then append a signed release entry (one privacy unit)."""

        def build(entries: list[LedgerEntry]) -> dict[str, Any]:
            projection = budget.enforce_budget(entries, org_id, mechanisms, delta,
                                               budget_epsilon, accountant)
            return dict(
                kind="release", org_id=org_id, release_id=release_id, round=round,
                unit=projection.unit, mechanisms=list(mechanisms), accountant=accountant,
                delta=delta, epsilon_spent=projection.epsilon_spent,
                epsilon_total=projection.epsilon_total, budget_epsilon=budget_epsilon,
                base_model_hash=base_model_hash, update_vector_hash=update_vector_hash,
                data_fingerprint=data_fingerprint, timestamp=timestamp or utc_now())

        return self._append(build, signing_key)

    def append_post_processing(
        self,
        *,
        org_id: str,
        release_id: str,
        parents: Sequence[str],
        base_model_hash: str,
        update_vector_hash: str,
        signing_key: Ed25519PrivateKey,
        round: int | None = None,
        timestamp: str | None = None,
    ) -> LedgerEntry:
        """Append a signed post-processing entry (no epsilon) derived from ``parents``."""

        def build(entries: list[LedgerEntry]) -> dict[str, Any]:
            return dict(
                kind="post_processing", org_id=org_id, release_id=release_id, round=round,
                epsilon_spent=0.0, parents=list(parents), base_model_hash=base_model_hash,
                update_vector_hash=update_vector_hash, timestamp=timestamp or utc_now())

        return self._append(build, signing_key)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _append(
        self, build: Callable[[list[LedgerEntry]], dict[str, Any]], key: Ed25519PrivateKey
    ) -> LedgerEntry:
        with self._locked():
            scan = split_lines(self.read_bytes())
            entries = parse_entries(scan.lines)
            if scan.torn is not None:
                raise _torn_error(scan.torn, len(entries))
            fields = build(entries)
            fields["prev_hash"] = sha256_hex(scan.lines[-1]) if scan.lines else GENESIS_HASH
            fields["signer"] = key_id(key.public_key())
            unsigned = LedgerEntry(**fields, signature="0" * 128)
            problems = rules.lineage_problems(entries, unsigned)
            if problems:
                raise InvalidFieldError("release_id", unsigned.release_id, "; ".join(problems))
            entry = unsigned.model_copy(update={"signature": sign(key, unsigned.signing_payload())})
            self._write_line(entry.canonical_line() + b"\n")
            return entry

    def _write_line(self, line: bytes) -> None:
        created = not self.path.exists()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            written = os.write(fd, line)
            if written != len(line):
                os.ftruncate(fd, size)
                raise OSError(f"short write to ledger {self.path} ({written}/{len(line)} bytes)")
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
