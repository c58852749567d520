"""Opacus's RDP and PRV accountants without importing torch.

``opacus.accountants`` pulls in torch twice over: the ``opacus`` package ``__init__`` loads the
whole training stack, and ``accountants/accountant.py`` imports ``DPOptimizer`` for one hook.
The epsilon computations themselves (``rdp.py``, ``prv.py``, ``analysis/``) use only numpy and
scipy. This module executes those unchanged Opacus source files under a private package name,
with ``IAccountant`` replaced by a minimal base holding the ``history`` list, so reading or
verifying a ledger does not pay ~3 s for torch. The RDP module is loaded alone (the PRV module
imports ``scipy.signal``, ~0.9 s) until a PRV epsilon is asked for.

One pure function of that private copy is memoized: ``analysis.rdp.compute_rdp`` (used by the
RDP accountant and by the PRV accountant's safe-domain bound) returns Opacus's own one-step RDP
vector for ``(q, noise_multiplier, orders)``, computed once per process, times ``steps``: the
same expression Opacus evaluates, so a ledger whose releases repeat one mechanism pays for it
once instead of once per release. ``tests/ledger/test_opacus_light.py`` checks that the results
equal those of the real ``opacus.accountants`` classes bit for bit.
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


@functools.lru_cache(maxsize=4096)
def _one_step(analysis: Any, q: float, noise_multiplier: float,
              orders: tuple[float, ...]) -> np.ndarray:
    """Opacus's ``compute_rdp(steps=1)`` body: the one-step RDP vector (read-only)."""
    result = np.array([analysis._compute_rdp(q, noise_multiplier, order) for order in orders])
    result.setflags(write=False)
    return result


def _memoized_compute_rdp(analysis: Any) -> Any:
    """``analysis.compute_rdp`` with its one-step vector cached; same values."""
    original = analysis.compute_rdp

    def compute_rdp(*, q: float, noise_multiplier: float, steps: int, orders: Any) -> Any:
        if isinstance(orders, float):
            return original(q=q, noise_multiplier=noise_multiplier, steps=steps, orders=orders)
        return _one_step(analysis, q, noise_multiplier, tuple(orders)) * steps

    compute_rdp.__doc__ = original.__doc__
    return compute_rdp


def _load(name: str) -> types.ModuleType:
    """Module ``name`` (``rdp`` or ``prv``) of Opacus's accountants, loaded without torch."""
    if _PACKAGE not in sys.modules:
        package = types.ModuleType(_PACKAGE)
        package.__path__ = [str(_accountants_dir())]
        base = types.ModuleType(f"{_PACKAGE}.accountant")
        base.IAccountant = _IAccountant  # type: ignore[attr-defined]
        sys.modules[_PACKAGE] = package
        sys.modules[base.__name__] = base
        analysis = importlib.import_module(f"{_PACKAGE}.analysis.rdp")
        analysis.compute_rdp = _memoized_compute_rdp(analysis)  # type: ignore[attr-defined]
    return importlib.import_module(f"{_PACKAGE}.{name}")


def light_rdp_class() -> type[Any]:
    """Opacus's ``RDPAccountant`` from its source file, never importing torch or scipy.signal."""
    return _load("rdp").RDPAccountant  # type: ignore[no-any-return]


def light_classes() -> tuple[type[Any], type[Any]]:
    """``(RDPAccountant, PRVAccountant)`` from Opacus's source files, never importing torch."""
    return light_rdp_class(), _load("prv").PRVAccountant


def accountant_classes() -> tuple[type[Any], type[Any]]:
    """Opacus's ``(RDPAccountant, PRVAccountant)``: the real ones once Opacus is loaded anyway,
    else :func:`light_classes`."""
    if "opacus.accountants" in sys.modules:
        from opacus.accountants import PRVAccountant, RDPAccountant

        return RDPAccountant, PRVAccountant
    return light_classes()


def rdp_epsilon(history: Sequence[tuple[float, float, int]], delta: float) -> float:
    """``RDPAccountant.get_epsilon(delta)`` for ``history`` (noise, rate, steps), bit for bit,
    with the light class (one-step RDP cached)."""
    accountant = light_rdp_class()()
    accountant.history = list(history)
    return float(accountant.get_epsilon(delta))
