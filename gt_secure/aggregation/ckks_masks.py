"""Pairwise zero-sum masks and the integer encoding that CKKS sums in the dp-ckks protocol.

Each organization quantizes its update vector to integers (step ``2**-k``), adds its pairwise
masks modulo ``2**modulus_bits`` and encrypts the centered result. The masks of organizations
``i < j`` come from one seed per pair, agreed by X25519 (RFC 7748) and expanded by HKDF-SHA256
(RFC 5869) plus ChaCha20 (RFC 8439): ``i`` adds ``PRG(s_ij)``, ``j`` subtracts it, so the masks
cancel modulo ``2**modulus_bits`` only in the sum of *every* participant (Bonawitz et al., CCS
2017, without dropout recovery). A decrypted sum that misses a participant, or holds a
participant twice, is uniformly distributed: the key holder cannot be tricked into decrypting
one organization's vector by a forged count. The key holder rounds the decrypted CKKS sum to
integers (its error stays below 1/2, :data:`INTEGRALITY_MAX`), so the released mean is an exact
function of the plaintexts and carries no CKKS noise (Li-Micciancio, EUROCRYPT 2021).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import BaseModel, ConfigDict

from gt_secure.errors import InvalidFieldError, UpdateVectorError

__all__ = [
    "INTEGRALITY_MAX",
    "MaskedEncoding",
    "mask_key_bytes",
    "new_mask_key",
    "organization_mask",
    "pair_seed",
    "prg_mask",
]

#: Largest CKKS error bound of a sum the encoding accepts: rounding to integers stays exact.
INTEGRALITY_MAX = 0.25
_INFO = b"gt-secure/ckks-mask/v1"


class MaskedEncoding(BaseModel):
    """Quantization step and mask modulus: values ``|x| <= max_abs`` become integers
    ``round(x / step)``; ``max_orgs`` of them sum below ``2**(modulus_bits - 1)``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    modulus_bits: int
    step: float
    max_abs: float

    @classmethod
    def for_sum(cls, max_abs: float, max_orgs: int, modulus_bits: int) -> MaskedEncoding:
        """Finest power-of-two step at which ``max_orgs`` vectors sum without wrapping."""
        if not 2 <= modulus_bits <= 32:
            raise InvalidFieldError("modulus_bits", modulus_bits, "in [2, 32]")
        if not (max_abs > 0 and math.isfinite(max_abs)):
            raise InvalidFieldError("max_abs", max_abs, "finite and > 0")
        if max_orgs < 1:
            raise InvalidFieldError("max_orgs", max_orgs, ">= 1")
        half = 2 ** (modulus_bits - 1)
        k = math.floor(math.log2(max_orgs * max_abs / half)) - 1
        while max_orgs * math.ceil(max_abs / 2.0**k) >= half:
            k += 1
        return cls(modulus_bits=modulus_bits, step=2.0**k, max_abs=max_abs)

    @property
    def modulus(self) -> int:
        """``2**modulus_bits``."""
        return 1 << self.modulus_bits

    def quantize(self, flat: np.ndarray, field: str = "flat") -> np.ndarray:
        """Nearest multiples of ``step`` (int64); refuses NaN/Inf and ``|x| > max_abs``."""
        data = np.asarray(flat, dtype=np.float64)
        bad = int(data.size - np.count_nonzero(np.isfinite(data)))
        if bad:
            raise UpdateVectorError(f"{field}.non_finite_count", bad, "0 (no NaN/Inf)")
        peak = float(np.max(np.abs(data))) if data.size else 0.0
        if peak > self.max_abs:
            raise UpdateVectorError(f"max(abs({field}))", peak, f"<= {self.max_abs}")
        return np.rint(data / self.step).astype(np.int64)

    def center(self, values: np.ndarray) -> np.ndarray:
        """Residues modulo ``2**modulus_bits`` in ``[-2**(b-1), 2**(b-1))`` (int64)."""
        half = self.modulus // 2
        return (np.asarray(values, dtype=np.int64) + half) % self.modulus - half

    def masked(self, quantized: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """What an organization encrypts: ``center(quantized + mask)`` as float64 integers."""
        return self.center(quantized + mask).astype(np.float64)

    def decode_sum(self, decrypted: np.ndarray, error_bound: float) -> np.ndarray:
        """Sum of the plaintext vectors from a decrypted masked sum (float64).

        Refuses (naming ``ckks_sum.integer_distance``) a sum farther than ``error_bound`` from
        integers: what honest ciphertexts cannot produce, e.g. a forged non-integer encryption.
        """
        values = np.asarray(decrypted, dtype=np.float64)
        rounded = np.rint(values)
        distance = float(np.max(np.abs(values - rounded))) if values.size else 0.0
        if not distance <= error_bound:
            raise InvalidFieldError("ckks_sum.integer_distance", round(distance, 6),
                                    f"<= {error_bound:.3g} (the CKKS error bound)")
        return self.center(rounded.astype(np.int64)).astype(np.float64) * self.step


def new_mask_key() -> X25519PrivateKey:
    """A fresh X25519 key for one round's mask agreement (OS CSPRNG)."""
    return X25519PrivateKey.generate()


def mask_key_bytes(key: X25519PrivateKey) -> bytes:
    """The raw 32-byte public key to announce."""
    return key.public_key().public_bytes(serialization.Encoding.Raw,
                                         serialization.PublicFormat.Raw)


def pair_seed(own: X25519PrivateKey, peer_public: bytes, transcript: bytes) -> bytes:
    """32-byte seed shared by two organizations: HKDF-SHA256 of their X25519 secret, bound to
    ``transcript`` (run, round and the two organization ids)."""
    try:
        shared = own.exchange(X25519PublicKey.from_public_bytes(peer_public))
    except ValueError as err:
        raise InvalidFieldError("mask_key", peer_public.hex()[:16], "a valid X25519 key") from err
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=_INFO + transcript).derive(shared)


def prg_mask(seed: bytes, dim: int, modulus_bits: int) -> np.ndarray:
    """``dim`` uniform residues modulo ``2**modulus_bits`` (int64) from ChaCha20 keyed by
    ``seed`` (zero nonce: every seed is used once)."""
    if len(seed) != 32:
        raise InvalidFieldError("len(seed)", len(seed), "32")
    encryptor = Cipher(algorithms.ChaCha20(seed, b"\x00" * 16), mode=None).encryptor()
    words = np.frombuffer(encryptor.update(b"\x00" * (4 * dim)), dtype="<u4")
    return (words & np.uint32((1 << modulus_bits) - 1)).astype(np.int64)


def organization_mask(org_id: str, seeds: Mapping[str, bytes], dim: int,
                      modulus_bits: int) -> np.ndarray:
    """Sum of ``+PRG(seed)`` for peers after ``org_id`` and ``-PRG(seed)`` for peers before it
    (string order), modulo ``2**modulus_bits``: the masks of all participants sum to zero."""
    total = np.zeros(dim, dtype=np.int64)
    for peer, seed in seeds.items():
        if peer == org_id:
            raise InvalidFieldError("seeds", peer, f"peers other than {org_id!r}")
        part = prg_mask(seed, dim, modulus_bits)
        total = total + part if org_id < peer else total - part
    return total % (1 << modulus_bits)
