"""The distributed discrete Gaussian mechanism (organization level) and its own privacy analysis.

Each of the organizations adds ``N_Z(0, sigma^2)`` (integer units) to its clipped, scaled and
rounded update vector; SecAgg+ reveals only the sum. Kairouz, Liu & Steinke 2021 ("The
Distributed Discrete Gaussian Mechanism for Federated Learning with Secure Aggregation",
arXiv:2102.06387, Theorem 1): with ``k`` independent ``N_Z(0, sigma^2)^d`` summands and an integer
sensitivity ``||Delta||_2 <= Delta2``, the sum satisfies ``eps^2 / 2``-concentrated DP with

    eps = sqrt(Delta2^2 / (k sigma^2) + tau d / 2),
    tau = 10 sum_{j=1}^{k-1} exp(-2 pi^2 sigma^2 j / (j + 1)).

(``k = 1`` is Canonne, Kamath & Steinke 2020, Theorem 14: ``Delta2^2 / (2 sigma^2)``-zCDP.)
``rho``-zCDP is Renyi DP ``rho * alpha`` at every order, i.e. the RDP curve of a Gaussian
mechanism with noise multiplier ``1 / eps``: :meth:`DistributedGaussianMechanism.history` hands
the ledger that effective multiplier, so the RDP accountant composes and converts it exactly.
(Only the ``rdp`` accountant: a PRV/PLD of the continuous Gaussian is not implied by zCDP.)

Condition: the guarantee is for the *sum*, and holds only while SecAgg+ holds and at most
``max_colluders`` organizations share their noise with the server; the noise of at least
``min_survivors - max_colluders`` honest organizations must reach the sum, so the analysis takes
the worst ``k`` in ``[min_survivors - max_colluders, organizations]``. An individual vector that
leaks (collusion beyond the threshold) carries only its share of the noise.

Public basis (optional ``basis``): when organizations release the ``k`` coordinates of their
update in a public basis (:mod:`gt_secure.aggregation.ddp_basis`), ``dim`` is ``k`` and
``basis`` records the basis's SHA-256 and ``k``: the claim is about the released ``k``-dimensional
vector (the provider's reconstruction is post-processing). Absent, the field is not serialized,
so entries written before it keep their bytes.
"""

from __future__ import annotations

import functools
import math
from typing import Literal

from pydantic import SerializerFunctionWrapHandler, model_serializer, model_validator

from gt_secure.errors import InvalidFieldError
from gt_secure.ledger._model import FrozenModel

__all__ = ["DistributedGaussianMechanism", "ReleaseBasis", "condition_text", "kls_epsilon"]


def kls_epsilon(sigma: float, sensitivity: float, dim: int, summands: int) -> float:
    """KLS21 Theorem 1: the ``eps`` of ``eps^2/2``-zCDP for ``summands`` discrete Gaussians."""
    if not (math.isfinite(sigma) and sigma >= 0.5):
        raise InvalidFieldError("sigma", sigma, ">= 0.5 (KLS21 Theorem 1)")
    if not (math.isfinite(sensitivity) and sensitivity >= 0):
        raise InvalidFieldError("sensitivity", sensitivity, "finite and >= 0")
    if dim < 1 or summands < 1:
        raise InvalidFieldError("dim" if dim < 1 else "summands", min(dim, summands), ">= 1")
    tau = 10.0 * sum(math.exp(-2 * math.pi**2 * sigma**2 * j / (j + 1))
                     for j in range(1, summands))
    return math.sqrt(sensitivity**2 / (summands * sigma**2) + tau * dim / 2.0)


def condition_text(organizations: int, min_survivors: int, max_colluders: int,
                   aggregation: str = "secagg+") -> str:
    """What the organization-level epsilon of a distributed release is conditional on
    (``aggregation``: ``secagg+`` or ``ckks``, whose key holder must decrypt only the sum)."""
    holds = ("the CKKS key holder is honest for decryption (decrypts only the signed sum)"
             if aggregation == "ckks" else "SecAgg+ holds")
    return (f"sum only: {holds}, at most {max_colluders} of {organizations} organizations "
            f"collude with the server, and at least {min_survivors} organizations' noise reaches "
            "the sum (an individual vector carries only its share)")


class ReleaseBasis(FrozenModel):
    """The public basis a release's coordinates are in: its SHA-256 and ``k`` rows."""

    sha256: str
    k: int
    ambient_dim: int  # d of the update space the basis lives in

    @model_validator(mode="after")
    def _check(self) -> ReleaseBasis:
        if len(self.sha256) != 64 or any(c not in "0123456789abcdef" for c in self.sha256):
            raise InvalidFieldError("basis.sha256", self.sha256, "64 lowercase hex digits")
        if not 1 <= self.k <= self.ambient_dim:
            raise InvalidFieldError("basis.k", self.k, f"in [1, ambient_dim={self.ambient_dim}]")
        return self


class DistributedGaussianMechanism(FrozenModel):
    """One organization's share of a distributed discrete Gaussian release (one round).

    Units: ``clip_norm`` in update-vector units; ``sigma`` and ``sensitivity`` in integer units
    of the grid ``scale`` (a value ``x`` is sent as about ``x / scale``).
    """

    kind: Literal["distributed_discrete_gaussian"] = "distributed_discrete_gaussian"
    unit: Literal["organization"] = "organization"
    clip_norm: float
    dim: int
    scale: float
    sigma: float
    sensitivity: float
    bits: int
    organizations: int
    min_survivors: int
    max_colluders: int
    condition: str
    basis: ReleaseBasis | None = None

    @model_serializer(mode="wrap")
    def _omit_absent_basis(self, handler: SerializerFunctionWrapHandler) -> dict[str, object]:
        data: dict[str, object] = handler(self)
        if self.basis is None:
            data.pop("basis", None)
        return data

    @model_validator(mode="after")
    def _check(self) -> DistributedGaussianMechanism:
        problems: list[InvalidFieldError] = []

        def need(ok: bool, field: str, constraint: str) -> None:
            if not ok:
                problems.append(InvalidFieldError(field, getattr(self, field), constraint))

        for name in ("clip_norm", "scale", "sensitivity"):
            value = getattr(self, name)
            need(math.isfinite(value) and value > 0, name, "finite and > 0")
        need(math.isfinite(self.sigma) and self.sigma >= 0.5, "sigma", ">= 0.5 (KLS21)")
        need(self.dim >= 1, "dim", ">= 1")
        need(2 <= self.bits <= 31, "bits", "in [2, 31]")
        need(self.organizations >= 1, "organizations", ">= 1")
        need(1 <= self.min_survivors <= self.organizations, "min_survivors",
             f"in [1, organizations={self.organizations}]")
        need(0 <= self.max_colluders < self.min_survivors, "max_colluders",
             f"in [0, min_survivors={self.min_survivors})")
        if self.basis is not None:
            need(self.basis.k == self.dim, "dim", f"== basis.k={self.basis.k} (the released "
                 "coordinates)")
        if not problems:
            wanted = [condition_text(self.organizations, self.min_survivors,
                                     self.max_colluders, a) for a in ("secagg+", "ckks")]
            need(self.condition in wanted, "condition", " or ".join(map(repr, wanted)))
        if problems:
            first = problems[0]
            for other in problems[1:]:
                first.add_note(str(other))
            raise first
        return self

    @property
    def honest_summands(self) -> int:
        """Fewest organizations whose noise the server cannot subtract."""
        return self.min_survivors - self.max_colluders

    def zcdp_epsilon(self) -> float:
        """Worst KLS ``eps`` over the possible honest summand counts."""
        return _worst_epsilon(self.sigma, self.sensitivity, self.dim, self.honest_summands,
                              self.organizations)

    def effective_noise_multiplier(self) -> float:
        """The Gaussian noise multiplier with the same RDP curve: ``1 / eps``."""
        return 1.0 / self.zcdp_epsilon()

    def history(self) -> tuple[float, float, int]:
        """Opacus accountant item: a Gaussian release at rate 1 with the same RDP curve."""
        return (self.effective_noise_multiplier(), 1.0, 1)


@functools.lru_cache(maxsize=1024)
def _worst_epsilon(sigma: float, sensitivity: float, dim: int, low: int, high: int) -> float:
    return max(kls_epsilon(sigma, sensitivity, dim, k) for k in range(low, high + 1))
