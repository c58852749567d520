"""The ledger header: line 1 (leaf 0) of every ledger, written once, signed by its owner.

It fixes who owns the log (``owner``, whose key signs the header and every checkpoint, given in
``public_key``), the checkpoints' ``origin`` and the owner's epsilon ``budget`` per privacy unit.
Appends read the budget from the header and cannot change it; a unit without a budget accepts no
release. Because the header is leaf 0 of the Merkle tree, every checkpoint commits to it: a
rewritten header changes every root from then on.
"""

from __future__ import annotations

import math
from typing import Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import Field, field_validator

from gt_secure.errors import InvalidFieldError
from gt_secure.ledger._model import FrozenModel
from gt_secure.ledger.accountant import Unit
from gt_secure.ledger.entry import Hex64, KeyId, Name, Signature, canonical_json, utc_now
from gt_secure.ledger.signing import key_id, sign

ORIGIN_PREFIX = "gt-secure/ledger/"


def default_origin(owner: str) -> str:
    """Checkpoint origin of ``owner``'s ledger."""
    return ORIGIN_PREFIX + owner


class LedgerHeader(FrozenModel):
    """Signed first line of a ledger; see the module docstring."""

    schema_version: Literal[1] = 1
    kind: Literal["header"] = "header"
    origin: str = Field(min_length=1, max_length=300, pattern=r"^[!-~]+$")
    owner: Name
    public_key: Hex64
    budget: dict[Unit, float]
    created: str
    signer: KeyId
    signature: Signature

    @field_validator("budget")
    @classmethod
    def _check_budget(cls, value: dict[Unit, float]) -> dict[Unit, float]:
        for unit, epsilon in value.items():
            if not (math.isfinite(epsilon) and epsilon > 0):
                raise InvalidFieldError(f"budget.{unit}", epsilon, "finite and > 0")
        return value

    @classmethod
    def create(cls, owner: str, budget: dict[Unit, float], key: Ed25519PrivateKey,
               origin: str | None = None, created: str | None = None) -> LedgerHeader:
        """A header signed by ``key`` (the owner's ledger key)."""
        public = key.public_key()
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        unsigned = cls(owner=owner, origin=origin or default_origin(owner),
                       public_key=raw.hex(), budget=dict(budget), created=created or utc_now(),
                       signer=key_id(public), signature="0" * 128)
        return unsigned.model_copy(update={"signature": sign(key, unsigned.signing_payload())})

    def signing_payload(self) -> bytes:
        """Canonical JSON of every field but ``signature``."""
        return canonical_json(self.model_dump(mode="json", exclude={"signature"}))

    def canonical_line(self) -> bytes:
        """The ledger's first line, without newline."""
        return canonical_json(self.model_dump(mode="json"))

    def owner_key(self) -> Ed25519PublicKey:
        """The owner's public key (checked against ``signer``)."""
        public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(self.public_key))
        if key_id(public) != self.signer:
            raise InvalidFieldError("header.signer", self.signer, "the key id of public_key")
        return public

    def budget_of(self, unit: str) -> float:
        """The owner's epsilon budget for ``unit``; ``InvalidFieldError`` if it has none."""
        if unit not in self.budget:
            raise InvalidFieldError("unit", unit, f"one of {sorted(self.budget)} (the units the "
                                    "ledger header gives a budget for)")
        return self.budget[unit]  # type: ignore[index]
