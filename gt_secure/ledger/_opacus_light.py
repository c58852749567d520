"""Opacus's RDP and PRV accountants without importing torch.

``opacus.accountants`` pulls in torch twice over: the ``opacus`` package ``__init__`` loads the
whole training stack, and ``accountants/accountant.py`` imports ``DPOptimizer`` for one hook.
The epsilon computations themselves (``rdp.py``, ``prv.py``, ``analysis/``) use only numpy and
scipy. This module executes those unchanged Opacus source files under a private package name,
with ``IAccountant`` replaced by a minimal base holding the ``history`` list, so reading or
verifying a ledger does not pay ~3 s for torch. ``tests/ledger/test_opacus_light.py`` checks
that the results equal those of the real ``opacus.accountants`` classes.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import sys
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

_PACKAGE = "_gt_secure_opacus_accountants"


class _IAccountant:
    """What the epsilon code of Opacus's accountants uses from their base: ``history``."""

    def __init__(self) -> None:
        self.history: list[tuple[float, float, int]] = []


def _accountants_dir() -> Path:
    spec = importlib.util.find_spec("opacus")  # locates the package without executing it
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("opacus is not installed", name="opacus")
    return Path(list(spec.submodule_search_locations)[0]) / "accountants"


def light_classes() -> tuple[type[Any], type[Any]]:
    """``(RDPAccountant, PRVAccountant)`` from Opacus's source files, never importing torch."""
    if _PACKAGE not in sys.modules:
        package = types.ModuleType(_PACKAGE)
        package.__path__ = [str(_accountants_dir())]
        base = types.ModuleType(f"{_PACKAGE}.accountant")
        base.IAccountant = _IAccountant  # type: ignore[attr-defined]
        sys.modules[_PACKAGE] = package
        sys.modules[base.__name__] = base
    rdp = importlib.import_module(f"{_PACKAGE}.rdp")
    prv = importlib.import_module(f"{_PACKAGE}.prv")
    return rdp.RDPAccountant, prv.PRVAccountant


def accountant_classes() -> tuple[type[Any], type[Any]]:
    """Opacus's ``(RDPAccountant, PRVAccountant)``: the real ones once Opacus is loaded anyway,
    else :func:`light_classes`."""
    if "opacus.accountants" in sys.modules:
        from opacus.accountants import PRVAccountant, RDPAccountant

        return RDPAccountant, PRVAccountant
    return light_classes()


@functools.lru_cache(maxsize=1024)
def _rdp_one_step(noise_multiplier: float, sample_rate: float) -> np.ndarray:
    rdp_class, _ = light_classes()
    analysis = sys.modules[f"{_PACKAGE}.analysis.rdp"]
    result = analysis.compute_rdp(q=sample_rate, noise_multiplier=noise_multiplier, steps=1,
                                  orders=rdp_class.DEFAULT_ALPHAS)
    result.setflags(write=False)
    return result


def rdp_epsilon(history: Sequence[tuple[float, float, int]], delta: float) -> float:
    """``RDPAccountant.get_epsilon(delta)`` for ``history`` (noise, rate, steps), bit for bit.

    Opacus computes each entry's RDP vector at ``steps`` as the one-step vector times
    ``steps``; the one-step vector is cached here, so a ledger whose releases repeat one
    (noise, rate) pays for it once instead of once per release."""
    rdp_class, _ = light_classes()
    if not history:
        return 0.0
    analysis = sys.modules[f"{_PACKAGE}.analysis.rdp"]
    rdp = sum([_rdp_one_step(noise, rate) * steps for noise, rate, steps in history])
    epsilon, _ = analysis.get_privacy_spent(orders=rdp_class.DEFAULT_ALPHAS, rdp=rdp,
                                            delta=delta)
    return float(epsilon)
