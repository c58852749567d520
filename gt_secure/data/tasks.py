"""The accuracy task: name the label of an organization record; scored by LM likelihood.

For each held-out record the model scores every candidate ending ``"<prefix> <label>."`` and
predicts the most likely one; accuracy is the fraction predicted right (chance = 1/#labels).
"""

from __future__ import annotations

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from gt_secure.data.organizations import LABEL_PREFIX, LABELS, labelled_records, record_seed
from gt_secure.models.scoring import encode, token_nll


def accuracy_examples(org: str, split: str = "test", n: int = 64) -> list[tuple[str, str]]:
    return labelled_records(org, n, seed=record_seed(org, split))


def _ending_nll(
    model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, body: str, endings: list[str]
) -> np.ndarray:
    """NLL of each ending given ``body``: (n_endings,)."""
    prefix_len = len(tokenizer(body, add_special_tokens=False)["input_ids"])
    batch = encode(tokenizer, [f"{body} {ending}" for ending in endings])
    nll = token_nll(model, batch)  # (E, T-1); position t predicts token t+1
    nll[:, : prefix_len - 1] = 0.0
    return nll.sum(dim=1).numpy()


@torch.no_grad()
def accuracy(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    org: str,
    split: str = "test",
    n: int = 64,
) -> float:
    """Fraction of ``n`` held-out records whose label the model ranks first."""
    model.eval()
    labels = list(LABELS[org])
    endings = [f"{LABEL_PREFIX[org]} {label}." for label in labels]
    correct = 0
    for body, label in accuracy_examples(org, split, n):
        scores = _ending_nll(model, tokenizer, body, endings)
        correct += int(labels[int(np.argmin(scores))] == label)
    return correct / n
