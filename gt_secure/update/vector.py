"""``UpdateVector``: a flat float32 update with its layout; safe (de)serialization, hashing."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from pydantic import ValidationError
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

from gt_secure.errors import LayoutMismatchError, UpdateVectorError
from gt_secure.update.layout import LAYOUT_VERSION, UpdateLayout


class UpdateVector:
    """An update vector: ``flat`` (D,) float32 laid out by ``layout``. Immutable after creation."""

    def __init__(self, layout: UpdateLayout, flat: np.ndarray) -> None:
        if not isinstance(flat, np.ndarray) or flat.ndim != 1:
            raise UpdateVectorError(
                "flat.shape", getattr(flat, "shape", type(flat).__name__), "a 1-D numpy array"
            )
        if flat.dtype != np.float32:
            raise UpdateVectorError("flat.dtype", str(flat.dtype), "float32")
        if flat.shape[0] != layout.size:
            raise UpdateVectorError("flat.shape", flat.shape, f"({layout.size},) for this layout")
        bad = np.flatnonzero(~np.isfinite(flat))
        if bad.size:
            raise UpdateVectorError(f"flat[{bad[0]}]", float(flat[bad[0]]), "finite (no NaN/Inf)")
        self.layout = layout
        self.flat = flat.copy()
        self.flat.setflags(write=False)

    # --- views -------------------------------------------------------------------------
    def l2_norm(self) -> float:
        return float(np.linalg.norm(self.flat.astype(np.float64)))

    def content_hash(self) -> str:
        """SHA-256 over the layout hash and the raw little-endian float32 bytes."""
        digest = hashlib.sha256(self.layout.layout_hash().encode())
        digest.update(self.flat.astype("<f4").tobytes())
        return digest.hexdigest()

    def layer_tokens(self) -> np.ndarray:
        """One token per layer: (n_layers, token_dim), tensors of a layer concatenated in order."""
        rows: dict[int, list[np.ndarray]] = {}
        for entry, start, end in self.layout.offsets():
            rows.setdefault(entry.layer, []).append(self.flat[start:end])
        return np.stack([np.concatenate(rows[layer]) for layer in sorted(rows)])

    @classmethod
    def from_layer_tokens(cls, layout: UpdateLayout, tokens: np.ndarray) -> UpdateVector:
        """Inverse of :meth:`layer_tokens`."""
        expected = (layout.n_layers, layout.token_dim)
        if tokens.shape != expected:
            raise UpdateVectorError("tokens.shape", tokens.shape, f"{expected}")
        flat = np.empty(layout.size, dtype=np.float32)
        cursor: dict[int, int] = {}
        for entry, start, end in layout.offsets():
            row = sorted({e.layer for e in layout.entries}).index(entry.layer)
            at = cursor.get(row, 0)
            flat[start:end] = tokens[row, at : at + entry.size]
            cursor[row] = at + entry.size
        return cls(layout, flat)

    def to_tensors(self) -> dict[str, torch.Tensor]:
        return {
            e.name: torch.from_numpy(self.flat[s:t].copy()).view(e.shape)
            for e, s, t in self.layout.offsets()
        }

    def replace(self, flat: np.ndarray) -> UpdateVector:
        """Same layout, new values (e.g. after clipping and noise)."""
        return UpdateVector(self.layout, flat.astype(np.float32, copy=False))

    # --- checks ------------------------------------------------------------------------
    def check_compatible(self, layout: UpdateLayout) -> None:
        """Raise :class:`LayoutMismatchError` unless this vector has exactly ``layout``."""
        mine = self.layout
        for field in ("version", "base_model", "base_model_hash", "lora", "entries", "dtype"):
            if getattr(mine, field) != getattr(layout, field):
                raise LayoutMismatchError(
                    f"layout.{field}",
                    _short(getattr(mine, field)),
                    f"{_short(getattr(layout, field))} (the expected layout)",
                )

    # --- serialization -------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        from safetensors.numpy import save

        return save({"flat": self.flat}, metadata={"layout": self.layout.model_dump_json()})

    @classmethod
    def from_bytes(cls, data: bytes) -> UpdateVector:
        from safetensors.numpy import load

        header_len = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + header_len])
        return cls._from_parts(header.get("__metadata__", {}), load(data))

    def save(self, path: str | Path) -> None:
        save_file(
            {"flat": self.flat}, str(path), metadata={"layout": self.layout.model_dump_json()}
        )

    @classmethod
    def load(cls, path: str | Path) -> UpdateVector:
        with safe_open(str(path), framework="numpy") as fh:
            metadata = fh.metadata() or {}
        return cls._from_parts(metadata, load_file(str(path)))

    @classmethod
    def _from_parts(cls, metadata: dict[str, str], tensors: dict[str, np.ndarray]) -> UpdateVector:
        if "layout" not in metadata:
            raise UpdateVectorError("metadata.layout", None, "present")
        raw = json.loads(metadata["layout"])
        if raw.get("version") != LAYOUT_VERSION:
            raise UpdateVectorError("layout.version", raw.get("version"), f"{LAYOUT_VERSION}")
        try:
            layout = UpdateLayout.model_validate(raw)
        except ValidationError as err:
            first = err.errors()[0]
            field = "layout." + ".".join(str(p) for p in first["loc"])
            raise UpdateVectorError(field, first.get("input"), first["msg"]) from err
        if set(tensors) != {"flat"}:
            raise UpdateVectorError("tensors", sorted(tensors), "exactly ['flat']")
        return cls(layout, tensors["flat"])

    def __repr__(self) -> str:
        return (
            f"UpdateVector(base={self.layout.base_model}, size={self.layout.size}, "
            f"norm={self.l2_norm():.4g})"
        )


def _short(value: object) -> object:
    text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."
