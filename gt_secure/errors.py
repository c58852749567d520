"""One exception hierarchy for gt-secure.

Messages follow one form: ``"<field> must be <constraint>, got <field>=<value>."`` so a user
always learns which field was wrong and what value it had.
"""

from __future__ import annotations

from typing import Any


class GtSecureError(Exception):
    """Base class of every error gt-secure raises on purpose."""


class InvalidFieldError(GtSecureError, ValueError):
    """A field had a value outside its contract."""

    def __init__(self, field: str, value: Any, constraint: str) -> None:
        self.field = field
        self.value = value
        self.constraint = constraint
        shown = repr(value)
        if len(shown) > 120:
            shown = shown[:117] + "..."
        super().__init__(f"{field} must be {constraint}, got {field}={shown}.")


class UpdateVectorError(InvalidFieldError):
    """An update vector is malformed (shape, dtype, NaN/Inf, norm)."""


class LayoutMismatchError(InvalidFieldError):
    """An update vector's layout or base-model hash does not match the expected one."""


class BudgetExceededError(InvalidFieldError):
    """A training run or release would spend more epsilon than the budget allows."""


class PolicyRefusalError(InvalidFieldError):
    """A request asks an organization for less than its own policy requires; nothing is trained.

    ``value`` is the requested value, ``constraint`` the policy's requirement."""


class LedgerIntegrityError(GtSecureError):
    """The ledger's hash chain, a signature or an entry failed verification."""

    def __init__(self, line: int, reason: str) -> None:
        self.line = line
        self.reason = reason
        super().__init__(f"ledger entry at line {line}: {reason}")


class ProtocolConfigError(InvalidFieldError):
    """A protocol spec is invalid."""


class SecretKeyExposureError(GtSecureError):
    """A cryptographic context carrying a secret key reached a party that must not hold it."""
