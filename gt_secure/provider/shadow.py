"""Shadow pairs: (TinyLM update, LLM update) from LoRA fine-tunes on public shadow subsets.

Each shadow subset is a seeded mixture of public domains. Both bases are LoRA-tuned on it from
their fixed LoRA init with the same batch order; after ``first_checkpoint`` steps every
``checkpoint_every`` steps a pair of update vectors is recorded (several post-convergence
checkpoints per subset, as in the paper). Optionally a DP-noised copy of each TinyLM update
(clip + Gaussian, the organizations' own mechanism) is paired with the same LLM update.

Pairs are cached one file per subset (``subset-0000.safetensors``, ...) with a manifest, so
generation resumes.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from rich.progress import Progress
from safetensors.numpy import load_file, save_file

from gt_secure.data.shadow import random_domain_weights, shadow_subset
from gt_secure.organization.vector_dp import clip_l2
from gt_secure.provider.adapter import fresh_lora
from gt_secure.update import (
    FinetuneConfig,
    LoraSpec,
    UpdateLayout,
    UpdateVector,
    finetune_lora,
    lora_state,
)


class ShadowConfig(BaseModel):
    """How shadow pairs are generated; its hash names the cache directory."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    subsets: int = Field(24, ge=2)  # K
    subset_size: int = Field(256, ge=8)
    steps: int = Field(16, ge=1)
    first_checkpoint: int = Field(8, ge=1)
    checkpoint_every: int = Field(2, ge=1)
    # Large batches and a moderate lr: Adam's raw-factor updates are then far more reproducible
    # (cosine of two seeds on the same data 0.53 vs 0.24 at batch 16, lr 1e-2; docs/benchmarks.md).
    batch_size: int = Field(32, ge=1)
    lr: float = Field(3e-3, gt=0)
    max_length: int = Field(64, ge=8)
    dp_noise_multipliers: tuple[float, ...] = ()  # vector-DP noised TinyLM copies
    dp_clip_norm: float = Field(1.0, gt=0)
    lora: LoraSpec = LoraSpec()
    seed: int = 0

    def checkpoints(self) -> list[int]:
        return list(range(self.first_checkpoint, self.steps + 1, self.checkpoint_every))

    def config_hash(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]


class ShadowPairs(BaseModel):
    """All pairs as per-layer tokens: tiny (P, L_tiny, d_tiny), llm (P, L_llm, d_llm)."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    tiny: np.ndarray
    llm: np.ndarray
    subset: np.ndarray  # (P,) shadow subset id of each pair (split by subset, never by pair)
    tiny_layout: UpdateLayout
    llm_layout: UpdateLayout

    def save(self, path: Path) -> None:
        """One safetensors file; both layouts ride in its metadata (no pickle)."""
        save_file(
            {
                "tiny": self.tiny.astype(np.float32),
                "llm": self.llm.astype(np.float32),
                "subset": self.subset.astype(np.int64),
            },
            str(path),
            metadata={
                "tiny_layout": self.tiny_layout.model_dump_json(),
                "llm_layout": self.llm_layout.model_dump_json(),
            },
        )

    @classmethod
    def load(cls, path: Path) -> ShadowPairs:
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as fh:
            meta = fh.metadata() or {}
        arrays = load_file(str(path))
        return cls(
            tiny=arrays["tiny"],
            llm=arrays["llm"],
            subset=arrays["subset"],
            tiny_layout=UpdateLayout.model_validate_json(meta["tiny_layout"]),
            llm_layout=UpdateLayout.model_validate_json(meta["llm_layout"]),
        )

    def select(self, mask: np.ndarray) -> ShadowPairs:
        return ShadowPairs(
            tiny=self.tiny[mask],
            llm=self.llm[mask],
            subset=self.subset[mask],
            tiny_layout=self.tiny_layout,
            llm_layout=self.llm_layout,
        )


def _tokens(flat: np.ndarray, layout: UpdateLayout) -> np.ndarray:
    return UpdateVector(layout, flat.astype(np.float32)).layer_tokens()


def _train_subset(name: str, texts: list[str], cfg: ShadowConfig, seed: int) -> list[np.ndarray]:
    """Flat LoRA updates of base ``name`` at every checkpoint step."""
    peft, initial, _, tokenizer = fresh_lora(name, cfg.lora)
    keep = set(cfg.checkpoints())
    out: list[np.ndarray] = []

    def on_step(step: int, _loss: float) -> None:
        if step in keep:
            out.append(lora_state(peft) - initial)

    ft = FinetuneConfig(
        steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr, seed=seed, max_length=cfg.max_length
    )
    finetune_lora(peft, tokenizer, texts, ft, on_step=on_step)
    return out


def _noised(
    flat: np.ndarray, clip: float, multiplier: float, rng: np.random.Generator
) -> np.ndarray:
    """The organizations' vector mechanism: clip to ``clip``, add N(0, (multiplier * clip)^2)."""
    noise = rng.normal(0.0, multiplier * clip, size=flat.shape)
    return (clip_l2(flat, clip) + noise).astype(np.float32)


def layouts(cfg: ShadowConfig) -> tuple[UpdateLayout, UpdateLayout]:
    return fresh_lora("tinylm", cfg.lora)[2], fresh_lora("llm", cfg.lora)[2]


def generate_shadow_pairs(cfg: ShadowConfig, cache_root: Path) -> ShadowPairs:
    """Generate (or resume) the shadow pairs of ``cfg`` under ``cache_root/<config hash>``."""
    cache = cache_root / cfg.config_hash()
    cache.mkdir(parents=True, exist_ok=True)
    tiny_layout, llm_layout = layouts(cfg)
    rng = random.Random(cfg.seed)
    plans = [(k, random_domain_weights(rng), rng.randrange(2**31)) for k in range(cfg.subsets)]
    files: dict[str, str] = {}
    with Progress(transient=True) as progress:
        task = progress.add_task("shadow subsets", total=cfg.subsets)
        for k, weights, seed in plans:
            path = cache / f"subset-{k:04d}.safetensors"
            if not path.exists():
                texts = shadow_subset(weights, cfg.subset_size, seed)
                tiny = _train_subset("tinylm", texts, cfg, seed)
                llm = _train_subset("llm", texts, cfg, seed)
                tmp = path.with_suffix(".tmp")
                save_file(
                    {"tiny": np.stack(tiny), "llm": np.stack(llm)},
                    str(tmp),
                    metadata={"weights": json.dumps(weights), "seed": str(seed)},
                )
                tmp.replace(path)
            files[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
            progress.advance(task)
    manifest = {
        "config": cfg.model_dump(mode="json"),
        "files": files,
        "tiny_layout_hash": tiny_layout.layout_hash(),
        "llm_layout_hash": llm_layout.layout_hash(),
    }
    (cache / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return load_shadow_pairs(cfg, cache, tiny_layout, llm_layout)


def load_shadow_pairs(
    cfg: ShadowConfig, cache: Path, tiny_layout: UpdateLayout, llm_layout: UpdateLayout
) -> ShadowPairs:
    noise_rng = np.random.default_rng(cfg.seed)
    tiny, llm, subset = [], [], []
    for k in range(cfg.subsets):
        arrays = load_file(str(cache / f"subset-{k:04d}.safetensors"))
        for t_flat, l_flat in zip(arrays["tiny"], arrays["llm"], strict=True):
            variants = [t_flat] + [
                _noised(t_flat, cfg.dp_clip_norm, z, noise_rng) for z in cfg.dp_noise_multipliers
            ]
            for variant in variants:
                tiny.append(_tokens(variant, tiny_layout))
                llm.append(_tokens(l_flat, llm_layout))
                subset.append(k)
    return ShadowPairs(
        tiny=np.stack(tiny),
        llm=np.stack(llm),
        subset=np.array(subset),
        tiny_layout=tiny_layout,
        llm_layout=llm_layout,
    )
