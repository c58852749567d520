"""Fixtures for the organization node: a small randomly initialised LoRA TinyLM and token data."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from peft import PeftModel
from transformers import LlamaForCausalLM

from gt_secure.models.config import model_config
from gt_secure.update.lora import attach_lora


def lora_tinylm(seed: int = 0) -> PeftModel:
    """A LoRA-wrapped TinyLM with random weights (no checkpoint needed)."""
    torch.manual_seed(seed)
    return attach_lora(LlamaForCausalLM(model_config("tinylm")))


def token_data(n: int, length: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Right-padded random token batches: input_ids, attention_mask, labels (n, length)."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 4096, (n, length), generator=gen)
    lengths = torch.randint(length // 2, length + 1, (n,), generator=gen)
    mask = (torch.arange(length)[None, :] < lengths[:, None]).long()  # (n, length)
    ids = ids * mask
    labels = ids.masked_fill(mask == 0, -100)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
