"""Knowledge-distillation baseline: the LLM learns from the fine-tuned TinyLM on public text.

The provider never sees private data, so the student (LLM + fresh LoRA) matches the teacher's
(fine-tuned TinyLM's) next-token distributions on public shadow text (shared tokenizer).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from peft import PeftModel
from transformers import PreTrainedTokenizerBase

from gt_secure.models.scoring import encode
from gt_secure.update import FinetuneConfig, UpdateLayout, UpdateVector, lora_state


def distill(
    student: PeftModel,
    teacher: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    cfg: FinetuneConfig,
    initial: torch.Tensor | None = None,
    layout: UpdateLayout | None = None,
    temperature: float = 1.0,
) -> UpdateVector | None:
    """Train the student's LoRA on KL(teacher || student); its update if ``layout`` is given."""
    data = encode(tokenizer, texts, max_length=cfg.max_length)
    params = [p for p in student.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(cfg.seed)
    teacher.eval()
    student.train()
    for _step in range(cfg.steps):
        idx = torch.randint(0, len(texts), (cfg.batch_size,), generator=gen)
        device = next(student.parameters()).device
        ids = data["input_ids"][idx].to(device)  # (B, T)
        mask = data["attention_mask"][idx].to(device)
        with torch.no_grad():
            t_logp = torch.log_softmax(
                teacher(input_ids=ids, attention_mask=mask).logits / temperature, dim=-1
            )  # (B, T, V)
        s_logp = torch.log_softmax(
            student(input_ids=ids, attention_mask=mask).logits / temperature, dim=-1
        )
        kl = (t_logp.exp() * (t_logp - s_logp)).sum(-1)  # (B, T)
        loss = (kl * mask).sum() / mask.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    student.eval()
    if layout is None or initial is None:
        return None
    return UpdateVector(layout, lora_state(student) - initial.numpy())
