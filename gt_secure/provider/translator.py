"""The Grad-Transformer: TinyLM per-layer update tokens in, LLM per-layer update tokens out.

Paper: an encoder-decoder transformer over one token per layer, trained with MSE. Ours, as
measured (docs/benchmarks.md, "Utility"): per-coordinate standardisation of both update spaces,
a *linear path* from the whole flattened TinyLM update to the whole LLM update (initialised with
the ridge solution on the training pairs, so the model starts where a linear map ends), and a
non-autoregressive encoder-decoder (learned per-LLM-layer queries) whose zero-initialised output
adds an input-dependent residual, trained with MSE and early stopping on held-out subsets.
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
    dropout: float = Field(0.0, ge=0, lt=1)
    linear_rank: int = Field(128, ge=1)  # rank of the stored ridge path (truncated SVD)


class GradTransformer(nn.Module):
    """Maps standardised TinyLM tokens (B, L_tiny, d_tiny) to LLM tokens (B, L_llm, d_llm)."""

    tiny_mean: torch.Tensor  # buffers: statistics of the training pairs
    tiny_std: torch.Tensor
    llm_mean: torch.Tensor
    llm_std: torch.Tensor

    def __init__(self, cfg: TranslatorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d_in, d_out = cfg.tiny_layers * cfg.tiny_dim, cfg.llm_layers * cfg.llm_dim
        rank = min(cfg.linear_rank, d_in, d_out)
        # The ridge path, stored as its rank-k truncated SVD (fitted in closed form, then frozen).
        self.linear_down = nn.Linear(d_in, rank, bias=False)
        self.linear_up = nn.Linear(rank, d_out, bias=False)
        nn.init.zeros_(self.linear_down.weight)
        nn.init.zeros_(self.linear_up.weight)
        self.input_proj = nn.Linear(cfg.tiny_dim, cfg.d_model)
        self.input_pos = nn.Parameter(torch.randn(cfg.tiny_layers, cfg.d_model) * 0.02)
        self.queries = nn.Parameter(torch.randn(cfg.llm_layers, cfg.d_model) * 0.02)
        self.encoder = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(cfg.d_model, cfg.heads, 4 * cfg.d_model, cfg.dropout,
                                       batch_first=True, norm_first=True),
            cfg.encoder_layers, enable_nested_tensor=False)
        self.decoder = nn.TransformerDecoder(
            nn.TransformerDecoderLayer(cfg.d_model, cfg.heads, 4 * cfg.d_model, cfg.dropout,
                                       batch_first=True, norm_first=True),
            cfg.decoder_layers)
        self.output_proj = nn.Linear(cfg.d_model, cfg.llm_dim)
        nn.init.zeros_(self.output_proj.weight)  # residual starts at 0: the model = its ridge path
        nn.init.zeros_(self.output_proj.bias)
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

    @torch.no_grad()
    def set_linear_path(self, weights: torch.Tensor) -> None:
        """Store the (D_tiny, D_llm) ridge map as its best rank-k approximation; freeze it."""
        u, s, vh = torch.linalg.svd(weights.float(), full_matrices=False)
        k = self.linear_down.out_features
        self.linear_down.weight.copy_((u[:, :k] * s[:k].sqrt()).T)  # (k, D_tiny)
        self.linear_up.weight.copy_(vh[:k].T * s[:k].sqrt())  # (D_llm, k)
        self.linear_down.weight.requires_grad_(False)
        self.linear_up.weight.requires_grad_(False)

    def linear_path(self, tiny_z: torch.Tensor) -> torch.Tensor:
        """(B, L_tiny, d_tiny) -> (B, L_llm, d_llm), standardised."""
        flat = self.linear_up(self.linear_down(tiny_z.flatten(1)))
        return flat.view(len(tiny_z), self.cfg.llm_layers, self.cfg.llm_dim)

    def residual(self, tiny_z: torch.Tensor) -> torch.Tensor:
        src = self.input_proj(tiny_z) + self.input_pos  # (B, L_tiny, d_model)
        tgt = self.queries.expand(tiny_z.shape[0], -1, -1)  # (B, L_llm, d_model)
        return self.output_proj(self.decoder(tgt, self.encoder(src)))

    def forward_normalised(self, tiny_z: torch.Tensor) -> torch.Tensor:
        """Standardised tiny tokens (B, L_tiny, d_tiny) -> standardised LLM (B, L_llm, d_llm)."""
        return self.linear_path(tiny_z) + self.residual(tiny_z)

    def forward(self, tiny: torch.Tensor) -> torch.Tensor:
        """Raw tiny tokens (B, L_tiny, d_tiny) -> raw LLM tokens (B, L_llm, d_llm)."""
        tiny_z = (tiny - self.tiny_mean) / self.tiny_std
        return self.forward_normalised(tiny_z) * self.llm_std + self.llm_mean


def ridge_weights(x: torch.Tensor, y: torch.Tensor, alpha: float) -> torch.Tensor:
    """argmin_W |x W - y|^2 + alpha |W|^2 via the dual (P x P): x (P, Dt), y (P, Dl) -> (Dt, Dl)."""
    x64, y64 = x.double(), y.double()
    gram = x64 @ x64.T
    eye = torch.eye(len(gram), dtype=gram.dtype, device=gram.device)
    return (x64.T @ torch.linalg.solve(gram + alpha * eye, y64)).to(x.dtype)


def select_alpha(x: torch.Tensor, y: torch.Tensor, groups: torch.Tensor,
                 alphas: tuple[float, ...], folds: int = 5) -> float:
    """The ridge alpha with the least held-out error, folds over whole groups (subsets)."""
    unique = torch.unique(groups)
    fold_of = {int(g): i % folds for i, g in enumerate(unique.tolist())}
    fold = torch.tensor([fold_of[int(g)] for g in groups.tolist()], device=x.device)
    errors = []
    for alpha in alphas:
        err = 0.0
        for f in range(folds):
            held = fold == f
            if held.all() or not held.any():
                continue
            w = ridge_weights(x[~held], y[~held], alpha)
            err += float(((x[held] @ w - y[held]) ** 2).sum())
        errors.append(err)
    return alphas[min(range(len(alphas)), key=errors.__getitem__)]
