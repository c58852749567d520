"""Fixtures for the audit unit tests: byte tokenizer, random tiny model, memorising model."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
import torch
from audit_helpers import torch_threads
from torch import nn
from transformers import LlamaForCausalLM

from gt_secure.audit.canary import CanaryManifest, make_manifest
from gt_secure.audit.finetune import finetune_causal_lm
from gt_secure.audit.tokens import ByteTokenizer
from gt_secure.models.config import model_config


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with torch_threads(1):
        yield


@pytest.fixture(scope="session")
def tokenizer() -> ByteTokenizer:
    return ByteTokenizer()


@pytest.fixture(scope="session")
def random_model() -> nn.Module:
    torch.manual_seed(0)
    with torch_threads(1):
        return LlamaForCausalLM(model_config("tinylm")).eval()


@pytest.fixture(scope="session")
def memorised(random_model: nn.Module, tokenizer: ByteTokenizer
              ) -> tuple[nn.Module, CanaryManifest]:
    """The tiny model fine-tuned for many epochs on the member canaries (8 of 16)."""
    manifest = make_manifest(16, canary_seed=1, split_seed=1)
    with torch_threads(1):
        model = finetune_causal_lm(copy.deepcopy(random_model), manifest.members, tokenizer,
                                   epochs=30, lr=5e-3, batch_size=4, seed=0)
    return model, manifest
