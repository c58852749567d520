"""The provider side of the federation audit: scoring the delivered adapter through the public
translator, and a planted provider bug (a leaking translator) as the adapter audit's control.

The translator is public, so the auditor can push each Dirac canary's TinyLM coordinate through
it: ``v_k = f(h e_k) - f(-h e_k)) / 2h`` (central difference of the translator ``f`` at the zero
update, in standardised LLM units), and score the delivered LLM update ``y`` by its least-squares
coefficient on that image, ``s_k = -<y~ - f~(0), v_k> / ||v_k||^2`` (:func:`translator_scores`);
for a translator that passes the TinyLM update through unchanged this is exactly the TinyLM
coordinate score. The shipped translator keeps only a rank-128 linear path (plus a small
residual) of the 2048-dimensional TinyLM update, so each coordinate reaches the adapter
attenuated and mixed with the others.

:func:`copy_translator` is the planted provider bug: a translator of the same class whose linear
path copies the (standardised) TinyLM update into the first 2048 LLM coordinates, without the
compression; :func:`provider_translator` makes the simulation's ServerApp use it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import numpy as np
import torch

from gt_secure.provider.training import Translator
from gt_secure.update import UpdateVector
from gt_secure.update.layout import UpdateLayout

ProviderBug = Literal["translator_copy"]


def copy_translator() -> Translator:
    """The shipped translator's class and statistics, its linear path replaced by a copy of the
    standardised TinyLM update into the first ``D_tiny`` standardised LLM coordinates."""
    from gt_secure.provider.service import load_translator
    from gt_secure.provider.translator import GradTransformer

    shipped = load_translator()
    d_tiny = shipped.tiny_layout.n_layers * shipped.tiny_layout.token_dim
    d_llm = shipped.llm_layout.n_layers * shipped.llm_layout.token_dim
    net = GradTransformer(shipped.net.cfg.model_copy(update={"linear_rank": d_tiny}))
    for name in ("tiny_mean", "tiny_std", "llm_mean", "llm_std"):
        getattr(net, name).copy_(getattr(shipped.net, name).cpu())
    with torch.no_grad():  # the path [I | 0] as set_linear_path stores it (its SVD: U = S = I)
        net.linear_down.weight.copy_(torch.eye(d_tiny))  # (D_tiny, D_tiny)
        net.linear_up.weight.copy_(torch.eye(d_llm, d_tiny))  # (D_llm, D_tiny); residual: 0
    net.linear_down.weight.requires_grad_(False)
    net.linear_up.weight.requires_grad_(False)
    return Translator(net, shipped.tiny_layout, shipped.llm_layout)


@contextmanager
def provider_translator(translator: Translator) -> Iterator[None]:
    """Within the block, the provider's round (:func:`gt_secure.app.roles.provider_step`, in
    this process: the simulation's ServerApp) translates with ``translator``."""
    from gt_secure.app import roles

    honest = roles._translator
    roles._translator = lambda: translator  # type: ignore[assignment]
    try:
        yield
    finally:
        roles._translator = honest  # type: ignore[assignment]


@torch.no_grad()
def translator_scores(llm_update: UpdateVector, translator: Translator, index: np.ndarray,
                      batch: int = 64) -> np.ndarray:
    """(m,) each Dirac canary's least-squares coefficient in ``llm_update`` on the translator's
    image of its TinyLM coordinate ``index[k]``, sign as :func:`coordinate_scores`."""
    net = translator.net.eval()
    layout = translator.tiny_layout
    device = next(net.parameters()).device
    llm_std = net.llm_std.flatten().double().cpu()  # (D_llm,)

    def standardised(tiny_flat: np.ndarray) -> torch.Tensor:  # (B, D_tiny) -> (B, D_llm)
        tokens = np.stack([UpdateVector(layout, row.astype(np.float32)).layer_tokens()
                           for row in tiny_flat])  # (B, L_tiny, d_tiny)
        out = net(torch.from_numpy(tokens).to(device)).flatten(1).double().cpu()
        return out / llm_std

    zero = np.zeros((1, layout.size))
    y = torch.from_numpy(llm_update.layer_tokens().reshape(-1)).double() / llm_std
    y = y - standardised(zero)[0]  # (D_llm,)
    scores = []
    step = net.tiny_std.flatten().double().cpu().numpy()  # one std per TinyLM coordinate
    for start in range(0, len(index), batch):
        idx = index[start:start + batch]
        h = 1e-2 * _tiny_std_at(step, layout, idx)  # (B,)
        probe = np.zeros((len(idx), layout.size))
        probe[np.arange(len(idx)), idx] = h
        images = (standardised(probe) - standardised(-probe)) / torch.from_numpy(2 * h)[:, None]
        scores.append(-(images @ y) / (images * images).sum(1).clamp_min(1e-30))
    return torch.cat(scores).numpy()


def _tiny_std_at(std_tokens: np.ndarray, layout: UpdateLayout,
                 index: np.ndarray) -> np.ndarray:
    """The translator's standardisation std of flat TinyLM coordinates ``index``, (B,)."""
    flat = np.arange(layout.size, dtype=np.float32)  # exact below 2**24
    order = UpdateVector(layout, flat).layer_tokens().reshape(-1)  # token position -> flat index
    position = np.empty(order.size, dtype=np.int64)
    position[order.astype(np.int64)] = np.arange(order.size)
    return std_tokens[position[index]]
