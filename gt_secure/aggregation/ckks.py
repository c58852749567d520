"""CKKS (TenSEAL) primitives: a key pair, encryption, blind addition, decryption of a sum.

Roles (``protocols/dp-ckks.md``): a key-holder organization generates a fresh
:class:`CkksKeyPair` per round and publishes a public context without the secret key;
organizations :func:`encrypt` (float vectors) or :func:`encrypt_values` (the masked integers of
:mod:`gt_secure.aggregation.ckks_masks`); the aggregator (the Flower server) sums ciphertexts
with :func:`add_ciphertexts` and never holds the secret key; the key holder decrypts only a sum
(:func:`decrypt_sum`) after :mod:`gt_secure.organization.key_holder` checked who contributed.

Every function that an organization or the aggregator calls refuses a context that carries a
secret key (:class:`SecretKeyExposureError`), so a misconfigured deployment fails loudly
instead of silently handing the decryption key to the wrong party. Parameters and the error
bound of the decrypted sum are in :mod:`gt_secure.aggregation.ckks_params`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tenseal as ts

from gt_secure.aggregation.ckks_params import DEFAULT_CKKS_PARAMS, CkksParams
from gt_secure.aggregation.plain import validate_vectors
from gt_secure.errors import InvalidFieldError, SecretKeyExposureError, UpdateVectorError

__all__ = [
    "EncryptedVector",
    "CkksKeyPair",
    "add_ciphertexts",
    "check_ciphertexts",
    "decrypt_sum",
    "encrypt",
    "encrypt_values",
    "load_public_context",
]

#: One vector as serialized CKKS ciphertexts of ``N / 2`` slots each (the last may be shorter).
EncryptedVector = list[bytes]

PUBLIC_FILE = "ckks_public.bin"
SECRET_FILE = "ckks_secret.bin"
PARAMS_FILE = "ckks_params.json"


class CkksKeyPair:
    """The key holder's CKKS key material; the only object that holds the secret key."""

    def __init__(self, params: CkksParams, context: ts.Context) -> None:
        if not context.is_private():
            raise SecretKeyExposureError("CkksKeyPair needs a context holding the secret key")
        self.params = params
        self._context = context

    @classmethod
    def generate(cls, params: CkksParams = DEFAULT_CKKS_PARAMS) -> CkksKeyPair:
        """Create a fresh CKKS key pair (SEAL checks 128-bit security for the parameters)."""
        context = ts.context(
            ts.SCHEME_TYPE.CKKS,
            poly_modulus_degree=params.poly_modulus_degree,
            coeff_mod_bit_sizes=list(params.coeff_mod_bit_sizes),
        )
        context.global_scale = params.scale
        return cls(params, context)

    def public_context_bytes(self) -> bytes:
        """Serialize the public key only: no secret key, no relinearization or Galois keys."""
        return bytes(
            self._context.serialize(
                save_public_key=True,
                save_secret_key=False,
                save_galois_keys=False,
                save_relin_keys=False,
            )
        )

    def public_context(self) -> ts.Context:
        """The public context as organizations and the aggregator load it."""
        return load_public_context(self.public_context_bytes())

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``ckks_secret.bin`` (mode 0600, key holder only), ``ckks_public.bin`` (to publish)
        and ``ckks_params.json`` into ``directory``; returns the public file's path."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        secret = out / SECRET_FILE
        fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(bytes(self._context.serialize(save_secret_key=True)))
        (out / PARAMS_FILE).write_text(self.params.model_dump_json(indent=2))
        public = out / PUBLIC_FILE
        public.write_bytes(self.public_context_bytes())
        return public

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> CkksKeyPair:
        """Load keys written by :meth:`save` (refuses a directory without the secret key)."""
        root = Path(directory)
        for name in (SECRET_FILE, PARAMS_FILE):
            if not (root / name).is_file():
                raise InvalidFieldError("directory", str(root),
                                        f"a directory holding {name} (CkksKeyPair.save)")
        params = CkksParams.model_validate(json.loads((root / PARAMS_FILE).read_text()))
        return cls(params, ts.context_from((root / SECRET_FILE).read_bytes()))

    @property
    def secret_context(self) -> ts.Context:
        """The private context (key-holder side only)."""
        return self._context

    def __repr__(self) -> str:
        return f"CkksKeyPair(params={self.params!r}, secret_key=<held>)"


def load_public_context(data: bytes) -> ts.Context:
    """Load a public context; refuse one that carries a secret key."""
    context = ts.context_from(data)
    _require_public(context, "load_public_context")
    return context


def _require_public(context: ts.Context, who: str) -> None:
    if context.is_private() or context.has_secret_key():
        raise SecretKeyExposureError(
            f"{who}: the CKKS context carries the secret key; only the key holder may hold it, "
            "or individual updates become decryptable. Send "
            "CkksKeyPair.public_context_bytes() instead."
        )


def _slots(context: ts.Context) -> int:
    parms = context.seal_context().data.first_context_data().parms()
    return int(parms.poly_modulus_degree()) // 2


def encrypt(
    vector: np.ndarray,
    public_ctx: ts.Context,
    *,
    org_id: str = "organization",
    max_abs: float | None = None,
) -> EncryptedVector:
    """Encrypt a float32 vector into ciphertexts of ``N / 2`` slots (organization side)."""
    _require_public(public_ctx, "encrypt")
    validate_vectors({org_id: vector})
    if max_abs is not None:
        peak = float(np.max(np.abs(vector)))
        if peak > max_abs:
            raise UpdateVectorError(f"max(abs(vectors[{org_id!r}].flat))", peak, f"<= {max_abs}")
    return encrypt_values(vector.astype(np.float64), public_ctx)


def encrypt_values(values: np.ndarray, public_ctx: ts.Context) -> EncryptedVector:
    """Encrypt a float64 vector as it is (the caller bounds it) in chunks of ``N / 2`` slots."""
    _require_public(public_ctx, "encrypt_values")
    slots = _slots(public_ctx)
    data = np.asarray(values, dtype=np.float64)
    return [
        ts.ckks_vector(public_ctx, data[i : i + slots]).serialize()
        for i in range(0, data.shape[0], slots)
    ]


def check_ciphertexts(encrypted: EncryptedVector, public_ctx: ts.Context, length: int,
                      *, field: str = "ciphertexts") -> None:
    """Check that ``encrypted`` deserializes under ``public_ctx`` into chunks of ``N / 2`` slots
    holding ``length`` values in all (aggregator side, before summing; names ``field``)."""
    _require_public(public_ctx, "check_ciphertexts")
    slots = _slots(public_ctx)
    sizes = [min(slots, length - i) for i in range(0, length, slots)]
    if len(encrypted) != len(sizes):
        raise InvalidFieldError(f"len({field})", len(encrypted), f"{len(sizes)} chunks")
    for j, (blob, size) in enumerate(zip(encrypted, sizes, strict=True)):
        try:
            got = ts.ckks_vector_from(public_ctx, blob).size()
        except Exception as err:  # SEAL raises ValueError/RuntimeError on foreign bytes
            raise InvalidFieldError(f"{field}[{j}]", f"<{len(blob)} bytes>",
                                    "a CKKS ciphertext under the round's public key") from err
        if got != size:
            raise InvalidFieldError(f"{field}[{j}].size", got, f"{size}")


def add_ciphertexts(
    encrypted: Sequence[EncryptedVector], public_ctx: ts.Context
) -> EncryptedVector:
    """Sum encrypted vectors slot-wise (aggregator side, without the secret key)."""
    _require_public(public_ctx, "add_ciphertexts")
    if not encrypted:
        raise InvalidFieldError("encrypted", list(encrypted), "a non-empty list")
    chunks = len(encrypted[0])
    total: list[ts.CKKSVector] = [ts.ckks_vector_from(public_ctx, b) for b in encrypted[0]]
    sizes = [c.size() for c in total]
    for i, enc in enumerate(encrypted[1:], start=1):
        if len(enc) != chunks:
            raise InvalidFieldError(f"len(encrypted[{i}])", len(enc), f"{chunks}")
        for j, blob in enumerate(enc):
            part = ts.ckks_vector_from(public_ctx, blob)
            if part.size() != sizes[j]:
                raise InvalidFieldError(
                    f"encrypted[{i}][{j}].size", part.size(), f"{sizes[j]} like encrypted[0]"
                )
            total[j] += part
    return [c.serialize() for c in total]


def decrypt_sum(encrypted_sum: EncryptedVector, keys: CkksKeyPair, length: int) -> np.ndarray:
    """Decrypt the summed ciphertexts (key-holder side) into a float64 vector of ``length``.

    Float64, not float32: the sum may be large (up to ``params.capacity``) while its error bound
    is small, and float32 would round away that precision.
    """
    parts = [ts.ckks_vector_from(keys.secret_context, b).decrypt() for b in encrypted_sum]
    out = np.concatenate([np.asarray(p, dtype=np.float64) for p in parts]) if parts else None
    if out is None or out.shape[0] != length:
        got = 0 if out is None else out.shape[0]
        raise InvalidFieldError("length", length, f"equal to the encrypted length {got}")
    return out
