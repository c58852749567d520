"""A public basis for distributed DP: release ``k`` coordinates instead of ``d`` (issue 13 item 3).

The noise an organization-level release needs grows with the square root of the released
dimension (``z C sqrt(dim)`` in L2). With a *public* orthonormal basis ``V`` (``k`` rows in the
update space, published by the provider with its translator), an organization releases
``c = V x`` (``k`` numbers) of its update ``x``, clipped to ``C`` in the ``k``-dimensional space,
with its discrete Gaussian share and SecAgg+ quantization in ``k`` dimensions; the provider
reconstructs ``V^T mean(c)`` in the update space. Both sides check the basis by its SHA-256
(:meth:`PublicBasis.sha256`: the ``k`` rows used and the update layout), which the ledger records
with ``k``: the organization-level claim is about the released ``k``-dimensional vector, and
reconstruction is post-processing of it.

Properties (tested): the rows are orthonormal, so projection of a vector in their span is exact
(``V^T V x = x``) and ``||V x|| <= ||x||``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from gt_secure.errors import InvalidFieldError
from gt_secure.ledger.ddp_mechanism import ReleaseBasis
from gt_secure.update.layout import TensorSpec, UpdateLayout

__all__ = ["PublicBasis", "principal_basis"]

ORTHONORMAL_TOL = 1e-8


@dataclass(frozen=True)
class PublicBasis:
    """``vectors`` (k, d): orthonormal rows, float64, ordered by importance (a prefix of
    ``k'`` rows is the basis of size ``k'``); ``layout_hash``: the update layout they live in."""

    vectors: np.ndarray  # (k, d) float64
    layout_hash: str
    source: str = ""

    def __post_init__(self) -> None:
        v = self.vectors
        if v.ndim != 2 or not 1 <= v.shape[0] <= v.shape[1]:
            raise InvalidFieldError("basis.vectors.shape", v.shape, "(k, d) with 1 <= k <= d")
        error = float(np.max(np.abs(v @ v.T - np.eye(v.shape[0]))))
        if not error <= ORTHONORMAL_TOL:
            raise InvalidFieldError("basis.vectors", f"max |V V^T - I| = {error:.2e}",
                                    f"orthonormal rows (<= {ORTHONORMAL_TOL})")

    @property
    def k(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def truncate(self, k: int) -> PublicBasis:
        """The first ``k`` rows."""
        if not 1 <= k <= self.k:
            raise InvalidFieldError("k", k, f"in [1, {self.k}] (rows of the basis)")
        return dataclasses.replace(self, vectors=self.vectors[:k])

    def project(self, flat: np.ndarray) -> np.ndarray:
        """(d,) update -> (k,) coordinates ``V x``."""
        values = np.asarray(flat, dtype=np.float64).reshape(-1)
        if values.size != self.dim:
            raise InvalidFieldError("update.dim", values.size, f"{self.dim} (the basis's d)")
        return self.vectors @ values

    def reconstruct(self, coords: np.ndarray) -> np.ndarray:
        """(k,) coordinates -> (d,) update ``V^T c``."""
        values = np.asarray(coords, dtype=np.float64).reshape(-1)
        if values.size != self.k:
            raise InvalidFieldError("coords.dim", values.size, f"{self.k} (the basis's k)")
        return self.vectors.T @ values

    def coords_layout(self, layout: UpdateLayout) -> UpdateLayout:
        """Layout of the released ``(k,)`` coordinates of an update of ``layout`` (what the wire
        and the organization's kept copy carry): one entry named by this basis's hash."""
        if layout.layout_hash() != self.layout_hash:
            raise InvalidFieldError("layout.layout_hash", layout.layout_hash(),
                                    f"{self.layout_hash} (the layout the basis lives in)")
        entry = TensorSpec(name=f"basis.{self.sha256()}", shape=(self.k,))
        return layout.model_copy(update={"entries": (entry,)})

    def sha256(self) -> str:
        """Hash of exactly what a release depends on: the layout and the ``k`` rows (float64
        little-endian), so a truncated basis has its own hash."""
        digest = hashlib.sha256(json.dumps({"layout_hash": self.layout_hash, "k": self.k,
                                            "d": self.dim}, sort_keys=True).encode())
        digest.update(np.ascontiguousarray(self.vectors, dtype="<f8").tobytes())
        return digest.hexdigest()

    def release_record(self) -> ReleaseBasis:
        """What the ledger records of this basis: its SHA-256, ``k`` and ``d``."""
        return ReleaseBasis(sha256=self.sha256(), k=self.k, ambient_dim=self.dim)

    def save(self, path: Path) -> str:
        """One safetensors file (metadata: layout hash, source); returns the file's SHA-256."""
        save_file({"vectors": np.ascontiguousarray(self.vectors, dtype=np.float64)}, str(path),
                  metadata={"layout_hash": self.layout_hash, "source": self.source})
        return hashlib.sha256(path.read_bytes()).hexdigest()

    @classmethod
    def load(cls, path: Path, file_sha256: str | None = None) -> PublicBasis:
        """Read ``path``; with ``file_sha256`` the file must hash to it (else the error names
        both hashes)."""
        if file_sha256 is not None:
            actual = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            if actual != file_sha256:
                raise InvalidFieldError(f"{path}.sha256", actual, file_sha256)
        with safe_open(str(path), framework="numpy") as fh:
            meta = fh.metadata() or {}
            vectors = fh.get_tensor("vectors")
        return cls(vectors=vectors.astype(np.float64), layout_hash=meta.get("layout_hash", ""),
                   source=meta.get("source", ""))


def principal_basis(updates: np.ndarray, k: int, layout_hash: str,
                    source: str = "") -> PublicBasis:
    """Top-``k`` principal directions (uncentred: the span that carries the updates' energy,
    their common direction included) of public ``updates`` (m, d), by SVD."""
    rows = np.asarray(updates, dtype=np.float64)
    if rows.ndim != 2 or not 1 <= k <= min(rows.shape):
        raise InvalidFieldError("k", k, f"in [1, min(m, d)] for updates of shape {rows.shape}")
    _, _, vt = np.linalg.svd(rows, full_matrices=False)  # vt (min(m, d), d)
    vectors = vt[:k]
    signs = np.sign(vectors[np.arange(k), np.argmax(np.abs(vectors), axis=1)])
    return PublicBasis(vectors=vectors * signs[:, None], layout_hash=layout_hash, source=source)
