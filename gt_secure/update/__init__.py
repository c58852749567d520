"""Update vectors: LoRA deltas of a base model in a canonical, versioned layout."""

from gt_secure.update.finetune import FinetuneConfig, finetune_lora
from gt_secure.update.layout import LAYOUT_VERSION, LoraSpec, TensorSpec, UpdateLayout
from gt_secure.update.lora import (
    apply_update,
    attach_lora,
    extract_update,
    lora_parameters,
    lora_state,
    update_layout,
)
from gt_secure.update.vector import UpdateVector

__all__ = [
    "LAYOUT_VERSION",
    "FinetuneConfig",
    "LoraSpec",
    "TensorSpec",
    "UpdateLayout",
    "UpdateVector",
    "apply_update",
    "attach_lora",
    "extract_update",
    "finetune_lora",
    "lora_parameters",
    "lora_state",
    "update_layout",
]
