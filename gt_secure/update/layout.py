"""The canonical, versioned layout of an update vector."""

from __future__ import annotations

import hashlib
import json
import math
import re

from pydantic import BaseModel, ConfigDict, Field

from gt_secure.errors import InvalidFieldError

LAYOUT_VERSION = 1
_LAYER = re.compile(r"layers\.(\d+)\.")


class LoraSpec(BaseModel):
    """LoRA hyperparameters; the paper uses r=2, alpha=32 on q_proj and v_proj of every layer."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    r: int = Field(2, ge=1)
    alpha: int = Field(32, ge=1)
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")
    init_seed: int = 0  # the LoRA A init is reproducible, so an update is a delta from it
    # FFA-LoRA (Sun et al., ICLR 2024): A stays at its seeded init and only B trains, so an update
    # vector holds B deltas only, the weight change is linear in it (mean(B) A = mean(B A)) and
    # averaging organizations' vectors is exact.
    freeze_a: bool = False

    def trains(self, factor: str) -> bool:
        """Whether LoRA factor ``"lora_A"`` / ``"lora_B"`` is trained (and in the update vector)."""
        return not (self.freeze_a and factor == "lora_A")


class TensorSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str  # e.g. "layers.0.self_attn.q_proj.lora_A"
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def layer(self) -> int:
        match = _LAYER.search(self.name)
        if match is None:
            raise InvalidFieldError("entries.name", self.name, "a per-layer parameter name")
        return int(match.group(1))


class UpdateLayout(BaseModel):
    """Ordered tensors of an update vector plus the exact base model they refer to."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = LAYOUT_VERSION
    base_model: str
    base_model_hash: str
    lora: LoraSpec
    entries: tuple[TensorSpec, ...]
    dtype: str = "float32"

    @property
    def size(self) -> int:
        return sum(e.size for e in self.entries)

    @property
    def n_layers(self) -> int:
        return len({e.layer for e in self.entries})

    @property
    def token_dim(self) -> int:
        """Width of one per-layer token; every layer holds the same tensors."""
        return self.size // self.n_layers

    def layout_hash(self) -> str:
        fields = self.model_dump(mode="json")
        if not self.lora.freeze_a:  # layouts from before FFA-LoRA keep their hash
            del fields["lora"]["freeze_a"]
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def offsets(self) -> list[tuple[TensorSpec, int, int]]:
        """(entry, start, end) of every tensor in the flat vector."""
        out, start = [], 0
        for entry in self.entries:
            out.append((entry, start, start + entry.size))
            start += entry.size
        return out
