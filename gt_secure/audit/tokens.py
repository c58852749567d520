"""Token-level plumbing shared by the attacks: encoding samples and per-token log-probabilities.

Attacks accept either texts plus a tokenizer-like callable, or pre-tokenized id sequences. A
tokenizer-like callable maps ``str`` to a list of ids, a 1-D tensor, or a mapping with an
``"input_ids"`` entry (the Hugging Face ``tokenizer(text)`` form).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias

import numpy as np
import torch
from torch import nn

from gt_secure.errors import InvalidFieldError

Sample: TypeAlias = str | Sequence[int] | torch.Tensor
Tokenizer = Callable[[str], Any]


class ByteTokenizer:
    """UTF-8 byte tokenizer: id = byte + ``offset``, with a leading BOS id.

    Used when no trained BPE is available; 259 ids fit every base-model vocabulary.
    """

    def __init__(self, bos_id: int = 1, offset: int = 3) -> None:
        self.bos_id = bos_id
        self.offset = offset
        self.vocab_size = 256 + offset

    def __call__(self, text: str) -> list[int]:
        return [self.bos_id] + [b + self.offset for b in text.encode("utf-8")]

    def decode(self, ids: Sequence[int]) -> str:
        data = bytes(i - self.offset for i in ids if self.offset <= i < self.vocab_size)
        return data.decode("utf-8", errors="replace")


def encode(sample: Sample, tokenizer: Tokenizer | None) -> torch.Tensor:
    """Return ``sample`` as a 1-D int64 tensor of token ids."""
    if isinstance(sample, str):
        if tokenizer is None:
            raise InvalidFieldError("tokenizer", None, "a tokenizer-like callable for text samples")
        out = tokenizer(sample)
        if isinstance(out, Mapping):
            out = out["input_ids"]
        ids = torch.as_tensor(out, dtype=torch.long)
    else:
        ids = torch.as_tensor(sample, dtype=torch.long)
    ids = ids.reshape(-1)
    if ids.numel() < 2:
        raise InvalidFieldError("sample length", int(ids.numel()), "at least 2 tokens")
    return ids


def sample_bytes(sample: Sample, tokenizer: Tokenizer | None) -> bytes:
    """Bytes that represent ``sample`` for compression-based calibration."""
    if isinstance(sample, str):
        return sample.encode("utf-8")
    ids = [int(i) for i in torch.as_tensor(sample).reshape(-1)]
    decode = getattr(tokenizer, "decode", None)
    if callable(decode):
        return str(decode(ids)).encode("utf-8")
    return np.asarray(ids, dtype=np.int64).tobytes()


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a parameterless module)."""
    for param in model.parameters():
        return param.device
    return torch.device("cpu")


@torch.no_grad()
def token_logprobs(
    model: nn.Module,
    sequences: Sequence[torch.Tensor],
    *,
    batch_size: int = 16,
    max_length: int | None = None,
    pad_id: int = 0,
) -> list[np.ndarray]:
    """Log-probability of each next token under ``model``, one float64 array per sequence.

    Sequences are right-padded per batch and truncated to ``max_length`` tokens (default: the
    model's ``max_position_embeddings`` when it has one). The model's train/eval mode is restored.
    """
    if batch_size < 1:
        raise InvalidFieldError("batch_size", batch_size, ">= 1")
    if max_length is None:
        config = getattr(model, "config", None)
        max_length = getattr(config, "max_position_embeddings", None)
    device = model_device(model)
    was_training = model.training
    model.eval()
    try:
        out: list[np.ndarray] = []
        for start in range(0, len(sequences), batch_size):
            chunk = sequences[start:start + batch_size]
            batch = [s[:max_length] if max_length else s for s in chunk]
            width = max(int(s.numel()) for s in batch)
            ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, seq in enumerate(batch):
                ids[row, : seq.numel()] = seq
                mask[row, : seq.numel()] = 1
            ids, mask = ids.to(device), mask.to(device)
            logits = model(input_ids=ids, attention_mask=mask).logits.float()
            logp = torch.log_softmax(logits[:, :-1], dim=-1)
            picked = logp.gather(-1, ids[:, 1:, None]).squeeze(-1).double().cpu().numpy()
            for row, seq in enumerate(batch):
                out.append(picked[row, : seq.numel() - 1].copy())
        return out
    finally:
        model.train(was_training)
