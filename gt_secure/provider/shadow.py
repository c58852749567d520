"""Shadow pairs: (TinyLM update, LLM update) from LoRA fine-tunes on public shadow subsets.

Both bases are LoRA-tuned on every subset (:mod:`gt_secure.provider.shadow_plan`) from their
seeded LoRA init with the same batch draws, all subsets at once (:mod:`gt_secure.update.batched`,
on the GPU when present); late checkpoints give several pairs per subset. For each epsilon in
``ShadowConfig.epsilons`` the TinyLM is also trained with example-level DP-SGD at the
organizations' sampling rate (noise from Opacus's RDP accountant), paired with the same LLM
update (the paper's DP shadow regime). Multi-organization pairs take the mean of a group's TinyLM
updates (what secure aggregation delivers; exact under FFA-LoRA) and the LLM tuned on the union
of the group's records.

The set is cached in one safetensors file under a key that hashes the configuration, the data
generators' source, the shipped corpora and both base checkpoints; the file's SHA-256 is checked
against the manifest on every load.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from safetensors.numpy import load_file, save_file

from gt_secure.data import corpora, families
from gt_secure.errors import InvalidFieldError
from gt_secure.provider import shadow_plan
from gt_secure.provider.pairs import ShadowPairs
from gt_secure.provider.shadow_plan import plan_groups, plan_subsets, subset_texts
from gt_secure.update import FinetuneConfig, LoraSpec, UpdateLayout, UpdateVector

__all__ = ["ShadowConfig", "ShadowPairs", "ShadowSet", "dp_noise", "generate_shadow_set",
           "train_batched"]


class ShadowConfig(BaseModel):
    """How shadow pairs are generated; with the data fingerprint it names the cache."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    subsets: int = Field(300, ge=4)  # K
    subset_size: int = Field(1024, ge=8)
    steps: int = Field(32, ge=1)
    checkpoints: tuple[int, ...] = (24, 28, 32)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(3e-3, gt=0)
    max_length: int = Field(112, ge=8)
    groups: int = Field(100, ge=0)  # multi-organization groups
    group_size: int = Field(3, ge=2)
    epsilons: tuple[float, ...] = (8.0, 1.0)  # DP-SGD TinyLM copies (delta below)
    delta: float = 1e-5
    clip_norm: float = Field(1.0, gt=0)
    lora: LoraSpec = LoraSpec(freeze_a=True)
    seed: int = 0

    def finetune(self, seed: int = 0) -> FinetuneConfig:
        return FinetuneConfig(steps=self.steps, batch_size=self.batch_size, lr=self.lr,
                              seed=seed, max_length=self.max_length)

    def cache_key(self) -> str:
        digest = hashlib.sha256(self.model_dump_json().encode())
        for source in (families.__file__, shadow_plan.__file__):
            digest.update(Path(source).read_bytes())
        for name in corpora.CORPUS_NAMES:
            digest.update((corpora.CORPORA_DIR / f"{name}.txt.gz").read_bytes())
        from gt_secure.models.loading import base_model_hash

        for base in ("tinylm", "llm"):
            digest.update(base_model_hash(base).encode())
        return digest.hexdigest()[:16]


def dp_noise(epsilon: float, delta: float, sample_rate: float, steps: int) -> float:
    """DP-SGD noise multiplier for (epsilon, delta) after ``steps`` at ``sample_rate`` (RDP)."""
    from opacus.accountants.utils import get_noise_multiplier

    return float(get_noise_multiplier(target_epsilon=epsilon, target_delta=delta,
                                      sample_rate=sample_rate, steps=steps, accountant="rdp"))


def eps_key(epsilon: float) -> str:
    return "inf" if math.isinf(epsilon) else f"{epsilon:g}"


class ShadowSet:
    """Raw updates: llm (K+G, C, D_llm); tiny[eps] (K, C, D_tiny); plans and groups."""

    def __init__(self, cfg: ShadowConfig, llm: np.ndarray, tiny: dict[str, np.ndarray],
                 tiny_layout: UpdateLayout, llm_layout: UpdateLayout) -> None:
        self.cfg, self.llm, self.tiny = cfg, llm, tiny
        self.tiny_layout, self.llm_layout = tiny_layout, llm_layout
        self.plans = plan_subsets(cfg.subsets, cfg.seed)
        self.groups = plan_groups(self.plans, cfg.groups, cfg.group_size, cfg.seed)

    def pairs(self, epsilon: float = math.inf, multi: bool = True) -> ShadowPairs:
        """Single-subset pairs (and multi-organization pairs) for TinyLM updates at ``epsilon``."""
        key = eps_key(epsilon)
        if key not in self.tiny:
            raise InvalidFieldError("epsilon", epsilon, f"one of {list(self.tiny)}")
        tiny, k = self.tiny[key], self.cfg.subsets
        t_rows, l_rows, subset, family, kind = [], [], [], [], []
        for i, plan in enumerate(self.plans):
            t_rows.append(tiny[i])
            l_rows.append(self.llm[i])
            subset += [i] * tiny.shape[1]
            family += [plan.family] * tiny.shape[1]
            kind += [1] * tiny.shape[1]
        for g, members in enumerate(self.groups if multi else []):
            t_rows.append(tiny[members].mean(0))  # secure aggregation's mean, per checkpoint
            l_rows.append(self.llm[k + g])
            subset += [members[0]] * tiny.shape[1]
            family += [-1] * tiny.shape[1]
            kind += [len(members)] * tiny.shape[1]
        t_flat, l_flat = np.concatenate(t_rows), np.concatenate(l_rows)
        return ShadowPairs(
            tiny=_tokens(t_flat, self.tiny_layout), llm=_tokens(l_flat, self.llm_layout),
            subset=np.array(subset), family=np.array(family), orgs=np.array(kind),
            validation=np.array([self.plans[s].validation for s in subset]),
            tiny_layout=self.tiny_layout, llm_layout=self.llm_layout)


def _tokens(flat: np.ndarray, layout: UpdateLayout) -> np.ndarray:
    """(P, D) -> (P, L, d) per-layer tokens."""
    return np.stack([UpdateVector(layout, row.astype(np.float32)).layer_tokens() for row in flat])


def layouts(spec: LoraSpec) -> tuple[UpdateLayout, UpdateLayout]:
    from gt_secure.provider.adapter import fresh_lora

    return fresh_lora("tinylm", spec)[2], fresh_lora("llm", spec)[2]


def train_batched(name: str, texts: list[list[str]], seeds: list[int], cfg: ShadowConfig,
                  epsilon: float = math.inf, checkpoints: tuple[int, ...] | None = None,
                  chunk: int | None = None) -> np.ndarray:
    """(len(texts), C, D) updates of base ``name`` trained as ``cfg`` says, one adapter per text
    list, at ``checkpoints`` (default the configured ones); DP-SGD at ``epsilon`` when finite."""
    from gt_secure.provider.adapter import _base
    from gt_secure.update.batched import BatchedDp, train_adapters

    base, tokenizer = _base(name)
    steps = checkpoints or cfg.checkpoints
    chunk = chunk or (100 if torch.cuda.is_available() else 8)
    dp = None
    if not math.isinf(epsilon):
        rate = cfg.batch_size / len(texts[0])
        dp = BatchedDp(rate, dp_noise(epsilon, cfg.delta, rate, cfg.steps), cfg.clip_norm)
    out = []
    for start in range(0, len(texts), chunk):
        got = train_adapters(base, tokenizer, texts[start:start + chunk],
                             seeds[start:start + chunk], cfg.finetune(), cfg.lora,
                             checkpoints=steps, dp=dp)
        out.append(np.stack([got[c] for c in steps], axis=1))  # (chunk, C, D)
    return np.concatenate(out)


def generate_shadow_set(cfg: ShadowConfig, cache_root: Path, chunk: int | None = None,
                        log: bool = False) -> ShadowSet:
    """Generate (or load, hash-checked) the shadow set of ``cfg`` under ``cache_root``."""
    cache = cache_root / cfg.cache_key()
    path, manifest_path = cache / "shadow.safetensors", cache / "manifest.json"
    tiny_layout, llm_layout = layouts(cfg.lora)
    if path.exists() and manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
        if actual != manifest["sha256"]:
            raise InvalidFieldError(f"{path}.sha256", actual, manifest["sha256"])
        arrays = load_file(str(path))
    else:
        plans = plan_subsets(cfg.subsets, cfg.seed)
        texts = [subset_texts(p, cfg.subset_size) for p in plans]
        seeds = [p.seed for p in plans]
        groups = plan_groups(plans, cfg.groups, cfg.group_size, cfg.seed)
        union = [[t for m in g for t in texts[m]] for g in groups]
        arrays = {"llm": train_batched("llm", texts + union,
                                       seeds + [seeds[g[0]] for g in groups], cfg, chunk=chunk)}
        for eps in (math.inf, *cfg.epsilons):
            arrays[f"tiny/{eps_key(eps)}"] = train_batched("tinylm", texts, seeds, cfg, eps,
                                                           chunk=chunk)
            if log:
                print(f"shadow: tinylm eps={eps_key(eps)} done", flush=True)
        cache.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        save_file({k: v.astype(np.float32) for k, v in arrays.items()}, str(tmp))
        tmp.replace(path)
        manifest = {"config": cfg.model_dump(mode="json"), "key": cfg.cache_key(),
                    "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                    "tiny_layout_hash": tiny_layout.layout_hash(),
                    "llm_layout_hash": llm_layout.layout_hash()}
        manifest_path.write_text(json.dumps(manifest, indent=2))
    tiny = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("tiny/")}
    return ShadowSet(cfg, arrays["llm"], tiny, tiny_layout, llm_layout)
