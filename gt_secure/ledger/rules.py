"""Rules an entry must satisfy with respect to the entries before it (ids and lineage)."""

from __future__ import annotations

from collections.abc import Sequence

from gt_secure.ledger.entry import LedgerEntry


def lineage_problems(previous: Sequence[LedgerEntry], entry: LedgerEntry) -> list[str]:
    """Every id or lineage rule ``entry`` breaks, given the earlier entries; empty if none.

    - a ``release_id`` belongs to one organization;
    - a release has at most one entry per privacy unit, a post-processing or unprotected
      release id exactly one entry;
    - ``parents`` name release ids that appear earlier in the ledger.
    """
    problems: list[str] = []
    same_id = [e for e in previous if e.release_id == entry.release_id]
    owners = sorted({e.org_id for e in same_id} - {entry.org_id})
    if owners:
        problems.append(f"release_id={entry.release_id!r} already belongs to org_id={owners[0]!r}")
    if entry.kind != "release" and same_id:
        problems.append(f"release_id={entry.release_id!r} is already used")
    clash = [e for e in same_id if e.kind != "release" or e.unit == entry.unit]
    if entry.kind == "release" and clash:
        problems.append(f"release_id={entry.release_id!r} already has an entry for "
                        f"unit={entry.unit!r}")
    known = {e.release_id for e in previous}
    missing = [p for p in entry.parents if p not in known]
    if missing:
        problems.append(f"parents {missing} do not name earlier entries")
    return problems
