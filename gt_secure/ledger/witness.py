"""Witnesses: another party checks that a ledger only grew, then cosigns its checkpoint.

A :class:`Witness` (the aggregator, or another organization) remembers, per log origin, the
owner's key and the last checkpoint it cosigned. Shown a new checkpoint signed by the owner and an
RFC 9162 consistency proof from that last size, it cosigns (C2SP ``cosignature/v1``) only if the
new tree extends the old one: a smaller size (rollback, truncation), a different root at the same
size or a failing proof (fork, rewritten or deleted entries) is refused with
:class:`LogConsistencyError`. The first checkpoint of an origin is trusted on first use, with the
owner key the caller supplies, unless the witness holds registered owner keys (``trusted``). The
cosigned checkpoint is the owner's *receipt*: ``ledger verify --receipt`` later proves the ledger
still extends it.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gt_secure.errors import InvalidFieldError
from gt_secure.ledger import _files
from gt_secure.ledger._model import FrozenModel
from gt_secure.ledger.log import receipts_path
from gt_secure.ledger.merkle import verify_consistency
from gt_secure.ledger.note import SignedCheckpoint, cosignature, signature_kind
from gt_secure.ledger.signing import TrustedKey, key_id
from gt_secure.ledger.store import Ledger


class LogConsistencyError(InvalidFieldError):
    """A checkpoint does not extend the one a witness (or a receipt) saw: rollback or fork."""


def _raw(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(serialization.Encoding.Raw,
                                   serialization.PublicFormat.Raw).hex()


class SeenCheckpoint(FrozenModel):
    """What a witness remembers of one log."""

    origin: str
    owner: str
    public_key: str
    size: int
    root: str
    receipt: str


def owner_signature_ok(signed: SignedCheckpoint, owner: str, key: Ed25519PublicKey) -> bool:
    """Whether ``owner``'s ``key`` signed ``signed`` as its log owner."""
    return any(s.name == owner and signature_kind(signed, s, key) == "signature"
               for s in signed.signatures)


class Witness:
    """A cosigner named ``name`` whose memory lives in ``state_dir`` (one file per origin).

    ``trusted`` (key id -> :class:`TrustedKey`, as :func:`load_trusted_keys` returns): the
    owners' registered keys; then a log is cosigned only when its owner's key is the one
    registered for that owner, on first contact too (no trust on first use).
    """

    def __init__(self, name: str, key: Ed25519PrivateKey, state_dir: str | Path,
                 trusted: Mapping[str, TrustedKey] | None = None) -> None:
        self.name = name
        self.key = key
        self.state_dir = Path(state_dir)
        self.trusted = trusted

    def _check_registered(self, owner: str, owner_key: Ed25519PublicKey) -> None:
        if self.trusted is None:
            return
        entry = self.trusted.get(key_id(owner_key))
        if entry is None or entry.owner != owner:
            owners = sorted({t.owner for t in self.trusted.values()})
            raise InvalidFieldError("owner_key", key_id(owner_key), f"a key registered for "
                                    f"{owner!r} (the witness trusts keys of {owners})")

    def _file(self, origin: str) -> Path:
        return self.state_dir / f"{hashlib.sha256(origin.encode()).hexdigest()[:32]}.json"

    def last_seen(self, origin: str) -> SeenCheckpoint | None:
        """The last checkpoint of ``origin`` this witness cosigned, if any."""
        path = self._file(origin)
        return SeenCheckpoint.model_validate_json(path.read_bytes()) if path.exists() else None

    def cosign(self, note: str, proof: Sequence[bytes], *, owner: str,
               owner_key: Ed25519PublicKey | None = None,
               timestamp: int | None = None) -> SignedCheckpoint:
        """Check ``note`` (signed by ``owner``) extends the last cosigned one; cosign it.

        ``proof`` is the consistency proof from this witness's last size (see
        :meth:`last_seen`) to the note's size; ``owner_key`` is required on first contact and
        must match the pinned key afterwards.
        """
        signed = SignedCheckpoint.parse(note)
        cp = signed.checkpoint
        seen = self.last_seen(cp.origin)
        if seen is not None and seen.owner != owner:
            raise InvalidFieldError("owner", owner, f"{seen.owner!r}, the owner of {cp.origin!r}")
        if seen is not None:
            pinned = Ed25519PublicKey.from_public_bytes(bytes.fromhex(seen.public_key))
            if owner_key is not None and _raw(owner_key) != seen.public_key:
                raise InvalidFieldError("owner_key", _raw(owner_key)[:16], f"the key pinned for "
                                        f"{cp.origin!r} ({seen.public_key[:16]}...)")
            owner_key = pinned
        if owner_key is None:
            raise InvalidFieldError("owner_key", None, f"given on first contact with {cp.origin!r}")
        self._check_registered(owner, owner_key)
        if not owner_signature_ok(signed, owner, owner_key):
            raise InvalidFieldError("checkpoint", cp.origin, f"signed by the owner {owner!r}")
        if seen is not None:
            check_extends(seen.size, bytes.fromhex(seen.root), signed, proof)
        receipt = signed.with_signature(cosignature(cp, self.name, self.key, timestamp))
        record = SeenCheckpoint(origin=cp.origin, owner=owner, public_key=_raw(owner_key),
                                size=cp.size, root=cp.root.hex(), receipt=receipt.text())
        self.state_dir.mkdir(parents=True, exist_ok=True)
        _files.replace_atomically(self._file(cp.origin), record.model_dump_json().encode())
        return receipt


def check_extends(old_size: int, old_root: bytes, signed: SignedCheckpoint,
                  proof: Sequence[bytes]) -> None:
    """Raise :class:`LogConsistencyError` unless ``signed`` extends the tree (old_size, root)."""
    cp = signed.checkpoint
    if cp.size < old_size:
        raise LogConsistencyError("checkpoint.size", cp.size, f">= {old_size}, the size already "
                                  "cosigned (a smaller log is a rollback or truncation)")
    if not verify_consistency(old_size, cp.size, old_root, cp.root, list(proof)):
        raise LogConsistencyError("checkpoint.root", base64.b64encode(cp.root).decode(),
                                  f"a tree extending the cosigned one of size {old_size} "
                                  "(consistency proof fails: a fork or rewritten history)")


def witness_ledger(witness: Witness, ledger: Ledger) -> SignedCheckpoint:
    """Cosign ``ledger``'s current checkpoint, with the proof the log serves for the witness.

    The owner key is the one in the ledger's signed header (trusted on first contact only).
    """
    state = ledger.state()
    if state.signed is None:
        raise InvalidFieldError("checkpoint", str(ledger.checkpoint_path), "present")
    seen = witness.last_seen(state.header.origin)
    old = 0 if seen is None else min(seen.size, state.tree.size)
    proof = state.tree.consistency_proof(old) if seen is not None else []
    return witness.cosign(state.signed.text(), proof, owner=state.header.owner,
                          owner_key=state.header.owner_key() if seen is None else None)


def receipts_dir(ledger: Ledger) -> Path:
    """Where an organization keeps the receipts of its ledger: ``<ledger>.receipts/``."""
    return receipts_path(ledger.path)


def store_receipt(ledger: Ledger, receipt: str, witness: str,
                  witness_key: Ed25519PublicKey) -> Path:
    """Check a receipt is of this ledger, signed by its owner and cosigned by ``witness``; keep it.

    It is written to ``<ledger>.receipts/<witness>.txt`` (replacing the previous one).
    """
    signed = SignedCheckpoint.parse(receipt)
    state = ledger.state()
    header = state.header
    if signed.checkpoint.origin != header.origin:
        raise InvalidFieldError("receipt.origin", signed.checkpoint.origin, repr(header.origin))
    if not owner_signature_ok(signed, header.owner, header.owner_key()):
        raise InvalidFieldError("receipt", witness, f"signed by the owner {header.owner!r}")
    if not any(s.name == witness and signature_kind(signed, s, witness_key) == "cosignature"
               for s in signed.signatures):
        raise InvalidFieldError("receipt", witness, f"cosigned by {witness!r}")
    size = signed.checkpoint.size
    if size > state.tree.size or state.tree.root(size) != signed.checkpoint.root:
        raise LogConsistencyError("receipt.size", size, "a checkpoint of this ledger's prefix")
    directory = receipts_dir(ledger)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{witness}.txt"
    _files.replace_atomically(path, receipt.encode())
    return path
