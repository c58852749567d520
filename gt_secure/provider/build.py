"""Build a translator end to end: shadow set -> pairs -> training (held-out subsets) -> save."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from gt_secure.provider.baselines import MeanUpdate, RidgeMap
from gt_secure.provider.pairs import ShadowPairs
from gt_secure.provider.shadow import ShadowConfig, generate_shadow_set
from gt_secure.provider.training import TrainConfig, Translator, evaluate_pairs, train_translator
from gt_secure.update import UpdateVector


def compare_on_pairs(pairs: ShadowPairs, train_cfg: TrainConfig) -> dict[str, dict[str, float]]:
    """Held-out-subset error of the translator vs the mean-update and ridge baselines."""
    train, val = pairs.split()
    translator, _ = train_translator(pairs, train_cfg)
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
    shadow_cfg: ShadowConfig, train_cfg: TrainConfig, cache_root: Path, out_dir: Path,
    epsilon: float = math.inf,
) -> tuple[Translator, dict[str, float]]:
    """Generate the shadow set, train on its pairs at ``epsilon``, save with a manifest."""
    pairs = generate_shadow_set(shadow_cfg, cache_root).pairs(epsilon)
    translator, metrics = train_translator(pairs, train_cfg)
    metrics["pairs"] = float(len(pairs.tiny))
    translator.save(
        out_dir,
        metrics,
        {"shadow_config": shadow_cfg.model_dump(mode="json"),
         "train_config": train_cfg.model_dump(mode="json"), "epsilon": str(epsilon)},
    )
    pairs.split()[1].save(str(out_dir / "shadow_pairs.safetensors"))  # held out: tests use them
    return translator, metrics
