"""Base models: the shipped TinyLM and LLM checkpoints and their shared tokenizer."""

from gt_secure.models.config import BASE_NAMES, model_config
from gt_secure.models.loading import CHECKPOINTS_DIR, base_model_hash, best_device, load_base

__all__ = [
    "BASE_NAMES",
    "CHECKPOINTS_DIR",
    "base_model_hash",
    "best_device",
    "load_base",
    "model_config",
]
