"""Plain (non-private) full fine-tuning of a causal LM, used for audit controls and references.

This is the auditor's own trainer: the positive control of the canary audit (a model with no DP
that memorises its canaries) and the reference ("out") models of :class:`ReferenceAttack`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import nn

from gt_secure.audit.tokens import Sample, Tokenizer, encode, model_device
from gt_secure.errors import InvalidFieldError

TrainFn = Callable[[Sequence[str]], nn.Module]


def finetune_causal_lm(
    model: nn.Module,
    samples: Sequence[Sample],
    tokenizer: Tokenizer | None,
    *,
    epochs: int = 1,
    lr: float = 1e-3,
    batch_size: int = 8,
    seed: int = 0,
    max_length: int = 256,
    pad_id: int = 0,
) -> nn.Module:
    """Fine-tune all parameters of ``model`` in place with AdamW on next-token loss; return it.

    Batches are drawn in a seeded random order each epoch; padded positions carry no loss.
    """
    for field, value in (("epochs", epochs), ("batch_size", batch_size)):
        if value < 1:
            raise InvalidFieldError(field, value, ">= 1")
    if lr <= 0:
        raise InvalidFieldError("lr", lr, "> 0")
    if len(samples) == 0:
        raise InvalidFieldError("samples", [], "non-empty")
    seqs = [encode(s, tokenizer)[:max_length] for s in samples]
    device = model_device(model)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(seqs), generator=gen).tolist()
        for start in range(0, len(order), batch_size):
            batch = [seqs[i] for i in order[start:start + batch_size]]
            width = max(int(s.numel()) for s in batch)
            ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
            labels = torch.full((len(batch), width), -100, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, seq in enumerate(batch):
                ids[row, : seq.numel()] = seq
                labels[row, : seq.numel()] = seq
                mask[row, : seq.numel()] = 1
            out = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                        labels=labels.to(device))
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            opt.step()
    model.eval()
    return model


def full_finetune_trainer(
    base: nn.Module,
    tokenizer: Tokenizer | None,
    *,
    epochs: int,
    lr: float = 1e-3,
    batch_size: int = 8,
    seed: int = 0,
) -> TrainFn:
    """A ``train(texts) -> model`` callable that fine-tunes a fresh copy of ``base``."""

    def train(texts: Sequence[str]) -> nn.Module:
        model = copy.deepcopy(base)
        return finetune_causal_lm(model, texts, tokenizer, epochs=epochs, lr=lr,
                                  batch_size=batch_size, seed=seed)

    return train
