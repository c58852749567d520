"""Training, saving and loading the Grad-Transformer translator."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from safetensors.torch import load_file, save_file

from gt_secure.errors import LayoutMismatchError
from gt_secure.models import best_device
from gt_secure.provider.shadow import ShadowPairs
from gt_secure.provider.translator import GradTransformer, TranslatorConfig, translation_loss
from gt_secure.update import UpdateLayout, UpdateVector


class TrainConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    epochs: int = Field(300, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.05, ge=0)
    cosine_weight: float = Field(0.5, ge=0)
    seed: int = 0


class Translator:
    """A trained Grad-Transformer bound to the exact TinyLM and LLM layouts it was trained on."""

    def __init__(
        self, net: GradTransformer, tiny_layout: UpdateLayout, llm_layout: UpdateLayout
    ) -> None:
        self.net = net
        self.tiny_layout = tiny_layout
        self.llm_layout = llm_layout

    @torch.no_grad()
    def translate(self, update: UpdateVector) -> UpdateVector:
        """TinyLM update vector -> LLM update vector; refuses a foreign layout or base model."""
        update.check_compatible(self.tiny_layout)
        device = next(self.net.parameters()).device
        self.net.eval()
        tiny = torch.from_numpy(update.layer_tokens()).float().unsqueeze(0).to(device)
        with _autocast(device):
            out = self.net(tiny)[0].float().cpu().numpy()  # (L_llm, d_llm)
        return UpdateVector.from_layer_tokens(self.llm_layout, out.astype(np.float32))

    def save(
        self,
        directory: Path,
        metrics: dict[str, float] | None = None,
        provenance: dict[str, object] | None = None,
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}
        save_file(state, str(directory / "translator.safetensors"))
        manifest = {
            "translator": self.net.cfg.model_dump(),
            "tiny_layout": self.tiny_layout.model_dump(mode="json"),
            "llm_layout": self.llm_layout.model_dump(mode="json"),
            "tiny_layout_hash": self.tiny_layout.layout_hash(),
            "llm_layout_hash": self.llm_layout.layout_hash(),
            "metrics": metrics or {},
            "provenance": provenance or {},
        }
        (directory / "manifest.json").write_text(json.dumps(manifest, indent=2))

    @classmethod
    def load(cls, directory: Path, expected_tiny: UpdateLayout | None = None) -> Translator:
        manifest = json.loads((directory / "manifest.json").read_text())
        tiny_layout = UpdateLayout.model_validate(manifest["tiny_layout"])
        llm_layout = UpdateLayout.model_validate(manifest["llm_layout"])
        if tiny_layout.layout_hash() != manifest["tiny_layout_hash"]:
            raise LayoutMismatchError(
                "manifest.tiny_layout_hash",
                manifest["tiny_layout_hash"],
                "the hash of manifest.tiny_layout",
            )
        if expected_tiny is not None and expected_tiny != tiny_layout:
            raise LayoutMismatchError(
                "translator.tiny_layout.base_model_hash",
                tiny_layout.base_model_hash,
                f"{expected_tiny.base_model_hash} (the TinyLM in use)",
            )
        net = GradTransformer(TranslatorConfig.model_validate(manifest["translator"]))
        net.load_state_dict(load_file(str(directory / "translator.safetensors")))
        net.to(best_device())
        return cls(net, tiny_layout, llm_layout)


def _autocast(device: torch.device) -> torch.autocast:
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def train_translator(
    pairs: ShadowPairs,
    cfg: TrainConfig,
    translator_cfg: dict[str, int | float] | None = None,
    validation: ShadowPairs | None = None,
) -> tuple[Translator, dict[str, float]]:
    """Fit a Grad-Transformer on shadow pairs; returns it and train/validation losses."""
    torch.manual_seed(cfg.seed)
    device = best_device()
    tiny = torch.from_numpy(pairs.tiny).float()  # (P, L_tiny, d_tiny)
    llm = torch.from_numpy(pairs.llm).float()  # (P, L_llm, d_llm)
    net_cfg = TranslatorConfig.model_validate(
        {"tiny_layers": tiny.shape[1], "tiny_dim": tiny.shape[2], "llm_layers": llm.shape[1],
         "llm_dim": llm.shape[2], **(translator_cfg or {})}
    )
    net = GradTransformer(net_cfg)
    net.set_normalisation(tiny, llm)
    net.to(device)
    tiny_z = (tiny.to(device) - net.tiny_mean) / net.tiny_std
    llm_z = (llm.to(device) - net.llm_mean) / net.llm_std
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    gen = torch.Generator().manual_seed(cfg.seed)
    loss = torch.tensor(0.0)
    for _epoch in range(cfg.epochs):
        net.train()
        order = torch.randperm(len(tiny_z), generator=gen)
        for start in range(0, len(order), cfg.batch_size):
            idx = order[start : start + cfg.batch_size].to(device)
            with _autocast(device):
                pred = net.forward_normalised(tiny_z[idx])
            loss = translation_loss(pred.float(), llm_z[idx], cfg.cosine_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
    translator = Translator(net, pairs.tiny_layout, pairs.llm_layout)
    metrics = {"train_loss": loss.item()}
    if validation is not None:
        metrics.update(evaluate_pairs(translator, validation))
    return translator, metrics


@torch.no_grad()
def evaluate_pairs(translator: Translator, pairs: ShadowPairs) -> dict[str, float]:
    """Mean relative L2 error and cosine of predicted vs true LLM updates."""
    net = translator.net.eval()
    device = next(net.parameters()).device
    pred = net(torch.from_numpy(pairs.tiny).float().to(device)).cpu().flatten(1)
    true = torch.from_numpy(pairs.llm).float().flatten(1)
    rel = ((pred - true).norm(dim=1) / true.norm(dim=1).clamp(min=1e-12)).mean()
    cos = torch.nn.functional.cosine_similarity(pred, true, dim=1).mean()
    return {"val_relative_error": float(rel), "val_cosine": float(cos)}
