"""Build a translator end to end: shadow pairs -> subset-wise split -> training -> save."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gt_secure.provider.baselines import MeanUpdate, RidgeMap
from gt_secure.provider.shadow import ShadowConfig, ShadowPairs, generate_shadow_pairs
from gt_secure.provider.training import TrainConfig, Translator, evaluate_pairs, train_translator
from gt_secure.update import UpdateVector


def split_by_subset(
    pairs: ShadowPairs, validation_fraction: float, seed: int = 0
) -> tuple[ShadowPairs, ShadowPairs]:
    """Hold out whole shadow subsets (never single checkpoints of a seen subset)."""
    subsets = np.unique(pairs.subset)
    rng = np.random.default_rng(seed)
    n_val = max(1, int(round(len(subsets) * validation_fraction)))
    held = rng.choice(subsets, size=n_val, replace=False)
    mask = np.isin(pairs.subset, held)
    return pairs.select(~mask), pairs.select(mask)


def compare_on_pairs(
    pairs: ShadowPairs, train_cfg: TrainConfig, validation_fraction: float = 0.25
) -> dict[str, dict[str, float]]:
    """Held-out-subset error of the translator vs the mean-update and ridge baselines."""
    train, val = split_by_subset(pairs, validation_fraction, train_cfg.seed)
    translator, _ = train_translator(train, train_cfg)
    out = {"grad_transformer": evaluate_pairs(translator, val)}
    for name, baseline in (("mean_update", MeanUpdate(train)), ("ridge", RidgeMap(train))):
        out[name] = _baseline_error(baseline, val)
    return out


def _baseline_error(baseline: MeanUpdate | RidgeMap, val: ShadowPairs) -> dict[str, float]:
    preds, trues = [], []
    for tiny, llm in zip(val.tiny, val.llm, strict=True):
        vec = UpdateVector.from_layer_tokens(val.tiny_layout, tiny.astype(np.float32))
        preds.append(baseline.translate(vec).layer_tokens().reshape(-1))
        trues.append(llm.reshape(-1))
    p, t = np.stack(preds), np.stack(trues)
    rel = np.linalg.norm(p - t, axis=1) / np.maximum(np.linalg.norm(t, axis=1), 1e-12)
    cos = (p * t).sum(1) / np.maximum(np.linalg.norm(p, axis=1) * np.linalg.norm(t, axis=1), 1e-12)
    return {"val_relative_error": float(rel.mean()), "val_cosine": float(cos.mean())}


def build_translator(
    shadow_cfg: ShadowConfig, train_cfg: TrainConfig, cache_root: Path, out_dir: Path
) -> tuple[Translator, dict[str, float]]:
    """Generate shadow pairs, train on all of them, save to ``out_dir`` with a manifest."""
    pairs = generate_shadow_pairs(shadow_cfg, cache_root)
    translator, metrics = train_translator(pairs, train_cfg)
    metrics["pairs"] = float(len(pairs.tiny))
    translator.save(
        out_dir,
        metrics,
        {
            "shadow_config": shadow_cfg.model_dump(mode="json"),
            "train_config": train_cfg.model_dump(mode="json"),
        },
    )
    pairs.save(out_dir / "shadow_pairs.safetensors")  # ships with it: tests and baselines use it
    return translator, metrics
