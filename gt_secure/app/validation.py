"""Checks an organization's update before it is aggregated (part 7: bad input).

Plain rounds: the provider checks every update (metadata and values) and leaves out the ones
that fail. SecAgg+ rounds: the provider never sees an individual vector, so the values are
checked by the organization's own :func:`~gt_secure.app.mods.update_guard_mod` before masking;
the provider checks the plaintext metadata of each masked reply (dropping failures from the sum
as SecAgg+ dropouts) and the decoded sum. Errors name the organization and the field, in the
form ``update[<org>].<field> must be <constraint>, got update[<org>].<field>=<value>.``
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from gt_secure.app.layout import Layout, content_hash
from gt_secure.app.messages import UpdatePayload
from gt_secure.errors import InvalidFieldError, LayoutMismatchError, UpdateVectorError

NOISE_TAIL = 8.0
_FIELD = re.compile(r"(update\[([^\]]+)\]\.[\w.]+) must be")
_REFUSAL = re.compile(r"(request\.[\w.]+) must be.*?refused by organization '([^']+)'", re.S)


def norm_bound(clip_norm: float, noise_multiplier: float, dim: int) -> float:
    """Largest L2 norm an honest update can have, except with probability < exp(-32).

    A clipped update has norm <= C. Gaussian noise of std sigma*C per coordinate has norm
    <= sigma*C*(sqrt(D) + t) except with probability exp(-t^2/2) (Lipschitz concentration);
    t = 8. A relative 1e-5 absorbs float32 rounding of the clipped vector.
    """
    noise = noise_multiplier * clip_norm * (math.sqrt(dim) + NOISE_TAIL)
    return (clip_norm + noise) * (1 + 1e-5)


@dataclass(frozen=True)
class Expected:
    """What the provider accepts this round."""

    layout: Layout
    norm_bound: float


@dataclass(frozen=True)
class Rejection:
    """Record of a refused update: who, which field, and the error text."""

    org_id: str
    node_id: int
    field: str
    message: str
    stage: str

    @classmethod
    def of(cls, err: InvalidFieldError | str, org_id: str, node_id: int, stage: str) -> Rejection:
        """Build from a validation error, or from the reason text of a failed reply.

        A reason that carries a guard refusal (``update[<org>].<field> must be ...``) or a policy
        refusal (``request.<field> must be ... refused by organization '<org>'``) names the
        organization and field even though the provider never saw the update.
        """
        if isinstance(err, InvalidFieldError):
            return cls(org_id, node_id, err.field, str(err), stage)
        match = _FIELD.search(err)
        if match:
            return cls(match.group(2), node_id, match.group(1), err, stage)
        refusal = _REFUSAL.search(err)  # the organization's policy refused the request
        if refusal:
            return cls(refusal.group(2), node_id, refusal.group(1), err, stage)
        return cls(org_id, node_id, "reply", err, stage)


def _field(org_id: str, name: str) -> str:
    return f"update[{org_id}].{name}"


def check_metadata(org_id: str, layout_json: str, expected: Expected) -> Layout:
    """Check the layout (version, base model, base-model hash, entries) sent by ``org_id``."""
    try:
        layout = Layout.from_json(layout_json)
    except (ValueError, KeyError, TypeError):
        raise LayoutMismatchError(_field(org_id, "layout"), layout_json, "a layout JSON") from None
    want = expected.layout
    pairs = (
        ("version", layout.version, want.version),
        ("base_model", layout.base_model, want.base_model),
        ("base_model_hash", layout.base_model_hash, want.base_model_hash),
        ("lora", layout.lora, want.lora),
    )
    for name, got, wanted in pairs:
        if got != wanted:
            raise LayoutMismatchError(_field(org_id, f"layout.{name}"), got, f"{wanted!r}")
    if layout.entries != want.entries:
        raise LayoutMismatchError(_field(org_id, "layout.entries"), len(layout.entries),
                                  f"the {len(want.entries)} expected (name, shape) entries")
    return layout


def check_values(org_id: str, flat: np.ndarray, expected: Expected, digest: str = "") -> None:
    """Check dtype, size, finiteness, L2 norm and (when given) the content hash."""
    if flat.dtype != np.float32:
        raise UpdateVectorError(_field(org_id, "flat.dtype"), str(flat.dtype), "float32")
    if flat.shape != (expected.layout.dim,):
        raise UpdateVectorError(_field(org_id, "flat.shape"), flat.shape,
                                f"({expected.layout.dim},)")
    bad = int(np.size(flat) - np.count_nonzero(np.isfinite(flat)))
    if bad:
        raise UpdateVectorError(_field(org_id, "flat.non_finite_count"), bad, "0 (no NaN/Inf)")
    norm = float(np.linalg.norm(flat.astype(np.float64)))
    if norm > expected.norm_bound:
        raise UpdateVectorError(_field(org_id, "l2_norm"), round(norm, 6),
                                f"<= {expected.norm_bound:.6g} (clip bound)")
    if digest and digest != content_hash(flat):
        raise UpdateVectorError(_field(org_id, "content_hash"), digest,
                                "the SHA-256 of the vector's float32 bytes")


def validate_update(payload: UpdatePayload, expected: Expected) -> None:
    """Full check of one organization's update (plain rounds and the client-side guard)."""
    check_metadata(payload.org_id, payload.layout_json, expected)
    check_values(payload.org_id, np.asarray(payload.flat), expected, payload.content_hash)


def check_sum(mean: np.ndarray, count: int, expected: Expected) -> None:
    """Check a decoded SecAgg+ mean of ``count`` updates: shape, finiteness, norm."""
    org = f"sum of {count}"
    check_values(org, mean.astype(np.float32), expected)
