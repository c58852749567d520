"""Opacus's accountants loaded without torch give exactly the real classes' epsilon."""

from __future__ import annotations

import subprocess
import sys

from hypothesis import given, settings
from hypothesis import strategies as st
from opacus.accountants import PRVAccountant, RDPAccountant

from gt_secure.ledger._opacus_light import light_classes, rdp_epsilon

STEP = st.tuples(st.floats(0.5, 5.0), st.floats(0.001, 1.0), st.integers(1, 500))


@settings(max_examples=10, deadline=None)
@given(history=st.lists(STEP, min_size=1, max_size=3), delta=st.sampled_from([1e-5, 1e-6]))
def test_light_rdp_equals_opacus(history: list[tuple[float, float, int]], delta: float) -> None:
    light_rdp, _ = light_classes()
    light, real = light_rdp(), RDPAccountant()
    light.history = real.history = list(history)
    assert light.get_epsilon(delta) == real.get_epsilon(delta)
    assert rdp_epsilon(history, delta) == real.get_epsilon(delta)  # cached one-step RDP
    assert rdp_epsilon(history, delta) == real.get_epsilon(delta)  # ... and again, from cache


@settings(max_examples=3, deadline=None)
@given(history=st.lists(STEP, min_size=1, max_size=2))
def test_light_prv_equals_opacus(history: list[tuple[float, float, int]]) -> None:
    _, light_prv = light_classes()
    light, real = light_prv(), PRVAccountant()
    light.history = real.history = list(history)
    assert light.get_epsilon(1e-5) == real.get_epsilon(1e-5)


def test_epsilon_without_torch() -> None:
    code = ("import sys\nfrom gt_secure.ledger.accountant import DpSgdMechanism, compute_epsilon\n"
            "m = DpSgdMechanism(sample_rate=0.01, noise_multiplier=1.0, steps=100, clip_norm=1.0)\n"
            "print(compute_epsilon([m], 1e-5, 'rdp'), compute_epsilon([m], 1e-5, 'prv'))\n"
            "print('torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout.split()
    real_rdp, real_prv = RDPAccountant(), PRVAccountant()
    real_rdp.history = real_prv.history = [(1.0, 0.01, 100)]
    assert float(out[0]) == real_rdp.get_epsilon(1e-5)
    assert float(out[1]) == real_prv.get_epsilon(1e-5)
    assert out[2] == "False"
