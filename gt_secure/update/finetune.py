"""Plain (non-private) LoRA fine-tuning, shared by shadow pairs, baselines and the demo."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from peft import PeftModel
from pydantic import BaseModel, ConfigDict, Field
from transformers import PreTrainedTokenizerBase

from gt_secure.models.scoring import encode


class FinetuneConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    steps: int = Field(100, ge=0)
    batch_size: int = Field(16, ge=1)
    lr: float = Field(3e-3, gt=0)
    seed: int = 0
    max_length: int = Field(128, ge=8)


def finetune_lora(
    model: PeftModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    cfg: FinetuneConfig,
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train only the LoRA factors of ``model`` on ``texts`` with AdamW; returns step losses.

    ``on_step(step, loss)`` runs after every optimizer step (1-based), e.g. to take checkpoints.
    """
    device = next(model.parameters()).device
    data = encode(tokenizer, texts, max_length=cfg.max_length)  # (N, T) tensors
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(cfg.seed)
    losses: list[float] = []
    model.train()
    for step in range(1, cfg.steps + 1):
        idx = torch.randint(0, len(texts), (cfg.batch_size,), generator=gen)
        batch = {k: v[idx].to(device) for k, v in data.items()}
        loss = model(**batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if on_step is not None:
            on_step(step, losses[-1])
    model.eval()
    return losses
