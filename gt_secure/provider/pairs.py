"""``ShadowPairs``: (TinyLM update, LLM update) pairs as per-layer tokens, with their provenance."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict
from safetensors.numpy import load_file, save_file

from gt_secure.update import UpdateLayout


class ShadowPairs(BaseModel):
    """tiny (P, L_tiny, d_tiny), llm (P, L_llm, d_llm) and per pair: the shadow subset it comes
    from (split by subset, never by pair), the dominant family (-1: a mixture), how many
    organizations' updates its TinyLM input averages, and whether it is held out."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    tiny: np.ndarray
    llm: np.ndarray
    subset: np.ndarray  # (P,) int
    family: np.ndarray  # (P,) int
    orgs: np.ndarray  # (P,) int
    validation: np.ndarray  # (P,) bool
    tiny_layout: UpdateLayout
    llm_layout: UpdateLayout

    def save(self, path: str) -> None:
        """One safetensors file; both layouts ride in its metadata (no pickle)."""
        save_file(
            {"tiny": self.tiny.astype(np.float32), "llm": self.llm.astype(np.float32),
             "subset": self.subset.astype(np.int64), "family": self.family.astype(np.int64),
             "orgs": self.orgs.astype(np.int64), "validation": self.validation.astype(np.int64)},
            path,
            metadata={"tiny_layout": self.tiny_layout.model_dump_json(),
                      "llm_layout": self.llm_layout.model_dump_json()},
        )

    @classmethod
    def load(cls, path: str) -> ShadowPairs:
        from safetensors import safe_open

        with safe_open(path, framework="numpy") as fh:
            meta = fh.metadata() or {}
        a = load_file(path)
        return cls(tiny=a["tiny"], llm=a["llm"], subset=a["subset"], family=a["family"],
                   orgs=a["orgs"], validation=a["validation"].astype(bool),
                   tiny_layout=UpdateLayout.model_validate_json(meta["tiny_layout"]),
                   llm_layout=UpdateLayout.model_validate_json(meta["llm_layout"]))

    def select(self, mask: np.ndarray) -> ShadowPairs:
        return ShadowPairs(tiny=self.tiny[mask], llm=self.llm[mask], subset=self.subset[mask],
                           family=self.family[mask], orgs=self.orgs[mask],
                           validation=self.validation[mask], tiny_layout=self.tiny_layout,
                           llm_layout=self.llm_layout)

    def split(self) -> tuple[ShadowPairs, ShadowPairs]:
        """(training pairs, held-out pairs): held-out subsets are never trained on."""
        return self.select(~self.validation), self.select(self.validation)
