"""Signed statements of the dp-ckks protocol (Ed25519 by each organization's roster key).

- :class:`Announcement`: an organization's X25519 mask key for one (run, round); the key
  holder's also carries the SHA-256 of the round's CKKS public context.
- :class:`Contribution`: "I encrypted one masked vector for this (run, round), for exactly the
  participants whose announcements hash to ``participants_digest``, under the public context
  ``context_digest``; my ciphertext hashes to ``ciphertext_digest``."

Each is signed over a domain-separated canonical JSON (so no statement can pass as a ledger
entry or as the other kind). :func:`verify_announcements` is what every organization and the
key holder run on the set the server relays.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Self

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, ConfigDict

from gt_secure.errors import InvalidFieldError
from gt_secure.organization.roster import Roster

__all__ = [
    "Announcement",
    "Contribution",
    "ciphertext_digest",
    "context_digest",
    "participants_digest",
    "verify_announcements",
]


class _Statement(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    org_id: str
    run_id: int
    round: int
    signature: str = ""

    def payload(self) -> bytes:
        """The signed bytes: domain, then canonical JSON of every field but the signature."""
        body = self.model_dump(mode="json", exclude={"signature"})
        domain = f"gt-secure/ckks/{type(self).__name__.lower()}/v1\n".encode()
        return domain + json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    def signed(self, key: Ed25519PrivateKey) -> Self:
        """A copy carrying the hex Ed25519 signature of :meth:`payload`."""
        return self.model_copy(update={"signature": key.sign(self.payload()).hex()})

    def check(self, roster: Roster, run_id: int, round_idx: int, field: str) -> None:
        """Signed by ``org_id``'s roster key, for this run and round."""
        if (self.run_id, self.round) != (run_id, round_idx):
            raise InvalidFieldError(f"{field}.round", [self.run_id, self.round],
                                    f"run {run_id}, round {round_idx}")
        roster.verify(self.org_id, self.payload(), self.signature, field)


class Announcement(_Statement):
    """One organization's X25519 mask key (hex) for one round; ``context_digest`` is set only by
    the key holder (SHA-256 of the round's public context)."""

    mask_key: str
    context_digest: str = ""


class Contribution(_Statement):
    """One organization's signed statement about the single ciphertext it sent this round."""

    participants_digest: str
    context_digest: str
    ciphertext_digest: str


def context_digest(public_context: bytes) -> str:
    """SHA-256 (hex) of a serialized public context."""
    return hashlib.sha256(public_context).hexdigest()


def ciphertext_digest(chunks: Sequence[bytes]) -> str:
    """SHA-256 (hex) over the length-prefixed ciphertext chunks."""
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(len(chunk).to_bytes(8, "big") + chunk)
    return h.hexdigest()


def participants_digest(announcements: Sequence[Announcement]) -> str:
    """SHA-256 (hex) of the announcements' payloads in organization order."""
    h = hashlib.sha256()
    for ann in sorted(announcements, key=lambda a: a.org_id):
        payload = ann.payload()
        h.update(len(payload).to_bytes(8, "big") + payload)
    return h.hexdigest()


def verify_announcements(announcements: Sequence[Announcement], roster: Roster, run_id: int,
                         round_idx: int, key_holder: str) -> dict[str, Announcement]:
    """Announcements by organization, each signed by its roster key for this run and round;
    one per organization, and a context digest from ``key_holder`` (only)."""
    out: dict[str, Announcement] = {}
    for i, ann in enumerate(announcements):
        field = f"announcements[{i}]"
        if ann.org_id in out:
            raise InvalidFieldError(f"{field}.org_id", ann.org_id, "unique")
        ann.check(roster, run_id, round_idx, field)
        if bool(ann.context_digest) != (ann.org_id == key_holder):
            raise InvalidFieldError(f"{field}.context_digest", ann.context_digest,
                                    f"set by the key holder {key_holder!r} only")
        out[ann.org_id] = ann
    if key_holder not in out:
        raise InvalidFieldError("announcements.key_holder", key_holder, "among the announcers")
    return out
