"""Proof bundles: one release checked offline, without the ledger, by a compliance officer.

A bundle holds the entry's line, the ledger header (line 1: owner, origin, budget), a signed
checkpoint (the owner's, or a receipt with cosignatures) and RFC 9162 inclusion proofs of both
lines in that checkpoint's tree. :func:`check_bundle` needs only the trusted public keys: it checks
the header's and the checkpoint's owner signature, the cosigners, both inclusion proofs, the
entry's signature, owner and budget, and recomputes the release's own epsilon. The entry's
``epsilon_total`` composes earlier releases that the bundle does not carry; it is checked against
the budget, and recomputed by ``ledger verify`` on the whole ledger.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import ValidationError

from gt_secure.errors import InvalidFieldError, LedgerIntegrityError
from gt_secure.ledger._model import FrozenModel, as_invalid_field
from gt_secure.ledger.entry import LedgerEntry
from gt_secure.ledger.log import owner_signed, parse_header
from gt_secure.ledger.merkle import HASH_SIZE, leaf_hash, verify_inclusion
from gt_secure.ledger.note import SignedCheckpoint, verified_signers
from gt_secure.ledger.signing import TrustedKey, verify_signature
from gt_secure.ledger.store import Ledger


def encode_proof(hashes: list[bytes]) -> str:
    """Base64 of the concatenated proof hashes (32 bytes each)."""
    return base64.b64encode(b"".join(hashes)).decode()


def decode_proof(text: str, field: str) -> list[bytes]:
    """Inverse of :func:`encode_proof`; ``InvalidFieldError`` naming ``field`` if malformed."""
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError as err:
        raise InvalidFieldError(field, text[:40], "base64") from err
    if len(raw) % HASH_SIZE:
        raise InvalidFieldError(field, text[:40], f"a multiple of {HASH_SIZE} bytes")
    return [raw[i:i + HASH_SIZE] for i in range(0, len(raw), HASH_SIZE)]


class ProofBundle(FrozenModel):
    """Everything needed to check ledger entry ``index`` (its leaf index; header is 0)."""

    format: Literal["gt-secure-proof/v1"] = "gt-secure-proof/v1"
    index: int
    entry: str
    header: str
    checkpoint: str
    entry_proof: str
    header_proof: str


def make_bundle(ledger: Ledger, index: int, receipt: str | None = None) -> ProofBundle:
    """Bundle of entry ``index`` (1 = first entry after the header) against the ledger's
    checkpoint, or against ``receipt`` (a cosigned checkpoint of a prefix holding the entry)."""
    state = ledger.state()
    signed = SignedCheckpoint.parse(receipt) if receipt else state.signed
    if signed is None:
        raise InvalidFieldError("checkpoint", str(ledger.checkpoint_path), "present")
    size = signed.checkpoint.size
    if size > state.tree.size or state.tree.root(size) != signed.checkpoint.root:
        raise InvalidFieldError("receipt", f"size {size}", "a checkpoint of this ledger")
    if not 1 <= index < size:
        raise InvalidFieldError("entry", index, f"in [1, {size - 1}] (entries the checkpoint "
                                "commits to; the header is line 1)")
    return ProofBundle(index=index, entry=state.lines[index].decode(),
                       header=state.lines[0].decode(), checkpoint=signed.text(),
                       entry_proof=encode_proof(state.tree.inclusion_proof(index, size)),
                       header_proof=encode_proof(state.tree.inclusion_proof(0, size)))


@dataclass(frozen=True)
class BundleCheck:
    """A checked bundle: the entry, its owner's budget, the checkpoint and who signed it."""

    entry: LedgerEntry
    budget: dict[str, float]
    size: int
    signers: dict[str, str]
    epsilon_spent: float | None


def check_bundle(bundle: ProofBundle, trusted: Mapping[str, TrustedKey],
                 require_cosigner: bool = False) -> BundleCheck:
    """Check ``bundle`` offline; raise ``LedgerIntegrityError`` (or ``InvalidFieldError``)."""
    line = bundle.index + 1
    header = parse_header(bundle.header.encode())
    owner = trusted.get(header.signer)
    if owner is None or owner.owner != header.owner:
        raise LedgerIntegrityError(1, f"header key {header.signer} is not a trusted key of "
                                   f"{header.owner!r}")
    signed = SignedCheckpoint.parse(bundle.checkpoint)
    cp = signed.checkpoint
    if cp.origin != header.origin or not owner_signed(signed, header):
        raise LedgerIntegrityError(0, f"checkpoint is not {header.owner!r}'s for {header.origin!r}")
    signers = verified_signers(signed, trusted)
    if require_cosigner and not [n for n, k in signers.items() if k == "cosignature"]:
        raise LedgerIntegrityError(0, "checkpoint has no cosignature by a trusted witness")
    for index, text, proof, name in ((0, bundle.header, bundle.header_proof, "header_proof"),
                                     (bundle.index, bundle.entry, bundle.entry_proof,
                                      "entry_proof")):
        if not verify_inclusion(index, cp.size, leaf_hash(text.encode()),
                                decode_proof(proof, name), cp.root):
            raise LedgerIntegrityError(index + 1, f"{name}: line {index + 1} is not in the "
                                       f"checkpoint's tree (size {cp.size})")
    try:
        entry = LedgerEntry.model_validate_json(bundle.entry)
    except ValidationError as err:
        raise LedgerIntegrityError(line, f"invalid entry: {as_invalid_field(err)}") from err
    if entry.canonical_line() != bundle.entry.encode():
        raise LedgerIntegrityError(line, "entry is not canonical JSON")
    verify_signature(dict(trusted), entry.signer, entry.org_id, entry.signing_payload(),
                     entry.signature, line)
    budget: dict[str, float] = {str(unit): value for unit, value in header.budget.items()}
    spent = None
    if entry.kind == "release":
        spent = _check_release(entry, header.owner, budget, line)
    elif entry.kind == "unprotected_release" and entry.org_id != header.owner:
        raise LedgerIntegrityError(line, f"release of {entry.org_id!r} in {header.owner!r}'s "
                                   "ledger")
    return BundleCheck(entry, budget, cp.size, signers, spent)


def _check_release(entry: LedgerEntry, owner: str, budget: dict[str, float], line: int) -> float:
    from gt_secure.ledger.accountant import compute_epsilon
    from gt_secure.ledger.verify import RECORD_RTOL

    assert entry.unit is not None and entry.delta is not None and entry.accountant is not None
    if entry.org_id != owner:
        raise LedgerIntegrityError(line, f"release of {entry.org_id!r} in {owner!r}'s ledger")
    if entry.budget_epsilon != budget.get(entry.unit):
        raise LedgerIntegrityError(line, f"budget_epsilon={entry.budget_epsilon} but the header "
                                   f"gives {budget.get(entry.unit)} for unit={entry.unit!r}")
    if not (entry.epsilon_total or 0.0) <= (entry.budget_epsilon or 0.0):
        raise LedgerIntegrityError(line, f"epsilon_total={entry.epsilon_total} exceeds the "
                                   f"budget {entry.budget_epsilon}")
    spent = compute_epsilon(entry.mechanisms, entry.delta, entry.accountant)
    if abs(spent - entry.epsilon_spent) > RECORD_RTOL * max(1.0, spent):
        raise LedgerIntegrityError(line, f"epsilon_spent={entry.epsilon_spent} but the "
                                   f"mechanisms give {spent}")
    return spent
