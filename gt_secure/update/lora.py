"""LoRA via PEFT on the base models: attach, extract the update vector, apply it.

The LoRA A factors are initialised from ``LoraSpec.init_seed``, so the initial adapter is
reproducible and an update vector is the raw change of the A and B factors from that init
(as in the paper).
"""

from __future__ import annotations

import re

import numpy as np
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import PreTrainedModel

from gt_secure.models.loading import base_model_hash
from gt_secure.update.layout import LoraSpec, TensorSpec, UpdateLayout
from gt_secure.update.vector import UpdateVector

_PEFT_NAME = re.compile(r"^(?:base_model\.model\.)?(?:model\.)?(.*)\.(lora_[AB])\.default\.weight$")


def attach_lora(model: PreTrainedModel, spec: LoraSpec | None = None) -> PeftModel:
    """Wrap ``model`` with a freshly, reproducibly initialised LoRA adapter (only LoRA trains)."""
    spec = spec or LoraSpec()
    config = LoraConfig(
        r=spec.r,
        lora_alpha=spec.alpha,
        target_modules=list(spec.target_modules),
        lora_dropout=0.0,
        bias="none",
        task_type="CAUSAL_LM",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.init_seed)
        peft_model = get_peft_model(model, config)
    object.__setattr__(peft_model, "gt_lora_spec", spec)  # read by lora_parameters
    if spec.freeze_a:
        for name, param in peft_model.named_parameters():
            if ".lora_A." in name:
                param.requires_grad_(False)
    return peft_model


def lora_parameters(model: PeftModel) -> dict[str, torch.nn.Parameter]:
    """Canonical name (e.g. ``layers.0.self_attn.q_proj.lora_B``) -> trained LoRA parameter.

    In layout order; frozen A factors (``LoraSpec.freeze_a``) are not part of the update vector.
    """
    spec: LoraSpec = getattr(model, "gt_lora_spec", None) or LoraSpec()
    out = {}
    for name, param in model.named_parameters():
        match = _PEFT_NAME.match(name)
        if match and spec.trains(match.group(2)):
            out[f"{match.group(1)}.{match.group(2)}"] = param
    return dict(sorted(out.items(), key=lambda kv: _sort_key(kv[0])))


def _sort_key(name: str) -> tuple[int, str]:
    layer = re.search(r"layers\.(\d+)\.", name)
    return (int(layer.group(1)) if layer else -1, name)


def update_layout(model: PeftModel, base_model: str, spec: LoraSpec | None = None) -> UpdateLayout:
    """The layout of update vectors of this LoRA-wrapped base model."""
    entries = tuple(
        TensorSpec(name=n, shape=tuple(p.shape)) for n, p in lora_parameters(model).items()
    )
    return UpdateLayout(
        base_model=base_model,
        base_model_hash=base_model_hash(base_model),
        lora=spec or LoraSpec(),
        entries=entries,
    )


def lora_state(model: PeftModel) -> np.ndarray:
    """Current LoRA factors as one flat float32 array, in layout order."""
    return np.concatenate(
        [p.detach().float().cpu().reshape(-1).numpy() for p in lora_parameters(model).values()]
    ).astype(np.float32)


def extract_update(model: PeftModel, initial: np.ndarray, layout: UpdateLayout) -> UpdateVector:
    """Update vector = current LoRA factors minus the initial ones."""
    return UpdateVector(layout, lora_state(model) - initial)


@torch.no_grad()
def apply_update(
    model: PeftModel, initial: np.ndarray, update: UpdateVector, layout: UpdateLayout
) -> None:
    """Set the LoRA factors to ``initial + update`` after checking the layout."""
    update.check_compatible(layout)
    params = lora_parameters(model)
    values = initial + update.flat
    for entry, start, end in layout.offsets():
        param = params[entry.name]
        param.copy_(torch.from_numpy(values[start:end]).view(entry.shape).to(param))
