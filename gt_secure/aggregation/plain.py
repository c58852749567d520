"""Plain (unprotected) sum and mean of update vectors, the reference every secure path must match.

The aggregator sees every organization's vector in clear: use only in the ``plain`` protocol or
as the slow, obviously-correct reference in tests and benchmarks.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from gt_secure.errors import UpdateVectorError

__all__ = ["plain_mean", "plain_sum", "validate_vectors"]


def validate_vectors(vectors: Mapping[str, np.ndarray]) -> int:
    """Check that every vector is a finite 1-D float32 array of one common length.

    Returns that length. Errors name the organization id and the field, e.g.
    ``vectors['org-b'].flat[12] must be finite, got vectors['org-b'].flat[12]=nan.``
    """
    if not vectors:
        raise UpdateVectorError("vectors", dict(vectors), "a non-empty mapping org_id -> vector")
    length: int | None = None
    first = ""
    for org_id, vec in vectors.items():
        where = f"vectors[{org_id!r}]"
        if not isinstance(vec, np.ndarray):
            raise UpdateVectorError(f"type({where})", type(vec).__name__, "numpy.ndarray")
        if vec.dtype != np.float32:
            raise UpdateVectorError(f"{where}.dtype", str(vec.dtype), "float32")
        if vec.ndim != 1:
            raise UpdateVectorError(f"{where}.ndim", vec.ndim, "1")
        if length is None:
            length, first = vec.shape[0], org_id
            if length == 0:
                raise UpdateVectorError(f"len({where})", 0, "positive")
        elif vec.shape[0] != length:
            raise UpdateVectorError(
                f"len({where})", vec.shape[0], f"equal to len(vectors[{first!r}])={length}"
            )
        bad = np.flatnonzero(~np.isfinite(vec))
        if bad.size:
            idx = int(bad[0])
            raise UpdateVectorError(f"{where}.flat[{idx}]", float(vec[idx]), "finite")
    assert length is not None
    return length


def _sum64(vectors: Mapping[str, np.ndarray]) -> np.ndarray:
    validate_vectors(vectors)
    total = np.zeros(next(iter(vectors.values())).shape, dtype=np.float64)
    for vec in vectors.values():
        total += vec
    return total


def plain_sum(vectors: Mapping[str, np.ndarray]) -> np.ndarray:
    """Validated sum, accumulated in float64 and returned as float32."""
    return _sum64(vectors).astype(np.float32)


def plain_mean(vectors: Mapping[str, np.ndarray]) -> np.ndarray:
    """Validated unweighted mean over organizations, as float32."""
    return (_sum64(vectors) / len(vectors)).astype(np.float32)
