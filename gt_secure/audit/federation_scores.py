"""Canary texts and canary scores on the federation's released artifacts.

Canaries are short texts of rare tokens (ids no organization's training text uses, picked as the
data-path audit picks them: :func:`gt_secure.audit.data_path.canary_tokens`), decoded to text so
they enter an organization's data as ordinary records. An artifact is scored per canary by its
loss drop: ``s_k = loss_base(k) - loss_artifact(k)`` (mean token NLL, the organizations' own
per-example loss :class:`~gt_secure.organization._opacus.PerExampleLoss`), where ``base`` is the
shipped model the artifact adapts (the TinyLM for the aggregated update, the LLM for the
delivered adapter). An inserted canary's own sequence is learnt; a held-out one only shares the
generic "rare tokens become likelier" part, which moves every canary alike.

Dirac gradient canaries (:class:`~gt_secure.audit.federation_app.GradientCanarySpec`) own one
coordinate of the TinyLM LoRA each; canary ``k`` is scored on an update vector by how far its
coordinate moved against its gradient: ``s_k = -update[i_k]`` (:func:`coordinate_scores`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from gt_secure.audit.data_path import canary_tokens
from gt_secure.audit.federation_app import GradientCanarySpec
from gt_secure.update import UpdateVector


def rare_token_canaries(used_texts: Sequence[str], n_canaries: int, length: int,
                        seed: int) -> list[str]:
    """``n_canaries`` distinct texts of ``length`` rare tokens each: re-tokenized, none holds a
    token of ``used_texts`` (draws that decode into a used piece are dropped)."""
    from gt_secure.errors import InvalidFieldError
    from gt_secure.models.loading import load_tokenizer

    tokenizer = load_tokenizer()
    ids = {i for enc in tokenizer(list(used_texts))["input_ids"] for i in enc}
    used = torch.as_tensor(sorted(ids) or [0])
    free = len(tokenizer) - 4 - len(ids)
    draws = min(2 * n_canaries, free // length)
    if draws < n_canaries:
        raise InvalidFieldError("n_canaries", n_canaries, f"<= {free // length} ({free} unused "
                                f"tokens, {length} per canary)")
    rows = canary_tokens(used, len(tokenizer), draws, length, seed)  # (draws, length)
    texts = [str(tokenizer.decode(row.tolist())) for row in rows]
    kept = [t for t in texts if not ids & set(tokenizer(t, add_special_tokens=False)["input_ids"])]
    if len(kept) < n_canaries:
        raise InvalidFieldError("n_canaries", n_canaries, f"<= {len(kept)} (rare-token texts "
                                "that re-tokenize to unused tokens)")
    return kept[:n_canaries]


@torch.no_grad()
def canary_losses(model: nn.Module, tokenizer: object, texts: Sequence[str],
                  batch: int = 64) -> np.ndarray:
    """(m,) each text's mean token NLL under ``model``."""
    from gt_secure.models.scoring import encode
    from gt_secure.organization._opacus import PerExampleLoss

    model.eval()
    loss = PerExampleLoss(model)
    out = []
    for start in range(0, len(texts), batch):
        enc = encode(tokenizer, list(texts[start:start + batch]))  # type: ignore[arg-type]
        out.append(loss(enc["input_ids"], enc["attention_mask"], enc["labels"]).double())
    return torch.cat(out).numpy()


def tinylm_scores(aggregate: UpdateVector, texts: Sequence[str]) -> np.ndarray:
    """(m,) loss drops of the TinyLM with the aggregated update against the shipped TinyLM."""
    from gt_secure.provider.adapter import adapted_model, fresh_lora

    base, _, _, tokenizer = fresh_lora("tinylm")  # LoRA B = 0: the shipped TinyLM
    return canary_losses(base, tokenizer, texts) - canary_losses(adapted_model(aggregate),
                                                                 tokenizer, texts)


def adapter_scores(adapter_dir: Path, texts: Sequence[str]) -> np.ndarray:
    """(m,) loss drops of the LLM with the delivered PEFT adapter against the shipped LLM."""
    from gt_secure.provider.adapter import fresh_lora, load_adapter

    base, _, _, tokenizer = fresh_lora("llm")
    return canary_losses(base, tokenizer, texts) - canary_losses(load_adapter(adapter_dir),
                                                                 tokenizer, texts)


def canary_indices(spec: GradientCanarySpec) -> tuple[np.ndarray, list[bool]]:
    """``(i_k, coins)``: the flat update-vector index of each Dirac canary's coordinate, (m,),
    and its in/out coin, as the instrumented organization draws them on the TinyLM LoRA."""
    from gt_secure.audit.gradient_canary import make_gradient_canaries, trainable
    from gt_secure.provider.adapter import fresh_lora
    from gt_secure.update.lora import lora_parameters

    model, _, layout, _ = fresh_lora("tinylm")
    canaries = make_gradient_canaries(model, spec.n_canaries, spec.seed, spec.grad_norm,
                                      spec.match)
    canonical = {id(p): name for name, p in lora_parameters(model).items()}
    start = {entry.name: s for entry, s, _ in layout.offsets()}
    params = trainable(model)
    index = [start[canonical[id(params[name])]] + coord
             for name, coord in zip(canaries.params, canaries.coords, strict=True)]
    return np.asarray(index), canaries.is_member


def coordinate_scores(update: UpdateVector, index: np.ndarray) -> np.ndarray:
    """(m,) ``-update[i_k]``: each canary's coordinate moved against its (positive) gradient."""
    return -update.flat[index].astype(np.float64)
