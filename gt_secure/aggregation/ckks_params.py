"""CKKS parameters for addition-only aggregation, with a documented error bound and a chooser.

Aggregation only adds ciphertexts, so no multiplicative depth is needed: one data prime ``q0``
(``coeff_mod_bit_sizes[0]``) plus SEAL's special prime ``P`` (the last one) suffice. A serialized
ciphertext holds two polynomials modulo ``q0`` only, so the ciphertext expansion grows with the
bit size of ``q0`` (measured: 40 bits -> 6.0x, 47 -> 6.8x, 60 -> 8.0x the float32 bytes,
independent of ``N``); the cheapest parameters use the smallest ``q0`` that holds the sum.

Error bound (per slot, Cheon-Kim-Kim-Song 2017 arXiv:2016/421 encoding; average-case canonical
embedding analysis as in Costache et al. 2020 ePrint 2020/1118). SEAL encrypts with the public
key at the key level and divides by ``P``; the rounding of that division dominates the noise:
``e = r0 + r1*s`` with ``r0, r1`` uniform in [-1/2, 1/2] and ``s`` the ternary secret key
(measured slot std ``N/6`` for N = 2048, 4096, 8192, as predicted). Summing ``n`` fresh
ciphertexts with one key gives, in the canonical embedding, ``R0 + S*R1`` where ``S = s(zeta)``
and ``R1`` are approximately circular complex Gaussians with ``E|S|^2 = 2N/3`` and
``E|R1|^2 = nN/12``. With ``P(|a| > sqrt(k E|a|^2)) = exp(-k)`` and ``k = 28``:

    bound(n) = sqrt(n) * (k N / sqrt(18) + 2 z sqrt(N / 24) + 2 k sigma N sqrt(2/3) / P) / scale

(``z = 7`` covers ``R0`` and the encoding rounding; the last term is the residual encryption
noise ``u*e_pk + e0 + e1*s`` divided by ``P``, ``sigma = 3.2``), plus a float64 decoding term.
Each slot exceeds it with probability below ``2 exp(-28) ~ 1.4e-12``; measured errors are
about 5x below it. The decrypted sum is correct only while ``|sum| <= capacity(n)``.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from gt_secure.errors import InvalidFieldError

__all__ = [
    "DEFAULT_CKKS_PARAMS",
    "INTEGER_CKKS_PARAMS",
    "SEAL_MAX_COEFF_BITS_128",
    "CkksParams",
    "check_bit_sizes",
    "check_degree",
    "choose_ckks_params",
    "ckks_problems",
]

#: SEAL's default 128-bit security limit on the total coefficient-modulus bits, per degree N.
SEAL_MAX_COEFF_BITS_128 = {1024: 27, 2048: 54, 4096: 109, 8192: 218, 16384: 438, 32768: 881}
_SIGMA = 3.2
_K_PRODUCT = 28.0
_Z_GAUSS = 7.0
_MIN_SPECIAL_BITS = 20


def check_degree(v: int) -> int:
    """Field check: ``v`` is a degree SEAL supports."""
    if v not in SEAL_MAX_COEFF_BITS_128:
        raise ValueError(f"one of {sorted(SEAL_MAX_COEFF_BITS_128)}")
    return v


def check_bit_sizes(v: tuple[int, ...]) -> tuple[int, ...]:
    """Field check: at least two primes of 14 to 60 bits."""
    if len(v) < 2:
        raise ValueError("at least 2 primes (data primes, then SEAL's special prime)")
    if any(not 14 <= b <= 60 for b in v):
        raise ValueError("a list of prime bit sizes each in [14, 60]")
    return tuple(v)


def ckks_problems(
    degree: int, bit_sizes: tuple[int, ...], scale_bits: int
) -> list[tuple[str, object, str]]:
    """Cross-field problems as ``(field, value, constraint)``: 128-bit security and the scale."""
    out: list[tuple[str, object, str]] = []
    limit = SEAL_MAX_COEFF_BITS_128[degree]
    if sum(bit_sizes) > limit:
        out.append(
            (
                "coeff_mod_bit_sizes",
                list(bit_sizes),
                f"at most {limit} bits in total (128-bit security at poly_modulus_degree={degree})",
            )
        )
    if not 10 <= scale_bits <= bit_sizes[0] - 3:
        out.append(
            (
                "global_scale_bits",
                scale_bits,
                f"in [10, coeff_mod_bit_sizes[0] - 3 = {bit_sizes[0] - 3}]",
            )
        )
    return out


class CkksParams(BaseModel):
    """TenSEAL CKKS parameters: degree ``N``, coefficient-modulus primes (bits), scale bits."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    poly_modulus_degree: int
    coeff_mod_bit_sizes: tuple[int, ...]
    global_scale_bits: int

    @field_validator("poly_modulus_degree")
    @classmethod
    def _degree(cls, v: int) -> int:
        return check_degree(v)

    @field_validator("coeff_mod_bit_sizes")
    @classmethod
    def _bits(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        return check_bit_sizes(v)

    @model_validator(mode="after")
    def _security_and_scale(self) -> CkksParams:
        problems = ckks_problems(
            self.poly_modulus_degree, self.coeff_mod_bit_sizes, self.global_scale_bits
        )
        if problems:
            raise ValueError("; ".join(f"{f} must be {c}, got {f}={v!r}" for f, v, c in problems))
        return self

    @property
    def slots(self) -> int:
        """Floats per ciphertext (``N / 2``)."""
        return self.poly_modulus_degree // 2

    @property
    def scale(self) -> float:
        """The CKKS scale ``2**global_scale_bits``."""
        return float(2**self.global_scale_bits)

    def error_bound(self, num_vectors: int) -> float:
        """Max abs error per slot of a decrypted sum of ``num_vectors`` fresh ciphertexts."""
        n_ = _check_count(num_vectors)
        n = float(self.poly_modulus_degree)
        special = 2.0 ** (self.coeff_mod_bit_sizes[-1] - 1)
        per = (
            _K_PRODUCT * n / math.sqrt(18.0)
            + 2 * _Z_GAUSS * math.sqrt(n / 24.0)
            + 2 * _K_PRODUCT * _SIGMA * n * math.sqrt(2.0 / 3.0) / special
        )
        decode = 16 * math.log2(n) * 2.0 ** (self.coeff_mod_bit_sizes[0] - 52)
        return (math.sqrt(n_) * per + decode) / self.scale

    def capacity(self, num_vectors: int) -> float:
        """Largest ``|sum|`` per slot that still decrypts correctly (no wrap modulo ``q0``)."""
        n_ = _check_count(num_vectors)
        half_q0 = 2.0 ** (self.coeff_mod_bit_sizes[0] - 2)  # q0 >= 2**(bits - 1)
        return (half_q0 - n_ * (self.poly_modulus_degree + 1)) / self.scale


def _check_count(num_vectors: int) -> int:
    if num_vectors < 1:
        raise InvalidFieldError("num_vectors", num_vectors, ">= 1")
    return num_vectors


def choose_ckks_params(max_abs: float, max_vectors: int, target_error: float) -> CkksParams:
    """Least-expansion parameters summing ``max_vectors`` vectors with ``|x| <= max_abs``.

    Minimizes the data-prime bits (the ciphertext size); ties go to the smaller degree (faster).
    Raises :class:`InvalidFieldError` naming ``target_error`` when no parameters reach it.
    """
    if not max_abs > 0 or not math.isfinite(max_abs):
        raise InvalidFieldError("max_abs", max_abs, "finite and > 0")
    _check_count(max_vectors)
    if not target_error > 0:
        raise InvalidFieldError("target_error", target_error, "> 0")
    for q0 in range(14, 61):
        for degree in (2048, 4096, 8192, 16384):
            special = min(60, SEAL_MAX_COEFF_BITS_128[degree] - q0)
            if special < _MIN_SPECIAL_BITS:
                continue
            for scale_bits in range(10, q0 - 2):
                cand = CkksParams(
                    poly_modulus_degree=degree,
                    coeff_mod_bit_sizes=(q0, special),
                    global_scale_bits=scale_bits,
                )
                if (
                    cand.error_bound(max_vectors) <= target_error
                    and cand.capacity(max_vectors) >= max_vectors * max_abs
                ):
                    return cand
    raise InvalidFieldError(
        "target_error",
        target_error,
        f"reachable for max_vectors={max_vectors} and max_abs={max_abs} by CKKS with "
        "N <= 16384 and 128-bit security",
    )


#: ``choose_ckks_params(max_abs=64, max_vectors=100, target_error=1e-4)``: N=4096, one 47-bit
#: data prime, 60-bit special prime, scale 2**32; 6.8x expansion (vs 14.4x for [60, 40, 60]).
DEFAULT_CKKS_PARAMS = CkksParams(
    poly_modulus_degree=4096, coeff_mod_bit_sizes=(47, 60), global_scale_bits=32
)

#: ``choose_ckks_params(max_abs=2**28, max_vectors=100, target_error=0.05)``: N=4096, one 60-bit
#: data prime, 49-bit special prime, scale 2**23 (8.0x expansion). For sums of masked integers
#: below ``2**28`` in magnitude (:mod:`gt_secure.aggregation.ckks_masks`): the error bound (0.038
#: at 100 vectors) stays far below 1/2, so the key holder rounds the decrypted sum to exact
#: integers; ``capacity(100) = 128 * 2**28``.
INTEGER_CKKS_PARAMS = CkksParams(
    poly_modulus_degree=4096, coeff_mod_bit_sizes=(60, 49), global_scale_bits=23
)
