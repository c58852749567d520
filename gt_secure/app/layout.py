"""The app's wire view of an update vector's layout, and the content hash sent next to it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from gt_secure.update import UpdateLayout


@dataclass(frozen=True)
class Layout:
    """Order and shapes of the entries of a flat update vector, bound to one base model."""

    version: int
    base_model: str
    base_model_hash: str
    entries: tuple[tuple[str, tuple[int, ...]], ...]
    lora: str = ""  # canonical JSON of the LoRA spec (empty: full-weight deltas)

    @property
    def dim(self) -> int:
        """Number of float32 values in a vector of this layout."""
        return int(sum(int(np.prod(shape)) for _, shape in self.entries))

    def to_json(self) -> str:
        """Canonical JSON (sorted keys), as sent on the wire."""
        body = {
            "version": self.version,
            "base_model": self.base_model,
            "base_model_hash": self.base_model_hash,
            "entries": [[name, list(shape)] for name, shape in self.entries],
            "lora": self.lora,
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Layout:
        """Parse :meth:`to_json` output; raises ``ValueError``/``KeyError`` when malformed."""
        body = json.loads(text)
        entries = tuple((str(n), tuple(int(s) for s in shape)) for n, shape in body["entries"])
        return cls(int(body["version"]), str(body["base_model"]),
                   str(body["base_model_hash"]), entries, str(body.get("lora", "")))

    @classmethod
    def of(cls, layout: UpdateLayout) -> Layout:
        """The wire view of an :class:`~gt_secure.update.UpdateLayout`."""
        entries = tuple((e.name, tuple(e.shape)) for e in layout.entries)
        lora = json.dumps(layout.lora.model_dump(mode="json"), sort_keys=True)
        return cls(layout.version, layout.base_model, layout.base_model_hash, entries, lora)


@lru_cache(maxsize=1)
def lora_layout() -> UpdateLayout:
    """Layout of the TinyLM LoRA update (shipped base model, default LoRA spec)."""
    from gt_secure.provider.adapter import fresh_lora

    return fresh_lora("tinylm")[2]


def content_hash(flat: np.ndarray) -> str:
    """SHA-256 of the float32 bytes of a flat update vector."""
    return hashlib.sha256(np.ascontiguousarray(flat, dtype=np.float32).tobytes()).hexdigest()
