"""Apply an LLM update vector to the base LLM and export it as a standard PEFT adapter."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path

import numpy as np
from peft import PeftModel
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from gt_secure.models import load_base
from gt_secure.update import (
    LoraSpec,
    UpdateLayout,
    UpdateVector,
    apply_update,
    attach_lora,
    lora_state,
    update_layout,
)


@cache
def _base(name: str) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast]:
    return load_base(name)


def fresh_lora(
    name: str, spec: LoraSpec | None = None
) -> tuple[PeftModel, np.ndarray, UpdateLayout, PreTrainedTokenizerFast]:
    """A new LoRA-wrapped copy of base ``name``: (model, initial LoRA state, layout, tokenizer)."""
    base, tokenizer = _base(name)
    model = attach_lora(copy.deepcopy(base), spec)
    return model, lora_state(model), update_layout(model, name, spec), tokenizer


def adapted_model(update: UpdateVector) -> PeftModel:
    """The base model of ``update`` with its LoRA factors set to init + update."""
    model, initial, layout, _ = fresh_lora(update.layout.base_model, update.layout.lora)
    apply_update(model, initial, update, layout)
    return model


def export_adapter(update: UpdateVector, directory: Path) -> Path:
    """Write ``update`` as a PEFT adapter directory (``PeftModel.from_pretrained`` loads it)."""
    model = adapted_model(update)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(directory))
    _portable(directory, update.layout.base_model)
    update.save(directory / "update_vector.safetensors")
    return directory


def _portable(directory: Path, base_name: str) -> None:
    """Replace the provider's absolute checkpoint path that PEFT writes (adapter_config.json
    ``base_model_name_or_path``, the model card) with the portable name ``gt-secure/<base>``."""
    from gt_secure.models.loading import checkpoint_dir

    local = str(checkpoint_dir(base_name))
    for name in ("adapter_config.json", "README.md"):
        path = directory / name
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            path.write_text(text.replace(local, f"gt-secure/{base_name}"), encoding="utf-8")


def load_adapter(directory: Path) -> PeftModel:
    """Load an exported adapter onto a fresh copy of its shipped base model."""
    update = UpdateVector.load(directory / "update_vector.safetensors")
    base, _ = _base(update.layout.base_model)
    return PeftModel.from_pretrained(copy.deepcopy(base), str(directory))
