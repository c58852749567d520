"""Privacy mechanisms and their epsilon, via Opacus with dp-accounting as an independent check.

Two mechanisms are recorded, each with every parameter needed to recompute epsilon:

- :class:`DpSgdMechanism`: DP-SGD on the TinyLM (Abadi et al. 2016, arXiv:1607.00133), a
  Poisson-subsampled Gaussian mechanism composed ``steps`` times. Privacy unit: one example.
- :class:`VectorGaussianMechanism`: the update vector clipped to L2 norm ``clip_norm`` plus
  ``N(0, (noise_multiplier * clip_norm)^2)`` per coordinate; one release is one Gaussian
  mechanism with sensitivity ``clip_norm`` (sample rate 1). Privacy unit: one organization.

Privacy units: epsilon bounds the influence of one *unit* (an example, or an organization's whole
dataset). Guarantees for different units are different statements and never add up, so every
mechanism carries ``unit`` and composition (:func:`compute_epsilon`) refuses to mix units; use
:func:`epsilon_by_unit` to get one epsilon per unit.

Accountants: ``"rdp"`` (Mironov 2017, arXiv:1702.07476; Opacus ``RDPAccountant``) and ``"prv"``
(Gopi et al. 2021, arXiv:2106.02848; Opacus ``PRVAccountant``, upper bound). The reference
:func:`reference_epsilon` uses Google's dp-accounting (``RdpAccountant`` or ``PLDAccountant``),
an independent implementation: ``rdp`` should be checked against ``rdp`` and ``prv`` against
``pld`` (both numerically tight), see :data:`REFERENCE_METHOD`.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Literal

import numpy as np
from pydantic import Field, field_validator

from gt_secure.errors import InvalidFieldError
from gt_secure.ledger._model import FrozenModel
from gt_secure.ledger.ddp_mechanism import DistributedGaussianMechanism

if TYPE_CHECKING:
    import dp_accounting
    from dp_accounting.pld.privacy_loss_distribution import PrivacyLossDistribution

Unit = Literal["example", "organization"]
AccountantName = Literal["rdp", "prv"]
ReferenceName = Literal["rdp", "pld"]
REFERENCE_METHOD: dict[str, ReferenceName] = {"rdp": "rdp", "prv": "pld"}
PLD_DISCRETIZATION = 1e-3


def _finite_nonnegative(field: str, value: float) -> float:
    if not math.isfinite(value) or value < 0:
        raise InvalidFieldError(field, value, "finite and >= 0")
    return value


class DpSgdMechanism(FrozenModel):
    """Example-level DP-SGD: Poisson sampling at ``sample_rate``, ``steps`` noisy steps."""

    kind: Literal["dp_sgd"] = "dp_sgd"
    unit: Unit = "example"
    sample_rate: float
    noise_multiplier: float
    steps: int
    clip_norm: float

    @field_validator("sample_rate")
    @classmethod
    def _check_sample_rate(cls, value: float) -> float:
        if not (0.0 < value <= 1.0):
            raise InvalidFieldError("sample_rate", value, "in (0, 1]")
        return value

    @field_validator("noise_multiplier")
    @classmethod
    def _check_noise(cls, value: float) -> float:
        return _finite_nonnegative("noise_multiplier", value)

    @field_validator("steps")
    @classmethod
    def _check_steps(cls, value: int) -> int:
        if value < 0:
            raise InvalidFieldError("steps", value, ">= 0")
        return value

    @field_validator("clip_norm")
    @classmethod
    def _check_clip(cls, value: float) -> float:
        if not math.isfinite(value) or value <= 0:
            raise InvalidFieldError("clip_norm", value, "finite and > 0")
        return value

    def history(self) -> tuple[float, float, int]:
        """Opacus accountant history item ``(noise_multiplier, sample_rate, steps)``."""
        return (self.noise_multiplier, self.sample_rate, self.steps)


class VectorGaussianMechanism(FrozenModel):
    """Organization-level Gaussian mechanism on the clipped update vector (one release)."""

    kind: Literal["vector_gaussian"] = "vector_gaussian"
    unit: Unit = "organization"
    noise_multiplier: float
    clip_norm: float

    @field_validator("noise_multiplier")
    @classmethod
    def _check_noise(cls, value: float) -> float:
        return _finite_nonnegative("noise_multiplier", value)

    @field_validator("clip_norm")
    @classmethod
    def _check_clip(cls, value: float) -> float:
        if not math.isfinite(value) or value <= 0:
            raise InvalidFieldError("clip_norm", value, "finite and > 0")
        return value

    def history(self) -> tuple[float, float, int]:
        """Opacus accountant history item: one Gaussian release at sample rate 1."""
        return (self.noise_multiplier, 1.0, 1)


Mechanism = Annotated[DpSgdMechanism | VectorGaussianMechanism | DistributedGaussianMechanism,
                      Field(discriminator="kind")]


def check_delta(delta: float) -> float:
    """Return ``delta`` or raise if it is outside (0, 1)."""
    if not (0.0 < delta < 1.0):
        raise InvalidFieldError("delta", delta, "in (0, 1)")
    return delta


def single_unit(mechanisms: Sequence[Mechanism]) -> Unit | None:
    """The one privacy unit of ``mechanisms`` (None if empty); raise if they mix units."""
    units = sorted({m.unit for m in mechanisms})
    if len(units) > 1:
        raise InvalidFieldError("mechanisms", units, "of a single privacy unit (compose per unit)")
    return units[0] if units else None


History = tuple[tuple[float, float, int], ...]


def _history(mechanisms: Sequence[Mechanism]) -> History | None:
    """Merged history ``((noise, rate, steps), ...)`` of the mechanisms that ran.

    Identical ``(noise, rate)`` pairs are merged by adding their steps: composition is
    commutative, so epsilon is unchanged and each distinct mechanism is analysed once. None means
    some mechanism ran without noise, so epsilon is infinite.
    """
    single_unit(mechanisms)
    steps: dict[tuple[float, float], int] = {}
    for noise, rate, count in (m.history() for m in mechanisms):
        if count > 0:
            steps[(noise, rate)] = steps.get((noise, rate), 0) + count
    if any(noise == 0.0 for noise, _ in steps):
        return None
    return tuple((noise, rate, count) for (noise, rate), count in sorted(steps.items()))


# Epsilons evaluated ahead of use, e.g. in parallel by :mod:`gt_secure.ledger.prefetch`, keyed
# by ``(function name, history, delta, accountant or method)``: the same pure functions' values.
PREFETCHED: dict[tuple[str, History, float, str], float] = {}


def _prefetched(name: str, history: History, delta: float, method: str) -> float | None:
    return PREFETCHED.get((name, history, delta, method))


@functools.lru_cache(maxsize=4096)
def _opacus_epsilon(history: History, delta: float, accountant: str) -> float:
    from gt_secure.ledger._opacus_light import accountant_classes, rdp_epsilon  # no torch

    if accountant == "rdp":
        with np.errstate(divide="ignore", invalid="ignore"):
            return rdp_epsilon(history, delta)
    if accountant != "prv":
        raise InvalidFieldError("accountant", accountant, "one of 'rdp', 'prv'")
    acc = accountant_classes()[1]()
    acc.history = list(history)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(acc.get_epsilon(delta=delta))


def _event(history: History) -> dp_accounting.DpEvent:
    import dp_accounting

    events: list[dp_accounting.DpEvent] = []
    for noise, rate, steps in history:
        gaussian = dp_accounting.GaussianDpEvent(noise)
        sampled = gaussian if rate == 1.0 else dp_accounting.PoissonSampledDpEvent(rate, gaussian)
        events.append(dp_accounting.SelfComposedDpEvent(sampled, steps))
    return dp_accounting.ComposedDpEvent(events)


@functools.lru_cache(maxsize=1024)
def _reference_rdp_step(noise: float, rate: float) -> np.ndarray:
    """dp-accounting's RDP curve of one step (its ``RdpAccountant`` composing the event once)."""
    import dp_accounting
    from dp_accounting import rdp

    gaussian = dp_accounting.GaussianDpEvent(noise)
    acc = rdp.RdpAccountant()
    absl = logging.getLogger("absl")  # its per-order "failed to converge" notes: CLI noise
    level = absl.level
    absl.setLevel(logging.ERROR)
    try:
        acc.compose(gaussian if rate == 1.0 else
                    dp_accounting.PoissonSampledDpEvent(rate, gaussian))
    finally:
        absl.setLevel(level)
    curve = acc.rdp
    curve.setflags(write=False)
    return curve


@functools.lru_cache(maxsize=1024)
def _reference_pld_step(noise: float, rate: float) -> PrivacyLossDistribution:
    """dp-accounting's PLD of one Poisson-sampled Gaussian step, as its ``PLDAccountant`` builds
    it (add-or-remove-one neighbours, its default)."""
    from dp_accounting.pld import privacy_loss_distribution as pld

    return pld.from_gaussian_mechanism(standard_deviation=noise,
                                       value_discretization_interval=PLD_DISCRETIZATION,
                                       sampling_prob=rate)


@functools.lru_cache(maxsize=4096)
def _reference_epsilon(history: History, delta: float, method: str) -> float:
    """What dp-accounting's ``RdpAccountant`` / ``PLDAccountant`` give for ``_event(history)``,
    with each distinct step's RDP curve or PLD computed once per process: the accountants
    compose ``count * curve`` and ``pld.self_compose(count)`` of the same objects (equality is
    tested in tests/ledger/test_accountant.py)."""
    from dp_accounting.pld import privacy_loss_distribution as pld
    from dp_accounting.rdp import rdp_privacy_accountant

    if method == "rdp":
        orders = rdp_privacy_accountant.DEFAULT_RDP_ORDERS
        total = np.zeros_like(orders, dtype=np.float64)
        for noise, rate, steps in history:
            total += steps * _reference_rdp_step(noise, rate)
        return float(rdp_privacy_accountant.compute_epsilon(np.array(orders), total, delta)[0])
    if method != "pld":
        raise InvalidFieldError("method", method, "one of 'rdp', 'pld'")
    distribution = pld.identity(value_discretization_interval=PLD_DISCRETIZATION)
    for noise, rate, steps in history:
        step = (_reference_pld_step(noise, rate).self_compose(steps) if rate != 1.0 else
                pld.from_gaussian_mechanism(
                    standard_deviation=noise / math.sqrt(steps),
                    value_discretization_interval=PLD_DISCRETIZATION))
        distribution = distribution.compose(step)
    return float(distribution.get_epsilon_for_delta(delta))


def compute_epsilon(
    mechanisms: Sequence[Mechanism], delta: float, accountant: AccountantName = "rdp"
) -> float:
    """Epsilon of the composition of ``mechanisms`` (one privacy unit) at ``delta``, via Opacus."""
    check_delta(delta)
    if accountant != "rdp" and any(m.kind == "distributed_discrete_gaussian" for m in mechanisms):
        raise InvalidFieldError("accountant", accountant, "'rdp' with a distributed discrete "
                                "Gaussian (its zCDP bound is an RDP curve, not a PRV)")
    history = _history(mechanisms)
    if history is None:
        return math.inf
    if not history:
        return 0.0
    found = _prefetched("opacus", history, delta, accountant)
    return _opacus_epsilon(history, delta, accountant) if found is None else found


def epsilon_by_unit(
    mechanisms: Sequence[Mechanism], delta: float, accountant: AccountantName = "rdp"
) -> dict[str, float]:
    """One epsilon per privacy unit present in ``mechanisms``."""
    units = sorted({m.unit for m in mechanisms})
    return {
        unit: compute_epsilon([m for m in mechanisms if m.unit == unit], delta, accountant)
        for unit in units
    }


def dp_event(mechanisms: Sequence[Mechanism]) -> dp_accounting.DpEvent:
    """dp-accounting event tree: composed, self-composed, Poisson-sampled Gaussians."""
    import dp_accounting

    history = _history(mechanisms)
    if history is None:
        return dp_accounting.NonPrivateDpEvent()
    return _event(history)


def reference_epsilon(
    mechanisms: Sequence[Mechanism], delta: float, method: ReferenceName = "rdp"
) -> float:
    """Epsilon recomputed independently with Google's dp-accounting (``rdp`` or ``pld``)."""
    check_delta(delta)
    history = _history(mechanisms)
    if history is None:
        return math.inf
    if not history:
        return 0.0
    found = _prefetched("reference", history, delta, method)
    return _reference_epsilon(history, delta, method) if found is None else found


def noise_multiplier_for(
    target_epsilon: float,
    delta: float,
    sample_rate: float,
    steps: int,
    accountant: AccountantName = "rdp",
    epsilon_tolerance: float = 0.01,
) -> float:
    """Smallest noise multiplier (to ``epsilon_tolerance``) whose epsilon is <= the target."""
    check_delta(delta)
    if not (math.isfinite(target_epsilon) and target_epsilon > 0):
        raise InvalidFieldError("target_epsilon", target_epsilon, "finite and > 0")
    if not (0.0 < sample_rate <= 1.0):
        raise InvalidFieldError("sample_rate", sample_rate, "in (0, 1]")
    if steps < 1:
        raise InvalidFieldError("steps", steps, ">= 1")
    from opacus.accountants.utils import get_noise_multiplier

    try:
        with np.errstate(divide="ignore", invalid="ignore"):
            sigma = get_noise_multiplier(
                target_epsilon=target_epsilon,
                target_delta=delta,
                sample_rate=sample_rate,
                steps=steps,
                accountant=accountant,
                epsilon_tolerance=epsilon_tolerance,
            )
    except ValueError as err:
        raise InvalidFieldError(
            "target_epsilon", target_epsilon, "reachable with a finite noise multiplier"
        ) from err
    return float(sigma)
