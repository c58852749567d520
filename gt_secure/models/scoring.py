"""Language-modelling scores shared by every role: batching, per-text loss, perplexity."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

MAX_LENGTH = 128


def encode(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int = MAX_LENGTH
) -> dict[str, torch.Tensor]:
    """Right-padded batch: input_ids, attention_mask (B, T) and labels with -100 on padding."""
    batch = tokenizer(
        list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt"
    )
    labels = batch["input_ids"].clone()
    labels[batch["attention_mask"] == 0] = -100
    return {
        "input_ids": batch["input_ids"],
        "attention_mask": batch["attention_mask"],
        "labels": labels,
    }


def batches(texts: Sequence[str], batch_size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(texts), batch_size):
        yield texts[start : start + batch_size]


@torch.no_grad()
def token_nll(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Negative log-likelihood of every predicted token: (B, T-1), 0 where masked."""
    device = next(model.parameters()).device
    inputs = {k: v.to(device) for k, v in batch.items()}
    logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
    logits = logits[:, :-1].float()  # (B, T-1, V)
    targets = inputs["labels"][:, 1:]  # (B, T-1)
    mask = targets != -100
    nll = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.clamp(min=0).reshape(-1), reduction="none"
    ).view(targets.shape)
    return (nll * mask).cpu()


def per_text_loss(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    batch_size: int = 32,
) -> np.ndarray:
    """Mean token NLL of each text: (N,)."""
    model.eval()
    out = []
    for chunk in batches(texts, batch_size):
        batch = encode(tokenizer, chunk)
        nll = token_nll(model, batch)
        counts = (batch["labels"][:, 1:] != -100).sum(dim=1).clamp(min=1)
        out.append((nll.sum(dim=1) / counts).numpy())
    return np.concatenate(out) if out else np.zeros(0)


def perplexity(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    batch_size: int = 32,
) -> float:
    """Token-weighted perplexity over ``texts``."""
    model.eval()
    total, count = 0.0, 0
    for chunk in batches(texts, batch_size):
        batch = encode(tokenizer, chunk)
        total += float(token_nll(model, batch).sum())
        count += int((batch["labels"][:, 1:] != -100).sum())
    return math.exp(total / max(count, 1))
