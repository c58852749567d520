"""Reading a ledger as a transparency log: header, committed prefix, signed checkpoint.

The ledger file's lines are the leaves of an RFC 9162 Merkle tree (line 1, the header, is leaf 0).
``<ledger>.checkpoint`` holds the owner's latest signed checkpoint; it is the commit record of
every append. Lines past its tree size are *uncommitted* (an interrupted append: the next append
or :meth:`~gt_secure.ledger.store.Ledger.repair` drops them). A checkpoint that commits to more
lines than the file holds, or whose root differs from the file's prefix, is an integrity error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from pydantic import ValidationError

from gt_secure.errors import InvalidFieldError, LedgerIntegrityError
from gt_secure.ledger._model import as_invalid_field
from gt_secure.ledger.entry import LedgerEntry, sha256_hex
from gt_secure.ledger.header import LedgerHeader
from gt_secure.ledger.merkle import MerkleTree
from gt_secure.ledger.note import SignedCheckpoint, signature_kind

CHECKPOINT_SUFFIX = ".checkpoint"


def checkpoint_path(ledger: Path) -> Path:
    """Where the owner's latest signed checkpoint of ``ledger`` lives."""
    return ledger.with_name(ledger.name + CHECKPOINT_SUFFIX)


def receipts_path(ledger: Path) -> Path:
    """Where the owner keeps the receipts (cosigned checkpoints) of ``ledger``."""
    return ledger.with_name(ledger.name + ".receipts")


def check_receipts(path: Path, tree: MerkleTree) -> None:
    """Raise ``LedgerIntegrityError`` unless the tree extends every receipt kept for ``path``."""
    for receipt in sorted(receipts_path(path).glob("*.txt")):
        try:
            cp = SignedCheckpoint.parse(receipt.read_text(encoding="utf-8")).checkpoint
        except (InvalidFieldError, UnicodeDecodeError) as err:
            raise LedgerIntegrityError(0, f"receipt {receipt}: {err}") from err
        if cp.size > tree.size or tree.root(cp.size) != cp.root:
            raise LedgerIntegrityError(0, f"the ledger ({tree.size} lines) does not extend the "
                                       f"receipt {receipt.name} (size {cp.size}): it was rolled "
                                       "back or forked since the witness cosigned")


@dataclass(frozen=True)
class TornTail:
    """Bytes after the last complete line (or after the committed prefix): an interrupted append."""

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


def parse_header(raw: bytes) -> LedgerHeader:
    """Parse and check line 1: schema, canonical form, the owner's signature."""
    try:
        header = LedgerHeader.model_validate_json(raw)
    except ValidationError as err:
        raise LedgerIntegrityError(1, f"not a ledger header: {as_invalid_field(err)}") from err
    if header.canonical_line() != raw:
        raise LedgerIntegrityError(1, "header is not canonical JSON")
    try:
        header.owner_key().verify(bytes.fromhex(header.signature), header.signing_payload())
    except (InvalidSignature, ValueError) as err:
        raise LedgerIntegrityError(1, "header signature does not verify") from err
    return header


def parse_entries(lines: Sequence[bytes], prev_hash: str, first_line: int = 2
                  ) -> list[LedgerEntry]:
    """Parse entry lines and check their hash chain (signatures: see ``verify_ledger``)."""
    entries: list[LedgerEntry] = []
    for number, raw in enumerate(lines, start=first_line):
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


def owner_signed(signed: SignedCheckpoint, header: LedgerHeader) -> bool:
    """Whether the ledger owner's key signed ``signed`` (as log owner, not as a cosigner)."""
    key = header.owner_key()
    return any(s.name == header.owner and signature_kind(signed, s, key) == "signature"
               for s in signed.signatures)


def read_checkpoint(path: Path, header: LedgerHeader) -> SignedCheckpoint:
    """The signed checkpoint at ``path``: parsed, of this log, signed by its owner."""
    try:
        signed = SignedCheckpoint.parse(path.read_text(encoding="utf-8"))
    except (InvalidFieldError, UnicodeDecodeError) as err:
        raise LedgerIntegrityError(0, f"checkpoint {path}: {err}") from err
    if signed.checkpoint.origin != header.origin:
        raise LedgerIntegrityError(0, f"checkpoint {path} is for origin "
                                   f"{signed.checkpoint.origin!r}, not {header.origin!r}")
    if not owner_signed(signed, header):
        raise LedgerIntegrityError(0, f"checkpoint {path} is not signed by the owner "
                                   f"{header.owner!r}")
    return signed


@dataclass(frozen=True)
class LogState:
    """A ledger's committed prefix (header first), its tree and checkpoint, and what follows."""

    header: LedgerHeader
    lines: tuple[bytes, ...]
    entries: tuple[LedgerEntry, ...]
    tree: MerkleTree
    signed: SignedCheckpoint | None  # None only after an interrupted creation (header alone)
    uncommitted: TornTail | None


def read_state(path: Path) -> LogState:
    """Read the ledger at ``path``; raise ``LedgerIntegrityError`` unless its checkpoint holds."""
    if not path.exists():
        raise InvalidFieldError("ledger", str(path), "an existing ledger (Ledger.create)")
    data = path.read_bytes()
    scan = split_lines(data)
    if not scan.lines:
        raise LedgerIntegrityError(1, "no header line (a ledger starts with its signed header)")
    header = parse_header(scan.lines[0])
    cp_path = checkpoint_path(path)
    signed = read_checkpoint(cp_path, header) if cp_path.exists() else None
    if signed is None and (len(scan.lines) > 1 or scan.torn is not None):
        raise LedgerIntegrityError(2, f"checkpoint {cp_path} is missing: the entries after the "
                                   "header are not committed (restore it from a receipt)")
    size = 1 if signed is None else signed.checkpoint.size
    if size > len(scan.lines):
        raise LedgerIntegrityError(len(scan.lines) + 1, f"the checkpoint commits to {size} "
                                   f"lines but the ledger has {len(scan.lines)}: committed "
                                   "entries were dropped")
    tree = MerkleTree.of_lines(scan.lines[:size])
    if signed is not None and tree.root() != signed.checkpoint.root:
        raise LedgerIntegrityError(size, f"the first {size} lines do not hash to the "
                                   "checkpoint's root: committed entries were changed")
    entries = parse_entries(scan.lines[1:size], sha256_hex(scan.lines[0]))
    committed = sum(len(line) + 1 for line in scan.lines[:size])
    tail = None
    if len(data) > committed:
        tail = TornTail(size + 1, committed, len(data) - committed)
    return LogState(header, scan.lines[:size], tuple(entries), tree, signed, tail)
