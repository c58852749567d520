"""Training, saving and loading the Grad-Transformer translator."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from safetensors.torch import load_file, save_file

from gt_secure.errors import InvalidFieldError, LayoutMismatchError
from gt_secure.models import best_device
from gt_secure.provider.pairs import ShadowPairs
from gt_secure.provider.translator import (
    GradTransformer,
    TranslatorConfig,
    ridge_weights,
    select_alpha,
)
from gt_secure.update import UpdateLayout, UpdateVector


class TrainConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    epochs: int = Field(400, ge=0)  # upper bound; early stopping on held-out subsets
    patience: int = Field(60, ge=1)  # epochs without a better validation error
    batch_size: int = Field(64, ge=1)
    lr: float = Field(5e-4, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    ridge_alphas: tuple[float, ...] = (1.0, 10.0, 100.0, 1e3, 1e4, 1e5)
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
        out = self.net(tiny)[0].float().cpu().numpy()  # (L_llm, d_llm), float32 on any device
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


def train_translator(
    pairs: ShadowPairs,
    cfg: TrainConfig,
    translator_cfg: dict[str, int | float] | None = None,
) -> tuple[Translator, dict[str, float]]:
    """Fit a Grad-Transformer: ridge path in closed form, then the residual with early stopping.

    Trains on ``pairs.split()[0]``; the held-out subsets (``split()[1]``) pick the alpha-free
    stopping epoch, and their errors for the ridge path alone and the whole model are returned.
    """
    torch.manual_seed(cfg.seed)
    device = best_device()
    train, val = pairs.split()
    if len(val.tiny) == 0:
        raise InvalidFieldError("pairs.validation", 0, "some held-out subsets (early stopping)")
    tiny = torch.from_numpy(train.tiny).float()  # (P, L_tiny, d_tiny)
    llm = torch.from_numpy(train.llm).float()  # (P, L_llm, d_llm)
    net = GradTransformer(TranslatorConfig.model_validate(
        {"tiny_layers": tiny.shape[1], "tiny_dim": tiny.shape[2], "llm_layers": llm.shape[1],
         "llm_dim": llm.shape[2], **(translator_cfg or {})}))
    net.set_normalisation(tiny, llm)
    net.to(device)
    zt, zl = _standardise(net, train)
    vt, vl = _standardise(net, val)
    groups = torch.from_numpy(train.subset).to(device)
    alpha = select_alpha(zt.flatten(1), zl.flatten(1), groups, cfg.ridge_alphas)
    net.set_linear_path(ridge_weights(zt.flatten(1), zl.flatten(1), alpha))
    ridge_val = _mse(net, vt, vl)
    best, best_state, stale, epochs_run = ridge_val, _snapshot(net), 0, 0
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    for epoch in range(1, cfg.epochs + 1):
        net.train()
        epochs_run = epoch
        order = torch.randperm(len(zt), generator=gen).to(device)
        for start in range(0, len(order), cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            loss = torch.mean((net.forward_normalised(zt[idx]) - zl[idx]) ** 2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        current = _mse(net, vt, vl)
        if current < best:
            best, best_state, stale = current, _snapshot(net), 0
        else:
            stale += 1
            if stale >= cfg.patience:
                break
    net.load_state_dict(best_state)
    translator = Translator(net, pairs.tiny_layout, pairs.llm_layout)
    metrics = {"ridge_alpha": alpha, "val_mse_ridge_path": ridge_val, "val_mse": best,
               "epochs_run": float(epochs_run), "train_pairs": float(len(zt)),
               "val_pairs": float(len(vt))}
    metrics.update(evaluate_pairs(translator, val))
    return translator, metrics


def _standardise(net: GradTransformer, pairs: ShadowPairs) -> tuple[torch.Tensor, torch.Tensor]:
    device = net.tiny_mean.device
    tiny = (torch.from_numpy(pairs.tiny).float().to(device) - net.tiny_mean) / net.tiny_std
    llm = (torch.from_numpy(pairs.llm).float().to(device) - net.llm_mean) / net.llm_std
    return tiny, llm


@torch.no_grad()
def _mse(net: GradTransformer, tiny_z: torch.Tensor, llm_z: torch.Tensor) -> float:
    net.eval()
    return float(torch.mean((net.forward_normalised(tiny_z) - llm_z) ** 2))


def _snapshot(net: GradTransformer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


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
