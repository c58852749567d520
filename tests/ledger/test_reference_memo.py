"""The memoized dp-accounting reference equals dp-accounting's accountants run on the event."""

from __future__ import annotations

from dp_accounting import pld, rdp
from hypothesis import given, settings
from hypothesis import strategies as st

from gt_secure.ledger.accountant import PLD_DISCRETIZATION, _event, _reference_epsilon

STEP = st.tuples(st.sampled_from([0.8, 2.0]), st.sampled_from([0.01, 1.0]), st.integers(1, 100))


def _accountant(method: str) -> rdp.RdpAccountant | pld.PLDAccountant:
    if method == "rdp":
        return rdp.RdpAccountant()
    return pld.PLDAccountant(value_discretization_interval=PLD_DISCRETIZATION)


@settings(max_examples=6, deadline=None)
@given(steps=st.lists(STEP, min_size=1, max_size=2, unique_by=lambda s: s[:2]),
       method=st.sampled_from(["rdp", "pld"]), delta=st.sampled_from([1e-5, 1e-6]))
def test_memoized_reference_equals_accountant(steps: list[tuple[float, float, int]],
                                              method: str, delta: float) -> None:
    history = tuple(sorted(steps))
    accountant = _accountant(method)
    accountant.compose(_event(history))
    expected = accountant.get_epsilon(delta)
    assert _reference_epsilon(history, delta, method) == expected
    # the cached one-step curve / PLD is reused, not mutated, by a longer composition
    longer = tuple((noise, rate, count * 2) for noise, rate, count in history)
    again = _accountant(method)
    again.compose(_event(longer))
    assert _reference_epsilon(longer, delta, method) == again.get_epsilon(delta)
    _reference_epsilon.cache_clear()
    assert _reference_epsilon(history, delta, method) == expected
