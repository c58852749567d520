"""The PGR harness: every method scored the same way on held-out organization domains.

P = task score: negative perplexity (language modelling) or label accuracy.
PGR = (P_method - P_tiny) / (P_llm - P_tiny), P_tiny the fine-tuned TinyLM and P_llm the LLM
fine-tuned directly on the private data (upper bound).
"""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from gt_secure.data.organizations import org_texts
from gt_secure.data.shadow import random_domain_weights, shadow_subset
from gt_secure.data.tasks import accuracy
from gt_secure.models.scoring import perplexity
from gt_secure.provider.adapter import fresh_lora
from gt_secure.provider.distillation import distill
from gt_secure.update import (
    FinetuneConfig,
    UpdateVector,
    apply_update,
    extract_update,
    finetune_lora,
)

Translate = Callable[[UpdateVector], UpdateVector]


class UtilityConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    orgs: tuple[str, ...] = ("hospital", "bank", "law")
    seeds: tuple[int, ...] = (0, 1, 2)
    steps: int = Field(16, ge=1)  # same regime as the shadow fine-tunes
    batch_size: int = 32
    lr: float = 3e-3
    max_length: int = 64
    train_size: int = 256
    eval_size: int = 96
    accuracy_size: int = 48
    distill_steps: int = 16


class Score(BaseModel):
    org: str
    seed: int
    method: str
    perplexity: float
    accuracy: float


def _score(model, tokenizer, org: str, cfg: UtilityConfig) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    texts = org_texts(org, "test", cfg.eval_size)
    return perplexity(model, tokenizer, texts), accuracy(
        model, tokenizer, org, "test", cfg.accuracy_size
    )


def evaluate_org(
    org: str,
    seed: int,
    methods: dict[str, Translate],
    cfg: UtilityConfig,
    distillation: bool = True,
) -> list[Score]:
    """Fine-tune TinyLM and LLM on ``org``, then score every method's LLM on its test split."""
    ft = FinetuneConfig(
        steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr, seed=seed, max_length=cfg.max_length
    )
    train = org_texts(org, "train", cfg.train_size)
    scores: list[Score] = []

    def record(method: str, model) -> None:  # type: ignore[no-untyped-def]
        ppl, acc = _score(model, tokenizer, org, cfg)
        scores.append(Score(org=org, seed=seed, method=method, perplexity=ppl, accuracy=acc))

    tiny, tiny_init, tiny_layout, tokenizer = fresh_lora("tinylm")
    record("base_tinylm", tiny)
    finetune_lora(tiny, tokenizer, train, ft)
    record("tinylm_finetuned", tiny)
    tiny_update = extract_update(tiny, tiny_init, tiny_layout)

    llm, llm_init, llm_layout, _ = fresh_lora("llm")
    record("base_llm", llm)
    for name, translate in methods.items():
        apply_update(llm, llm_init, translate(tiny_update), llm_layout)
        record(name, llm)
    if distillation:
        student, student_init, _, _ = fresh_lora("llm")
        public = shadow_subset(
            random_domain_weights(random.Random(seed)), cfg.train_size, seed
        )
        distill(
            student, tiny, tokenizer, public, ft.model_copy(update={"steps": cfg.distill_steps})
        )
        record("distillation", student)
    direct, _, _, _ = fresh_lora("llm")
    finetune_lora(direct, tokenizer, train, ft)
    record("llm_finetuned", direct)
    return scores


def pgr_table(scores: list[Score]) -> dict[str, dict[str, float]]:
    """Per method: mean and std over (org, seed) of PGR for perplexity and accuracy."""
    by_key: dict[tuple[str, int], dict[str, Score]] = {}
    for s in scores:
        by_key.setdefault((s.org, s.seed), {})[s.method] = s
    table: dict[str, dict[str, list[float]]] = {}
    for group in by_key.values():
        tiny, top = group["tinylm_finetuned"], group["llm_finetuned"]
        for method, s in group.items():
            row = table.setdefault(method, {"pgr_lm": [], "pgr_acc": [], "ppl": [], "acc": []})
            row["ppl"].append(s.perplexity)
            row["acc"].append(s.accuracy)
            row["pgr_lm"].append(_pgr(-s.perplexity, -tiny.perplexity, -top.perplexity))
            row["pgr_acc"].append(_pgr(s.accuracy, tiny.accuracy, top.accuracy))
    out: dict[str, dict[str, float]] = {}
    for method, row in table.items():
        out[method] = {}
        for key, values in row.items():
            arr = np.array([v for v in values if np.isfinite(v)])
            out[method][f"{key}_mean"] = float(arr.mean()) if arr.size else float("nan")
            out[method][f"{key}_std"] = float(arr.std()) if arr.size else float("nan")
    return out


def _pgr(p: float, p_tiny: float, p_llm: float) -> float:
    gap = p_llm - p_tiny
    return (p - p_tiny) / gap if abs(gap) > 1e-9 else float("nan")
