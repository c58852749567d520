"""Load the shipped base checkpoints offline (``from_pretrained(local_dir)``)."""

from __future__ import annotations

import hashlib
import os
from functools import cache
from pathlib import Path

import torch
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from gt_secure.errors import InvalidFieldError
from gt_secure.models.config import BASE_NAMES

CHECKPOINTS_DIR = Path(__file__).parent / "checkpoints"


def checkpoint_dir(name: str) -> Path:
    if name not in BASE_NAMES:
        raise InvalidFieldError("base_model", name, f"one of {list(BASE_NAMES)}")
    return CHECKPOINTS_DIR / name


@cache
def base_model_hash(name: str) -> str:
    """SHA-256 of the shipped weights file: identifies the exact base an update refers to."""
    digest = hashlib.sha256()
    with open(checkpoint_dir(name) / "model.safetensors", "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def best_device() -> torch.device:
    """CUDA when present (the provider), CPU otherwise."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_tokenizer(name: str = "tinylm") -> PreTrainedTokenizerFast:
    tok = PreTrainedTokenizerFast.from_pretrained(str(checkpoint_dir(name)))
    return tok


def load_base(name: str) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast]:
    """Load base model ``name`` ("tinylm" | "llm") and the shared tokenizer, on CPU in float32."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    directory = checkpoint_dir(name)
    model = LlamaForCausalLM.from_pretrained(str(directory), dtype=torch.float32)
    model.eval()
    return model, load_tokenizer(name)
