"""The PGR harness: every method scored the same way on the organizations' held-out records.

P = -perplexity on an organization's test records. PGR = (P - P_tiny) / (P_llm - P_tiny), with
P_tiny the organization's fine-tuned TinyLM and P_llm the LLM fine-tuned directly on its private
records, both trained the same way (at epsilon < inf both with DP-SGD at that epsilon). Multi-
organization rows: P_tiny is the aggregated TinyLM (mean of the organizations' updates), P_llm
the LLM trained on the union of their records, P the mean over their test sets.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from gt_secure.data.families import (
    HELD_OUT_FAMILIES,
    ORG_MIXTURES,
    family_public_records,
    org_family,
    org_records,
)
from gt_secure.models.loading import best_device
from gt_secure.models.scoring import perplexity
from gt_secure.provider.adapter import fresh_lora
from gt_secure.provider.distillation import distill
from gt_secure.provider.shadow import ShadowConfig, train_batched
from gt_secure.provider.shadow_plan import plan_subsets, subset_texts
from gt_secure.update import UpdateVector, apply_update

Translate = Callable[[UpdateVector], UpdateVector]


class UtilityConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    orgs: tuple[str, ...] = ("hospital", "bank", "law")
    stretch_orgs: tuple[str, ...] = ("logistics",)  # a family with no public records
    mixture_orgs: tuple[str, ...] = ("clinic", "insurer", "registry")  # mixes of public styles
    seeds: tuple[int, ...] = (0, 1, 2)
    train_size: int = Field(1024, ge=8)  # as a shadow subset
    eval_size: int = Field(128, ge=4)
    public_size: int = Field(1024, ge=8)  # the provider's public same-family fine-tune


class Score(BaseModel):
    org: str  # an organization, or "+".join(orgs) for a multi-organization row
    seed: int
    epsilon: float
    method: str
    perplexity: float
    per_org: dict[str, float] = {}


class Evaluator:
    """Scores LLM and TinyLM updates on organizations' test records."""

    def __init__(self, cfg: UtilityConfig, shadow: ShadowConfig) -> None:
        self.cfg, self.shadow = cfg, shadow
        self.llm, self.llm_init, self.llm_layout, self.tokenizer = fresh_lora("llm", shadow.lora)
        self.tiny, self.tiny_init, self.tiny_layout, _ = fresh_lora("tinylm", shadow.lora)
        device = best_device()
        self.llm.to(device)
        self.tiny.to(device)
        orgs = (*cfg.orgs, *cfg.stretch_orgs, *cfg.mixture_orgs)
        self.test = {o: org_records(o, "test", cfg.eval_size) for o in orgs}

    def score(self, update: UpdateVector | None, orgs: Sequence[str]) -> dict[str, float]:
        """Perplexity per organization of base + ``update`` (None: the base model)."""
        big = update is None or update.layout == self.llm_layout
        model, init, layout = ((self.llm, self.llm_init, self.llm_layout) if big
                               else (self.tiny, self.tiny_init, self.tiny_layout))
        flat = np.zeros(layout.size, np.float32) if update is None else update.flat
        apply_update(model, init, UpdateVector(layout, flat), layout)
        return {o: perplexity(model, self.tokenizer, self.test[o]) for o in orgs}


def train_updates(name: str, texts: list[list[str]], seeds: list[int], shadow: ShadowConfig,
                  epsilon: float) -> np.ndarray:
    """Final updates (N, D) of base ``name`` trained like the shadow subsets (DP at epsilon)."""
    return train_batched(name, texts, seeds, shadow, epsilon, checkpoints=(shadow.steps,))[:, 0]


def evaluate_single(ev: Evaluator, methods: dict[str, Translate], epsilon: float,
                    public: dict[tuple[str, int], UpdateVector],
                    oracles: Mapping[str, Translate]) -> list[Score]:
    """Every method on every organization (and stretch organization) and seed at ``epsilon``."""
    cfg, shadow = ev.cfg, ev.shadow
    orgs = [*cfg.orgs, *cfg.stretch_orgs, *cfg.mixture_orgs]
    jobs = [(o, s) for o in orgs for s in cfg.seeds]
    texts = [org_records(o, "train", cfg.train_size) for o, _ in jobs]
    seeds = [1000 + s for _, s in jobs]
    tiny = train_updates("tinylm", texts, seeds, shadow, epsilon)
    direct = train_updates("llm", texts, seeds, shadow, epsilon)
    scores: list[Score] = []
    for j, (org, seed) in enumerate(jobs):
        tiny_u = UpdateVector(ev.tiny_layout, tiny[j])

        def record(method: str, update: UpdateVector | None, org: str = org,
                   seed: int = seed) -> None:
            ppl = ev.score(update, [org])[org]
            scores.append(Score(org=org, seed=seed, epsilon=epsilon, method=method,
                                perplexity=ppl))

        record("base_llm", None)
        record("tinylm_finetuned", tiny_u)
        record("llm_finetuned", UpdateVector(ev.llm_layout, direct[j]))
        for name, translate in (methods | {"family_mean": oracles[org]}).items():
            record(name, translate(tiny_u))
        if (org, seed) in public:
            record("public_finetune", public[(org, seed)])
        record("distillation", _distilled(ev, tiny_u, seed))
    return scores


def public_finetunes(ev: Evaluator) -> dict[tuple[str, int], UpdateVector]:
    """The provider's LLM fine-tuned on public records of each organization's family."""
    jobs = [(o, s) for o in (*ev.cfg.orgs, *ev.cfg.mixture_orgs) for s in ev.cfg.seeds]
    texts = [family_public_records(org_family(o), ev.cfg.public_size, s) for o, s in jobs]
    got = train_updates("llm", texts, [2000 + s for _, s in jobs], ev.shadow, math.inf)
    return {job: UpdateVector(ev.llm_layout, got[j]) for j, job in enumerate(jobs)}


def _distilled(ev: Evaluator, tiny_u: UpdateVector, seed: int) -> UpdateVector:
    """Distillation baseline: LLM student matches the org's TinyLM on public mixture text."""
    teacher, t_init, t_layout, _ = fresh_lora("tinylm", ev.shadow.lora)
    apply_update(teacher, t_init, tiny_u, t_layout)
    student, s_init, s_layout, tok = fresh_lora("llm", ev.shadow.lora)
    device = best_device()
    teacher.to(device)
    student.to(device)
    plan = plan_subsets(2 * (seed + 1), 10_000 + seed)[-1]
    texts = subset_texts(plan, ev.cfg.train_size)
    import torch

    out = distill(student, teacher, tok, texts, ev.shadow.finetune(seed),
                  torch.from_numpy(s_init), s_layout)
    assert out is not None
    return out


def evaluate_multi(ev: Evaluator, methods: dict[str, Translate], epsilon: float) -> list[Score]:
    """3 organizations: the mean of their TinyLM updates translated, vs the LLM on the union."""
    cfg, shadow = ev.cfg, ev.shadow
    orgs = list(cfg.orgs)
    label = "+".join(orgs)
    texts = [org_records(o, "train", cfg.train_size) for s in cfg.seeds for o in orgs]
    seeds = [1000 + s for s in cfg.seeds for _ in orgs]
    tiny = train_updates("tinylm", texts, seeds, shadow, epsilon)
    unions = [[t for o in orgs for t in org_records(o, "train", cfg.train_size)]
              for _ in cfg.seeds]
    union = train_updates("llm", unions, [1000 + s for s in cfg.seeds], shadow, epsilon)
    scores: list[Score] = []
    for i, seed in enumerate(cfg.seeds):
        mean = UpdateVector(ev.tiny_layout,
                            tiny[i * len(orgs):(i + 1) * len(orgs)].mean(0).astype(np.float32))

        def record(method: str, update: UpdateVector | None, seed: int = seed) -> None:
            per = ev.score(update, orgs)
            scores.append(Score(org=label, seed=seed, epsilon=epsilon, method=method,
                                perplexity=float(np.mean(list(per.values()))), per_org=per))

        record("base_llm", None)
        record("tinylm_finetuned", mean)  # the aggregated TinyLM
        record("llm_finetuned", UpdateVector(ev.llm_layout, union[i]))
        for name, translate in methods.items():
            record(name, translate(mean))
    return scores


def pgr_rows(scores: list[Score]) -> list[dict]:
    """Per (method, epsilon, setting): PGR mean/std over (org, seed) and perplexity per org."""
    groups: dict[tuple[str, int, float], dict[str, Score]] = {}
    for s in scores:
        groups.setdefault((s.org, s.seed, s.epsilon), {})[s.method] = s
    pgrs: dict[tuple[str, float, str], list[float]] = {}
    ppls: dict[tuple[str, float, str], dict[str, list[float]]] = {}
    for (org, _seed, eps), by_method in groups.items():
        tiny, top = by_method["tinylm_finetuned"], by_method["llm_finetuned"]
        setting = ("multi" if "+" in org else "mixture" if org in ORG_MIXTURES else
                   "stretch" if org_family(org) in HELD_OUT_FAMILIES else "single")
        for method, s in by_method.items():
            key = (method, eps, setting)
            gap = tiny.perplexity - top.perplexity
            pgrs.setdefault(key, []).append((tiny.perplexity - s.perplexity) / gap
                                            if abs(gap) > 1e-9 else float("nan"))
            for o, v in (s.per_org or {org: s.perplexity}).items():
                ppls.setdefault(key, {}).setdefault(o, []).append(v)
    rows = []
    for (method, eps, setting), values in pgrs.items():
        pgr = np.array(values, dtype=float)
        rows.append({"method": method, "epsilon": eps, "setting": setting,
                     "pgr_mean": float(np.nanmean(pgr)), "pgr_std": float(np.nanstd(pgr)),
                     "perplexity": {o: float(np.mean(v))
                                    for o, v in ppls[(method, eps, setting)].items()}})
    return rows
