"""Plain-language statement of a ledger entry's guarantee, after TF Privacy's
``compute_dp_sgd_privacy_statement``: unit of privacy, epsilon, delta, mechanism, accountant and
the protocol the release ran under; an unprotected release says that nothing is protected."""

from __future__ import annotations

from collections.abc import Sequence

from gt_secure.ledger.entry import LedgerEntry

ACCOUNTANTS = {"rdp": "Rényi DP (RDP) accountant", "prv": "PRV accountant (Gopi et al. 2021)"}
UNPROTECTED = ("no differential privacy: the released update protects neither the records nor "
               "the dataset")


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def statement(entry: LedgerEntry, units_of_release: set[str] | None = None) -> str:
    """The entry's guarantee in plain language (after TF Privacy's
    ``compute_dp_sgd_privacy_statement``): unit, epsilon, delta, mechanism, accountant,
    protocol."""
    protocol = f"; protocol {entry.protocol}" if entry.protocol else ""
    if entry.kind == "unprotected_release":
        under = f" (protocol {entry.protocol})" if entry.protocol else ""
        return (f"{UNPROTECTED} of {entry.org_id}{under}; it spends no budget because no "
                "budget covers it: its privacy loss is unbounded")
    if entry.kind == "post_processing":
        return (f"{entry.org_id} derived this from {', '.join(entry.parents)} only "
                "(post-processing): no additional privacy cost")
    accountant = ACCOUNTANTS.get(entry.accountant or "", entry.accountant or "?")
    total, spent, delta = _fmt(entry.epsilon_total or 0.0), _fmt(entry.epsilon_spent), entry.delta
    parts = []
    for m in entry.mechanisms:
        if m.kind == "dp_sgd":
            parts.append(f"DP-SGD, Poisson sampling rate {m.sample_rate:g}, noise multiplier "
                         f"{m.noise_multiplier:g}, {m.steps} steps, clip norm {m.clip_norm:g}")
        elif m.kind == "vector_gaussian":
            parts.append(f"Gaussian noise (multiplier {m.noise_multiplier:g}) on the update "
                         f"vector clipped to L2 norm {m.clip_norm:g}")
        else:
            parts.append(f"distributed discrete Gaussian (its share: sigma {m.sigma:g} on a grid "
                         f"of scale {m.scale:g}) on the update vector clipped to L2 norm "
                         f"{m.clip_norm:g}, summed by SecAgg+; holds if {m.condition}")
    how = "; ".join(parts)
    if entry.unit == "example":
        whole = ("the organization's dataset as a whole is also protected by its "
                 "organization-level entry" if "organization" in (units_of_release or set())
                 else "the organization's dataset as a whole is not protected")
        return (f"each training record of {entry.org_id} is protected at ε={total}, δ={delta:g} "
                f"over all its releases so far (this release ε={spent}; {how}; {accountant}"
                f"{protocol}); {whole}")
    return (f"the whole dataset of {entry.org_id} (any change to all of its records) is "
            f"protected at ε={total}, δ={delta:g} over all its releases so far (this release "
            f"ε={spent}; {how}; {accountant}{protocol})")


def statements(entries: Sequence[LedgerEntry]) -> list[str]:
    """:func:`statement` of every entry, aware of the units each release was recorded at."""
    units: dict[str, set[str]] = {}
    for e in entries:
        if e.unit is not None:
            units.setdefault(e.release_id, set()).add(e.unit)
    return [statement(e, units.get(e.release_id)) for e in entries]
