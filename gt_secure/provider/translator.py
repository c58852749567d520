"""The Grad-Transformer: TinyLM per-layer update tokens in, LLM per-layer update tokens out.

Design (paper: encoder-decoder over one token per layer, MSE, teacher forcing) with the changes
our measurements favoured (docs/benchmarks.md): a non-autoregressive decoder whose inputs are
learned per-LLM-layer queries, per-coordinate standardisation of both update spaces (their scales
differ by orders of magnitude across A and B factors), an output layer initialised at zero (so
training starts from the mean-update baseline), and an MSE + cosine loss.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn


class TranslatorConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    tiny_layers: int
    tiny_dim: int
    llm_layers: int
    llm_dim: int
    d_model: int = Field(128, ge=8)
    heads: int = Field(4, ge=1)
    encoder_layers: int = Field(2, ge=1)
    decoder_layers: int = Field(2, ge=1)
    dropout: float = Field(0.1, ge=0, lt=1)


class GradTransformer(nn.Module):
    """Maps standardised TinyLM tokens (B, L_tiny, d_tiny) to LLM tokens (B, L_llm, d_llm)."""

    tiny_mean: torch.Tensor  # buffers: statistics of the training pairs
    tiny_std: torch.Tensor
    llm_mean: torch.Tensor
    llm_std: torch.Tensor

    def __init__(self, cfg: TranslatorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.input_proj = nn.Linear(cfg.tiny_dim, cfg.d_model)
        self.input_pos = nn.Parameter(torch.randn(cfg.tiny_layers, cfg.d_model) * 0.02)
        self.queries = nn.Parameter(torch.randn(cfg.llm_layers, cfg.d_model) * 0.02)
        self.transformer = nn.Transformer(
            d_model=cfg.d_model,
            nhead=cfg.heads,
            num_encoder_layers=cfg.encoder_layers,
            num_decoder_layers=cfg.decoder_layers,
            dim_feedforward=4 * cfg.d_model,
            dropout=cfg.dropout,
            batch_first=True,
            norm_first=True,
        )
        self.output_proj = nn.Linear(cfg.d_model, cfg.llm_dim)
        # Zero output at init = the mean shadow update (the standardisation adds it back): the
        # translator starts at the input-blind baseline and learns input-dependent corrections.
        nn.init.zeros_(self.output_proj.weight)
        nn.init.zeros_(self.output_proj.bias)
        # Statistics of the training pairs, stored with the weights.
        self.register_buffer("tiny_mean", torch.zeros(cfg.tiny_layers, cfg.tiny_dim))
        self.register_buffer("tiny_std", torch.ones(cfg.tiny_layers, cfg.tiny_dim))
        self.register_buffer("llm_mean", torch.zeros(cfg.llm_layers, cfg.llm_dim))
        self.register_buffer("llm_std", torch.ones(cfg.llm_layers, cfg.llm_dim))

    def set_normalisation(self, tiny: torch.Tensor, llm: torch.Tensor) -> None:
        """Per-coordinate mean/std from training tokens tiny (P, L, d), llm (P, L', d')."""
        self.tiny_mean.copy_(tiny.mean(0))
        self.tiny_std.copy_(tiny.std(0).clamp(min=1e-8))
        self.llm_mean.copy_(llm.mean(0))
        self.llm_std.copy_(llm.std(0).clamp(min=1e-8))

    def forward_normalised(self, tiny_z: torch.Tensor) -> torch.Tensor:
        """Standardised tiny tokens (B, L_tiny, d_tiny) -> standardised LLM (B, L_llm, d_llm)."""
        src = self.input_proj(tiny_z) + self.input_pos  # (B, L_tiny, d_model)
        tgt = self.queries.expand(tiny_z.shape[0], -1, -1)  # (B, L_llm, d_model)
        return self.output_proj(self.transformer(src, tgt))

    def forward(self, tiny: torch.Tensor) -> torch.Tensor:
        """Raw tiny tokens (B, L_tiny, d_tiny) -> raw LLM tokens (B, L_llm, d_llm)."""
        tiny_z = (tiny - self.tiny_mean) / self.tiny_std
        return self.forward_normalised(tiny_z) * self.llm_std + self.llm_mean


def translation_loss(
    pred_z: torch.Tensor, target_z: torch.Tensor, cosine_weight: float = 0.5
) -> torch.Tensor:
    """MSE in standardised space plus (1 - cosine) of the whole standardised update."""
    mse = torch.mean((pred_z - target_z) ** 2)
    cos = nn.functional.cosine_similarity(pred_z.flatten(1), target_z.flatten(1), dim=1).mean()
    return mse + cosine_weight * (1.0 - cos)
