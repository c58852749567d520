"""One ledger line: a signed, hash-chained record of a privacy release or its post-processing.

Canonical JSON (:func:`canonical_json`): sorted keys, no spaces, UTF-8, no NaN/Infinity. A ledger
line is the canonical JSON of the whole entry; ``signature`` is Ed25519 over the canonical JSON of
every other field (:meth:`LedgerEntry.signing_payload`); ``prev_hash`` is the hex SHA-256 of the
previous line's bytes (without its newline), ``GENESIS_HASH`` for the first line.

Kinds:

- ``release``: an organization released something computed from its private data. It covers one
  privacy unit (``unit``); its ``mechanisms`` are that release's DP mechanisms, ``epsilon_spent``
  their epsilon alone and ``epsilon_total`` the composition with every earlier release of the same
  organization and unit. A release protected at both units (DP-SGD *and* vector noise) is recorded
  as two entries with the same ``release_id``, one per unit.
- ``post_processing``: something derived only from earlier releases (aggregated update, translated
  LLM adapter). By the post-processing property it spends no epsilon: no mechanisms,
  ``epsilon_spent == 0``, and ``parents`` name the releases it was derived from (lineage).
- ``unprotected_release``: an organization released an update computed from its private data
  *without* differential privacy (the ``plain`` protocol). It protects neither the records nor
  the dataset; it is recorded so that the ledger shows every release, not only the protected
  ones. It spends no budget (no budget covers it): no mechanisms, no unit, ``epsilon_spent == 0``
  and no ``epsilon_total``; it carries the data fingerprint like a release.

Every kind may name the ``protocol`` it ran under (e.g. ``dp-sgd-secagg``). The field is left
out of the line (and of the signed payload) when it is not set, so entries written before it
existed keep their bytes and signatures.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from gt_secure.errors import InvalidFieldError
from gt_secure.ledger._model import FrozenModel
from gt_secure.ledger.accountant import AccountantName, Mechanism, Unit, check_delta

SCHEMA_VERSION = 1
GENESIS_HASH = "0" * 64
Hex64 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
KeyId = Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")]
Signature = Annotated[str, Field(pattern=r"^[0-9a-f]{128}$")]
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:/@+-]+$")]


def canonical_json(obj: Any) -> bytes:
    """Canonical JSON bytes: sorted keys, compact separators, UTF-8, finite numbers only."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)
    return text.encode("utf-8")


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def data_fingerprint(texts: Iterable[str], salt: bytes) -> str:
    """Salted HMAC-SHA256 over the texts (length-prefixed, order-sensitive); never the data.

    The salt stays with the organization: without it the fingerprint cannot be used to test
    whether a guessed text was in the data; with it the organization can later prove which data
    a release used.
    """
    if len(salt) < 16:
        raise InvalidFieldError("salt", f"<{len(salt)} bytes>", "at least 16 bytes")
    mac = hmac.new(salt, digestmod=hashlib.sha256)
    for text in texts:
        raw = text.encode("utf-8")
        mac.update(len(raw).to_bytes(8, "big"))
        mac.update(raw)
    return mac.hexdigest()


def utc_now() -> str:
    """Current UTC time, ISO 8601 with microseconds and ``+00:00``."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


class LedgerEntry(FrozenModel):
    """A signed ledger line; see the module docstring for the meaning of each field."""

    schema_version: Literal[1] = 1
    kind: Literal["release", "post_processing", "unprotected_release"]
    org_id: Name
    protocol: Name | None = None
    release_id: Name
    round: int | None = None
    unit: Unit | None = None
    mechanisms: list[Mechanism] = Field(default_factory=list)
    accountant: AccountantName | None = None
    delta: float | None = None
    epsilon_spent: float
    epsilon_total: float | None = None
    budget_epsilon: float | None = None
    base_model_hash: Hex64
    update_vector_hash: Hex64
    data_fingerprint: Hex64 | None = None
    parents: list[Name] = Field(default_factory=list)
    timestamp: str
    prev_hash: Hex64
    signer: KeyId
    signature: Signature

    @field_validator("timestamp")
    @classmethod
    def _check_timestamp(cls, value: str) -> str:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError as err:
            raise InvalidFieldError("timestamp", value, "an ISO 8601 UTC time") from err
        offset = parsed.utcoffset()
        if offset is None or offset.total_seconds() != 0:
            raise InvalidFieldError("timestamp", value, "in UTC (+00:00)")
        return value

    @field_validator("epsilon_spent", "epsilon_total", "budget_epsilon")
    @classmethod
    def _check_epsilon(cls, value: float | None) -> float | None:
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise InvalidFieldError("epsilon", value, "finite and >= 0")
        return value

    @model_validator(mode="after")
    def _check_kind(self) -> LedgerEntry:
        if self.kind == "release":
            self._check_release()
        elif self.kind == "unprotected_release":
            self._check_unprotected()
        else:
            self._check_post_processing()
        return self

    def _check_release(self) -> None:
        required = ("unit", "accountant", "delta", "epsilon_total", "budget_epsilon",
                    "data_fingerprint")
        for name in required:
            if getattr(self, name) is None:
                raise InvalidFieldError(name, None, "set on a release entry")
        check_delta(self.delta)  # type: ignore[arg-type]
        if not self.mechanisms:
            raise InvalidFieldError("mechanisms", [], "non-empty on a release entry")
        wrong = sorted({m.unit for m in self.mechanisms} - {self.unit})
        if wrong:
            raise InvalidFieldError("mechanisms.unit", wrong, f"equal to unit={self.unit!r}")
        if self.parents:
            raise InvalidFieldError("parents", self.parents, "empty on a release entry")

    def _check_post_processing(self) -> None:
        if self.mechanisms:
            raise InvalidFieldError("mechanisms", "[...]", "empty on a post_processing entry")
        if self.epsilon_spent != 0.0:
            raise InvalidFieldError("epsilon_spent", self.epsilon_spent,
                                    "0 on a post_processing entry (post-processing is free)")
        for name in ("unit", "epsilon_total", "budget_epsilon", "data_fingerprint"):
            if getattr(self, name) is not None:
                raise InvalidFieldError(name, getattr(self, name), "None on post_processing")
        if not self.parents:
            raise InvalidFieldError("parents", [], "non-empty on a post_processing entry")

    def _check_unprotected(self) -> None:
        if self.mechanisms:
            raise InvalidFieldError("mechanisms", "[...]", "empty on an unprotected_release "
                                    "entry (a release with a DP mechanism is a release)")
        if self.epsilon_spent != 0.0:
            raise InvalidFieldError("epsilon_spent", self.epsilon_spent,
                                    "0 on an unprotected_release entry (no budget covers it)")
        for name in ("unit", "accountant", "delta", "epsilon_total", "budget_epsilon"):
            if getattr(self, name) is not None:
                raise InvalidFieldError(name, getattr(self, name),
                                        "None on an unprotected_release entry")
        if self.data_fingerprint is None:
            raise InvalidFieldError("data_fingerprint", None, "set on an unprotected_release "
                                    "entry")
        if self.parents:
            raise InvalidFieldError("parents", self.parents, "empty on an unprotected_release "
                                    "entry")

    def _dump(self, exclude: set[str]) -> dict[str, Any]:
        if self.protocol is None:  # entries written before the field keep their bytes
            exclude = exclude | {"protocol"}
        return self.model_dump(mode="json", exclude=exclude)

    def unsigned_fields(self) -> dict[str, Any]:
        """Every field except ``signature`` (``protocol`` only when set), JSON-ready."""
        return self._dump({"signature"})

    def signing_payload(self) -> bytes:
        """The bytes the signature covers: canonical JSON of every other field."""
        return canonical_json(self.unsigned_fields())

    def canonical_line(self) -> bytes:
        """The ledger line of this entry, without the trailing newline."""
        return canonical_json(self._dump(set()))
