"""The provider's round: translate the mean TinyLM update, apply, evaluate, export the adapter."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from pydantic import BaseModel

from gt_secure.data.organizations import ORGANIZATIONS, org_texts
from gt_secure.data.tasks import accuracy
from gt_secure.models.loading import load_tokenizer
from gt_secure.models.scoring import perplexity
from gt_secure.provider.adapter import adapted_model, export_adapter, fresh_lora
from gt_secure.provider.training import Translator
from gt_secure.update import UpdateVector

SHIPPED_TRANSLATOR = Path(__file__).parent / "shipped_translator"


class RoundResult(BaseModel):
    adapter_dir: str
    llm_update_hash: str
    llm_update_norm: float
    perplexity: dict[str, dict[str, float]]  # model -> org -> perplexity
    accuracy: dict[str, dict[str, float]]


def load_translator(directory: Path | None = None) -> Translator:
    """The translator in ``directory`` (default: the one shipped with the package)."""
    return Translator.load(directory or SHIPPED_TRANSLATOR)


def evaluate_models(
    models: Mapping[str, torch.nn.Module],
    orgs: tuple[str, ...] = ORGANIZATIONS,
    eval_size: int = 64,
    accuracy_size: int = 32,
) -> tuple[dict, dict]:
    """Perplexity and accuracy of each named model on each organization's held-out test split."""
    tokenizer = load_tokenizer()
    ppl: dict[str, dict[str, float]] = {}
    acc: dict[str, dict[str, float]] = {}
    for name, model in models.items():
        ppl[name] = {
            o: perplexity(model, tokenizer, org_texts(o, "test", eval_size))
            for o in orgs
        }
        acc[name] = {
            o: accuracy(model, tokenizer, o, "test", accuracy_size)
            for o in orgs
        }
    return ppl, acc


def finish_round(
    mean_update: UpdateVector,
    translator: Translator,
    out_dir: Path,
    orgs: tuple[str, ...] = ORGANIZATIONS,
    evaluate: bool = True,
) -> RoundResult:
    """Translate the averaged TinyLM update into an LLM update, export it, and evaluate it."""
    llm_update = translator.translate(mean_update)
    adapter_dir = export_adapter(llm_update, out_dir / "adapter")
    ppl: dict[str, dict[str, float]] = {}
    acc: dict[str, dict[str, float]] = {}
    if evaluate:
        base_llm, _, _, _ = fresh_lora("llm")
        base_tiny, _, _, _ = fresh_lora("tinylm")
        models = {
            "base_llm": base_llm,
            "tinylm_aggregated": adapted_model(mean_update),
            "generated_llm": adapted_model(llm_update),
            "base_tinylm": base_tiny,
        }
        ppl, acc = evaluate_models(models, orgs)
    return RoundResult(
        adapter_dir=str(adapter_dir),
        llm_update_hash=llm_update.content_hash(),
        llm_update_norm=llm_update.l2_norm(),
        perplexity=ppl,
        accuracy=acc,
    )
