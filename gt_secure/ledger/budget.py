"""Budget policy: the ledger, not the caller, owns each organization's epsilon budget.

Epsilon composes per ``(org_id, unit)``: every release entry of an organization for one privacy
unit is composed, in ledger order, with the accountant and delta of that pair's first release
(both are fixed from then on, so totals are comparable). :func:`check_budget` projects the total
*before* anything is written and raises :class:`BudgetExceededError` if it would exceed the
budget, which is read from the ledger's signed header (never from the caller);
:meth:`Ledger.append_release` runs the same check under the writer lock.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from gt_secure.errors import BudgetExceededError, InvalidFieldError
from gt_secure.ledger.accountant import (
    AccountantName,
    Mechanism,
    Unit,
    check_delta,
    compute_epsilon,
    single_unit,
)
from gt_secure.ledger.entry import LedgerEntry

if TYPE_CHECKING:
    from gt_secure.ledger.store import Ledger


class Projection(NamedTuple):
    """Epsilon of a proposed release alone and composed with the earlier ones."""

    unit: Unit
    epsilon_spent: float
    epsilon_total: float


def releases_of(entries: Sequence[LedgerEntry], org_id: str, unit: str) -> list[LedgerEntry]:
    """Release entries of ``org_id`` for ``unit``, in ledger order."""
    return [e for e in entries if e.kind == "release" and e.org_id == org_id and e.unit == unit]


def spent(entries: Sequence[LedgerEntry], org_id: str, unit: str) -> float:
    """Epsilon an organization has spent for ``unit`` (the last release's ``epsilon_total``)."""
    releases = releases_of(entries, org_id, unit)
    total = releases[-1].epsilon_total if releases else None
    return 0.0 if total is None else total


def project(
    entries: Sequence[LedgerEntry],
    org_id: str,
    mechanisms: Sequence[Mechanism],
    delta: float,
    accountant: AccountantName,
) -> Projection:
    """Epsilon of ``mechanisms`` alone and composed with ``org_id``'s earlier releases."""
    check_delta(delta)
    unit = single_unit(mechanisms)
    if unit is None:
        raise InvalidFieldError("mechanisms", [], "non-empty")
    previous = releases_of(entries, org_id, unit)
    if previous and previous[0].delta != delta:
        raise InvalidFieldError("delta", delta, f"{previous[0].delta} as fixed by the first "
                                f"release of org_id={org_id!r} unit={unit!r}")
    if previous and previous[0].accountant != accountant:
        raise InvalidFieldError("accountant", accountant, f"{previous[0].accountant!r} as fixed "
                                f"by the first release of org_id={org_id!r} unit={unit!r}")
    history = [m for e in previous for m in e.mechanisms] + list(mechanisms)
    return Projection(
        unit,
        compute_epsilon(mechanisms, delta, accountant),
        compute_epsilon(history, delta, accountant),
    )


def enforce_budget(
    entries: Sequence[LedgerEntry],
    org_id: str,
    mechanisms: Sequence[Mechanism],
    delta: float,
    budget_epsilon: float,
    accountant: AccountantName,
) -> Projection:
    """The projection of a release, or ``BudgetExceededError`` if it would exceed the budget."""
    if not (math.isfinite(budget_epsilon) and budget_epsilon > 0):
        raise InvalidFieldError("budget_epsilon", budget_epsilon, "finite and > 0")
    projection = project(entries, org_id, mechanisms, delta, accountant)
    if not projection.epsilon_total <= budget_epsilon:
        raise BudgetExceededError(
            "epsilon_total",
            projection.epsilon_total,
            f"<= budget_epsilon={budget_epsilon} for org_id={org_id!r} unit="
            f"{projection.unit!r} (already spent {spent(entries, org_id, projection.unit):.4g}; "
            "nothing was written)",
        )
    return projection


def check_budget(
    ledger: Ledger,
    org_id: str,
    proposed_mechanisms: Sequence[Mechanism],
    delta: float,
    accountant: AccountantName = "rdp",
) -> float:
    """Projected total epsilon after the proposed release; raise if it exceeds the budget.

    The budget is the one the ledger's signed header gives ``org_id`` (the owner) for the
    mechanisms' privacy unit; callers cannot pass another. Read-only: call it before training to
    refuse early. The append re-checks under the lock.
    """
    state = ledger.state()
    if org_id != state.header.owner:
        raise InvalidFieldError("org_id", org_id, f"the ledger owner {state.header.owner!r}")
    unit = single_unit(proposed_mechanisms)
    if unit is None:
        raise InvalidFieldError("mechanisms", [], "non-empty")
    return enforce_budget(state.entries, org_id, proposed_mechanisms, delta,
                          state.header.budget_of(unit), accountant).epsilon_total
