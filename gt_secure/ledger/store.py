"""Append-only ledger file: signed header, hash-chained signed entries, a checkpoint per append.

Layout: line 1 is the :class:`~gt_secure.ledger.header.LedgerHeader` (owner, origin, budget per
privacy unit; written once by :meth:`Ledger.create`), every further line a signed
:class:`~gt_secure.ledger.entry.LedgerEntry` whose ``prev_hash`` chains it to the line before.
The lines are the leaves of an RFC 9162 Merkle tree; every append signs a new checkpoint
(origin, size, root; :mod:`gt_secure.ledger.note`) into ``<ledger>.checkpoint``.

An append is atomic: under an exclusive ``flock`` on ``<ledger>.lock`` it checks the committed
prefix against the checkpoint, writes the line (``O_APPEND``, fsync), then replaces the checkpoint
(temporary file, fsync, rename, directory fsync). The checkpoint is the commit record: after a
crash between the two writes the line is *uncommitted*, readers ignore it, and the next append
(or :meth:`Ledger.repair`) drops it. An append is also refused if the ledger does not extend a
receipt kept in ``<ledger>.receipts/`` (a rollback of both files). Policy checks (budget from
the header, owner, ids, lineage) run before any byte is written, so a refused release leaves
both files byte-identical.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gt_secure.errors import InvalidFieldError
from gt_secure.ledger import _files, budget, rules
from gt_secure.ledger.accountant import AccountantName, Mechanism, Unit, single_unit
from gt_secure.ledger.entry import LedgerEntry, sha256_hex, utc_now
from gt_secure.ledger.header import LedgerHeader
from gt_secure.ledger.log import (
    LedgerScan,
    LogState,
    TornTail,
    check_receipts,
    checkpoint_path,
    parse_entries,
    read_state,
    split_lines,
)
from gt_secure.ledger.merkle import leaf_hash
from gt_secure.ledger.note import Checkpoint, SignedCheckpoint, sign_checkpoint
from gt_secure.ledger.signing import key_id, sign

__all__ = ["Ledger", "LedgerScan", "TornTail", "parse_entries", "split_lines"]


class Ledger:
    """A privacy ledger stored at ``path`` (JSONL) with its checkpoint beside it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.checkpoint_path = checkpoint_path(self.path)

    @classmethod
    def create(cls, path: str | Path, *, owner: str, budget: Mapping[Unit, float],
               signing_key: Ed25519PrivateKey, origin: str | None = None) -> Ledger:
        """Write the signed header (budget per privacy unit) and the first checkpoint, once.

        Refused if a ledger or checkpoint already exists at ``path``: a header is never
        rewritten.
        """
        ledger = cls(path)
        header = LedgerHeader.create(owner, dict(budget), signing_key, origin)
        with ledger._locked():
            for existing in (ledger.path, ledger.checkpoint_path):
                if existing.exists():
                    raise InvalidFieldError("ledger", str(existing), "absent: a ledger header "
                                            "is written once and never rewritten")
            line = header.canonical_line()
            _files.create_exclusively(ledger.path, line + b"\n")
            signed = sign_checkpoint(Checkpoint(header.origin, 1, leaf_hash(line)), owner,
                                     signing_key)
            _files.replace_atomically(ledger.checkpoint_path, signed.text().encode())
        return ledger

    def ensure(self, *, owner: str, budget: Mapping[Unit, float],
               signing_key: Ed25519PrivateKey) -> Ledger:
        """This ledger, created with a header of ``budget`` (finite units only) if absent.

        An existing ledger keeps its header: a later, larger budget is never written.
        """
        if not self.path.exists():
            finite = {u: b for u, b in budget.items() if math.isfinite(b)}
            Ledger.create(self.path, owner=owner, budget=finite, signing_key=signing_key)
        return self

    def read_bytes(self) -> bytes:
        """The raw file contents (empty if the ledger does not exist yet)."""
        return self.path.read_bytes() if self.path.exists() else b""

    def state(self) -> LogState:
        """Header, committed lines and entries, tree and checkpoint (see :mod:`.log`)."""
        return read_state(self.path)

    def header(self) -> LedgerHeader:
        """The signed header."""
        return self.state().header

    def checkpoint(self) -> SignedCheckpoint:
        """The owner's latest signed checkpoint."""
        state = self.state()
        if state.signed is None:
            raise InvalidFieldError("checkpoint", str(self.checkpoint_path), "present")
        return state.signed

    def scan(self) -> tuple[list[LedgerEntry], TornTail | None]:
        """Committed entries and the uncommitted tail (interrupted append), if any; no ledger
        file yet: no entries."""
        if not self.path.exists():
            return [], None
        state = self.state()
        return list(state.entries), state.uncommitted

    def entries(self) -> list[LedgerEntry]:
        """Committed entries (the header excluded; none if the ledger does not exist yet);
        raise ``LedgerIntegrityError`` if corrupt."""
        return self.scan()[0]

    def spent(self, org_id: str, unit: str) -> float:
        """Epsilon spent so far by ``org_id`` for privacy ``unit``."""
        return budget.spent(self.entries(), org_id, unit)

    def repair(self, confirm: bool = False) -> TornTail | None:
        """Drop the uncommitted tail (only with ``confirm=True``); return it, or None."""
        with self._locked():
            tail = self.state().uncommitted
            if tail is not None and confirm:
                _files.truncate(self.path, tail.offset)
            return tail

    def append_release(
        self,
        *,
        org_id: str,
        release_id: str,
        mechanisms: Sequence[Mechanism],
        delta: float,
        base_model_hash: str,
        update_vector_hash: str,
        data_fingerprint: str,
        signing_key: Ed25519PrivateKey,
        accountant: AccountantName = "rdp",
        round: int | None = None,
        timestamp: str | None = None,
        protocol: str | None = None,
    ) -> LedgerEntry:
        """Check the header's budget, then append a signed release entry (one privacy unit)."""

        def build(state: LogState) -> dict[str, Any]:
            header = state.header
            _check_owner(org_id, header)
            unit = single_unit(mechanisms)
            limit = header.budget_of(unit) if unit is not None else 0.0
            projection = budget.enforce_budget(state.entries, org_id, mechanisms, delta, limit,
                                               accountant)
            return dict(
                kind="release", org_id=org_id, release_id=release_id, round=round,
                unit=projection.unit, mechanisms=list(mechanisms), accountant=accountant,
                delta=delta, epsilon_spent=projection.epsilon_spent,
                epsilon_total=projection.epsilon_total, budget_epsilon=limit,
                base_model_hash=base_model_hash, update_vector_hash=update_vector_hash,
                data_fingerprint=data_fingerprint, timestamp=timestamp or utc_now(),
                protocol=protocol)

        return self._append(build, signing_key, signing_key)

    def append_unprotected_release(
        self,
        *,
        org_id: str,
        release_id: str,
        base_model_hash: str,
        update_vector_hash: str,
        data_fingerprint: str,
        signing_key: Ed25519PrivateKey,
        round: int | None = None,
        timestamp: str | None = None,
        protocol: str | None = None,
    ) -> LedgerEntry:
        """Append a signed ``unprotected_release`` entry: a release without differential
        privacy (it protects neither records nor the dataset, and spends no budget)."""

        def build(state: LogState) -> dict[str, Any]:
            _check_owner(org_id, state.header)
            return dict(
                kind="unprotected_release", org_id=org_id, release_id=release_id, round=round,
                epsilon_spent=0.0, base_model_hash=base_model_hash,
                update_vector_hash=update_vector_hash, data_fingerprint=data_fingerprint,
                timestamp=timestamp or utc_now(), protocol=protocol)

        return self._append(build, signing_key, signing_key)

    def append_post_processing(
        self,
        *,
        org_id: str,
        release_id: str,
        parents: Sequence[str],
        base_model_hash: str,
        update_vector_hash: str,
        signing_key: Ed25519PrivateKey,
        log_key: Ed25519PrivateKey | None = None,
        round: int | None = None,
        timestamp: str | None = None,
        protocol: str | None = None,
    ) -> LedgerEntry:
        """Append a post-processing entry (no epsilon) derived from ``parents``.

        ``signing_key`` signs the entry (e.g. the provider's); ``log_key``, the ledger owner's
        key, signs the checkpoint (default: ``signing_key``).
        """

        def build(state: LogState) -> dict[str, Any]:
            return dict(
                kind="post_processing", org_id=org_id, release_id=release_id, round=round,
                epsilon_spent=0.0, parents=list(parents), base_model_hash=base_model_hash,
                update_vector_hash=update_vector_hash, timestamp=timestamp or utc_now(),
                protocol=protocol)

        return self._append(build, signing_key, log_key or signing_key)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _append(self, build: Callable[[LogState], dict[str, Any]], key: Ed25519PrivateKey,
                log_key: Ed25519PrivateKey) -> LedgerEntry:
        with self._locked():
            state = self.state()
            header = state.header
            if key_id(log_key.public_key()) != header.signer:
                raise InvalidFieldError("log_key", key_id(log_key.public_key()),
                                        f"the ledger owner's key {header.signer} (it signs "
                                        "every checkpoint)")
            check_receipts(self.path, state.tree)  # an operator's rollback is refused too
            fields = build(state)
            fields["prev_hash"] = sha256_hex(state.lines[-1])
            fields["signer"] = key_id(key.public_key())
            unsigned = LedgerEntry(**fields, signature="0" * 128)
            problems = rules.lineage_problems(state.entries, unsigned)
            if problems:
                raise InvalidFieldError("release_id", unsigned.release_id, "; ".join(problems))
            entry = unsigned.model_copy(update={"signature": sign(key, unsigned.signing_payload())})
            line = entry.canonical_line()
            state.tree.append(leaf_hash(line))
            signed = sign_checkpoint(Checkpoint(header.origin, state.tree.size,
                                                state.tree.root()), header.owner, log_key)
            if state.uncommitted is not None:
                _files.truncate(self.path, state.uncommitted.offset)
            self._write_line(line + b"\n")
            self._write_checkpoint(signed)
            return entry

    def _write_line(self, line: bytes) -> None:
        _files.append_line(self.path, line)

    def _write_checkpoint(self, signed: SignedCheckpoint) -> None:
        _files.replace_atomically(self.checkpoint_path, signed.text().encode())


def _check_owner(org_id: str, header: LedgerHeader) -> None:
    if org_id != header.owner:
        raise InvalidFieldError("org_id", org_id, f"the ledger owner {header.owner!r} "
                                "(releases are recorded in the releasing organization's own "
                                "ledger)")
