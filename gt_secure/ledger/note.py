"""Signed checkpoints in the C2SP signed-note / tlog-checkpoint text format, and cosignatures.

A checkpoint body is three lines: the log's origin, the tree size in decimal and the base64 root
hash (C2SP ``tlog-checkpoint``). A signed note is the body, an empty line, then one line per
signature: ``"\u2014 <name> <base64(key hash || signature)>"``. The key hash is the first 4 bytes
of ``SHA-256(name || "\\n" || alg || raw public key)``:

- alg ``0x01``: the log owner's Ed25519 signature over the body (C2SP ``signed-note``);
- alg ``0x04``: a witness cosignature (C2SP ``tlog-cosignature``): Ed25519 over
  ``"cosignature/v1\\ntime <t>\\n" || body``, the signature field being ``t`` (8 bytes, big
  endian, seconds since the epoch) followed by the 64-byte signature.

A verifier ignores signature lines from keys it does not trust. A *receipt* is a checkpoint
signed by its log owner and cosigned by at least one other party.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gt_secure.errors import InvalidFieldError
from gt_secure.ledger.signing import TrustedKey

ALG_ED25519 = 0x01
ALG_COSIGNATURE = 0x04
DASH = "\u2014 "
COSIGN_PREFIX = b"cosignature/v1\ntime "


def _b64decode(value: str, field: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as err:
        raise InvalidFieldError(field, value, "base64") from err


def note_key_hash(name: str, public_key: Ed25519PublicKey, alg: int) -> bytes:
    """4-byte key hash of a signed-note key (``alg`` 0x01 signer, 0x04 cosigner)."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(name.encode() + b"\n" + bytes([alg]) + raw).digest()[:4]


def _check_name(name: str) -> str:
    if not name or any(c.isspace() or c == "+" for c in name):
        raise InvalidFieldError("key_name", name, "non-empty, without spaces or '+'")
    return name


@dataclass(frozen=True)
class Checkpoint:
    """Origin, tree size and root hash of a log."""

    origin: str
    size: int
    root: bytes

    def body(self) -> bytes:
        """The signed text: origin, size and base64 root, one per line."""
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n".encode()

    @classmethod
    def parse_body(cls, body: str) -> Checkpoint:
        """Parse the three body lines; raise ``InvalidFieldError`` naming the bad one."""
        lines = body.split("\n")
        if len(lines) != 4 or lines[3] != "" or not lines[0]:
            raise InvalidFieldError("checkpoint", body[:80], "origin, size and root lines")
        if not lines[1].isdigit() or (lines[1] != "0" and lines[1].startswith("0")):
            raise InvalidFieldError("checkpoint.size", lines[1], "a decimal integer")
        root = _b64decode(lines[2], "checkpoint.root")
        if len(root) != 32:
            raise InvalidFieldError("checkpoint.root", lines[2], "32 bytes")
        return cls(lines[0], int(lines[1]), root)


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: signer name, 4-byte key hash and the rest of the signature field."""

    name: str
    key_hash: bytes
    signature: bytes

    def line(self) -> str:
        """The note's signature line (without newline)."""
        return f"{DASH}{self.name} {base64.b64encode(self.key_hash + self.signature).decode()}"


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint and its signature lines."""

    checkpoint: Checkpoint
    signatures: tuple[NoteSignature, ...]

    def text(self) -> str:
        """The signed note as text."""
        lines = "".join(s.line() + "\n" for s in self.signatures)
        return self.checkpoint.body().decode() + "\n" + lines

    @classmethod
    def parse(cls, text: str) -> SignedCheckpoint:
        """Parse a signed note; signature lines are parsed, not verified."""
        body, sep, rest = text.partition("\n\n")
        if not sep or not rest.endswith("\n"):
            raise InvalidFieldError("note", text[:80], "a body, an empty line and signatures")
        signatures = []
        for line in rest[:-1].split("\n"):
            name, space, value = line.removeprefix(DASH).partition(" ")
            raw = _b64decode(value, "note.signature")
            if not line.startswith(DASH) or not space or len(raw) < 5:
                raise InvalidFieldError("note.signature", line[:80], "'\u2014 <name> <base64>'")
            signatures.append(NoteSignature(name, raw[:4], raw[4:]))
        return cls(Checkpoint.parse_body(body + "\n"), tuple(signatures))

    def with_signature(self, signature: NoteSignature) -> SignedCheckpoint:
        """A copy with ``signature`` added (replacing an earlier one of the same key)."""
        kept = tuple(s for s in self.signatures
                     if (s.name, s.key_hash) != (signature.name, signature.key_hash))
        return replace(self, signatures=kept + (signature,))


def sign_checkpoint(checkpoint: Checkpoint, name: str, key: Ed25519PrivateKey) -> SignedCheckpoint:
    """The checkpoint signed by its log owner ``name``."""
    key_hash = note_key_hash(_check_name(name), key.public_key(), ALG_ED25519)
    return SignedCheckpoint(checkpoint, (NoteSignature(name, key_hash,
                                                       key.sign(checkpoint.body())),))


def cosignature(checkpoint: Checkpoint, name: str, key: Ed25519PrivateKey,
                timestamp: int | None = None) -> NoteSignature:
    """A witness cosignature (``cosignature/v1``) of ``checkpoint`` by ``name``."""
    stamp = int(time.time()) if timestamp is None else timestamp
    message = COSIGN_PREFIX + f"{stamp}\n".encode() + checkpoint.body()
    key_hash = note_key_hash(_check_name(name), key.public_key(), ALG_COSIGNATURE)
    return NoteSignature(name, key_hash, stamp.to_bytes(8, "big") + key.sign(message))


def signature_kind(signed: SignedCheckpoint, sig: NoteSignature,
                   public_key: Ed25519PublicKey) -> str | None:
    """``"signature"`` or ``"cosignature"`` if ``sig`` verifies under ``public_key``, else None."""
    body = signed.checkpoint.body()
    candidates = {
        ALG_ED25519: ("signature", sig.signature, body),
        ALG_COSIGNATURE: ("cosignature", sig.signature[8:],
                          COSIGN_PREFIX + f"{int.from_bytes(sig.signature[:8], 'big')}\n".encode()
                          + body),
    }
    for alg, (kind, raw, message) in candidates.items():
        if note_key_hash(sig.name, public_key, alg) != sig.key_hash or len(raw) != 64:
            continue
        try:
            public_key.verify(raw, message)
        except InvalidSignature:
            return None
        return kind
    return None


def verified_signers(signed: SignedCheckpoint,
                     trusted: Mapping[str, TrustedKey]) -> dict[str, str]:
    """``{owner: kind}`` for every signature line that verifies under a trusted key of ``owner``.

    A signature line verifies only under a trusted key whose owner is the line's name; lines of
    unknown keys are ignored, as the signed-note format requires.
    """
    found: dict[str, str] = {}
    for sig in signed.signatures:
        for entry in trusted.values():
            if entry.owner != sig.name:
                continue
            kind = signature_kind(signed, sig, entry.public_key)
            if kind is not None and found.get(sig.name) != "signature":
                found[sig.name] = kind
    return found
