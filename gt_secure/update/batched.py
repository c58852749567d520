"""Many LoRA adapters trained at once on one frozen base model (shadow pairs, baselines).

``K`` adapters share the frozen base; each ``q_proj``/``v_proj`` holds stacked factors
A (K, r, d_in) and B (K, d_out, r), and a batch of ``K * b`` sequences is laid out adapter-major,
so one forward/backward trains all of them. Adapter ``k`` sees exactly what a sequential
:func:`gt_secure.update.finetune_lora` run on its texts sees: the same LoRA init, the same
``torch.Generator(seed_k)`` batch draws, the same loss (mean token NLL of its own batch), and
AdamW is per coordinate, so the stacked optimizer is K independent ones.

With ``dp`` set, each adapter runs DP-SGD instead (Poisson sampling at rate q, per-example
clipping of the gradient of its mean token NLL, Gaussian noise sigma * C on the sum, division by
the expected batch size; Opacus's semantics). Per-example gradients of the LoRA factors are read
exactly from the layer inputs and output gradients (the rank-r factorisation makes them cheap).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from gt_secure.models.scoring import encode
from gt_secure.update.finetune import FinetuneConfig
from gt_secure.update.layout import LoraSpec, UpdateLayout
from gt_secure.update.lora import attach_lora, lora_parameters


@dataclass(frozen=True)
class BatchedDp:
    """DP-SGD for every adapter: Poisson rate, noise multiplier, per-example clip norm."""

    sample_rate: float
    noise_multiplier: float
    clip_norm: float


class _StackedLora(nn.Module):
    """``base(x) + scaling * B_k A_k x`` for the rows of adapter k: x (K*b, T, d_in)."""

    def __init__(self, base: nn.Linear, a0: torch.Tensor, b0: torch.Tensor, k: int,
                 scaling: float, train_a: bool) -> None:
        super().__init__()
        self.base = base
        self.a = nn.Parameter(a0.expand(k, *a0.shape).clone(), requires_grad=train_a)
        self.b = nn.Parameter(b0.expand(k, *b0.shape).clone())
        self.scaling = scaling
        self.saved: dict[str, torch.Tensor] = {}
        self.capture = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.a.shape[0]
        xs = x.reshape(k, -1, x.shape[-1])  # (K, b*T, d_in)
        h = torch.bmm(xs, self.a.transpose(1, 2))  # (K, b*T, r)
        out = torch.bmm(h, self.b.transpose(1, 2)) * self.scaling  # (K, b*T, d_out)
        if self.capture and out.requires_grad:
            self.saved["x"], self.saved["h"] = xs.detach(), h.detach()
            out.register_hook(lambda g: self.saved.__setitem__("g", g.detach()))
        return self.base(x) + out.reshape(*x.shape[:-1], -1)

    def per_example_grads(self, b: int) -> dict[str, torch.Tensor]:
        """Gradients of each example's loss: b (K, b, d_out, r) [and a (K, b, r, d_in)]."""
        k = self.a.shape[0]
        g = self.saved["g"].reshape(k, b, -1, self.b.shape[1])  # (K, b, T, d_out)
        h = self.saved["h"].reshape(k, b, -1, self.a.shape[1])  # (K, b, T, r)
        out = {"b": torch.einsum("kito,kitr->kior", g, h) * self.scaling}
        if self.a.requires_grad:
            x = self.saved["x"].reshape(k, b, -1, self.a.shape[2])  # (K, b, T, d_in)
            gb = torch.einsum("kito,kor->kitr", g, self.b)  # (K, b, T, r)
            out["a"] = torch.einsum("kitr,kitd->kird", gb, x) * self.scaling
        return out


class StackedAdapters(nn.Module):
    """A frozen copy of ``base`` whose LoRA targets carry K stacked adapters."""

    def __init__(self, base: PreTrainedModel, spec: LoraSpec, k: int) -> None:
        super().__init__()
        init = lora_parameters(attach_lora(copy.deepcopy(base), spec.model_copy(
            update={"freeze_a": False})))  # the seeded init of both factors
        self.model = copy.deepcopy(base)
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.spec, self.k = spec, k
        self.layers: dict[str, _StackedLora] = {}
        for name, module in list(self.model.named_modules()):
            leaf = name.rsplit(".", 1)[-1]
            if leaf in spec.target_modules and isinstance(module, nn.Linear):
                key = name.removeprefix("model.")
                wrapped = _StackedLora(module, init[f"{key}.lora_A"].detach(),
                                       init[f"{key}.lora_B"].detach(), k,
                                       spec.alpha / spec.r, spec.trains("lora_A"))
                parent = self.model.get_submodule(name.rsplit(".", 1)[0])
                setattr(parent, leaf, wrapped)
                self.layers[key] = wrapped
        self.initial = self.flat_state()  # (K, D)

    def trained(self) -> list[tuple[str, nn.Parameter]]:
        """(canonical name, stacked parameter) in update-layout order."""
        out = []
        for key in sorted(self.layers, key=_layer_key):
            layer = self.layers[key]
            if layer.a.requires_grad:
                out.append((f"{key}.lora_A", layer.a))
            out.append((f"{key}.lora_B", layer.b))
        return out

    def flat_state(self) -> np.ndarray:
        """Current trained factors: (K, D) float32, in layout order."""
        return torch.cat([p.detach().float().reshape(self.k, -1) for _, p in self.trained()],
                         dim=1).cpu().numpy()

    def updates(self) -> np.ndarray:
        return self.flat_state() - self.initial

    def check_layout(self, layout: UpdateLayout) -> None:
        names = [n for n, _ in self.trained()]
        if names != [e.name for e in layout.entries]:
            raise ValueError(f"stacked adapter names {names[:2]}... differ from the layout's")


def _layer_key(key: str) -> tuple[int, str]:
    return (int(key.split("layers.")[1].split(".")[0]), key)


def _pad_to(batch: dict[str, torch.Tensor], length: int) -> dict[str, torch.Tensor]:
    extra = length - batch["input_ids"].shape[1]
    if extra == 0:
        return batch
    fill = {"input_ids": 0, "attention_mask": 0, "labels": -100}
    return {k: nn.functional.pad(v, (0, extra), value=fill[k]) for k, v in batch.items()}


def _example_nll(model: nn.Module, batch: dict[str, torch.Tensor]
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per example: (sum of token NLL, token count), each (N,)."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    targets = batch["labels"][:, 1:]
    nll = nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
                                      targets.reshape(-1), ignore_index=-100,
                                      reduction="none").view(targets.shape)
    return nll.sum(1), (targets != -100).sum(1)


def train_adapters(
    base: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[Sequence[str]],
    seeds: Sequence[int],
    cfg: FinetuneConfig,
    spec: LoraSpec,
    checkpoints: Sequence[int] = (),
    dp: BatchedDp | None = None,
    device: torch.device | None = None,
) -> dict[int, np.ndarray]:
    """Train one adapter per text list; {step: updates (K, D)} at ``checkpoints`` and the end."""
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    k = len(texts)
    stacked = StackedAdapters(base, spec, k).to(device)
    data = [encode(tokenizer, list(t), max_length=cfg.max_length) for t in texts]
    length = max(d["input_ids"].shape[1] for d in data)
    data = [{n: v.to(device) for n, v in _pad_to(d, length).items()} for d in data]
    params = [p for _, p in stacked.trained()]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    keep = set(checkpoints) | {cfg.steps}
    out: dict[int, np.ndarray] = {}
    stacked.train()
    for step in range(1, cfg.steps + 1):
        if dp is None:
            idx = [torch.randint(0, len(t), (cfg.batch_size,), generator=g)
                   for t, g in zip(texts, gens, strict=True)]
        else:
            idx = [torch.nonzero(torch.rand(len(t), generator=g) < dp.sample_rate).flatten()
                   for t, g in zip(texts, gens, strict=True)]
        b = max(1, max(len(i) for i in idx))
        weight = torch.zeros(k, b, device=device)
        rows = []
        for j, (d, i) in enumerate(zip(data, idx, strict=True)):
            weight[j, : len(i)] = 1.0
            i = torch.cat([i, torch.zeros(b - len(i), dtype=torch.long)]).to(device)
            rows.append({n: v[i] for n, v in d.items()})
        batch = {n: torch.cat([r[n] for r in rows]) for n in rows[0]}
        for layer in stacked.layers.values():
            layer.capture = dp is not None
        total, count = _example_nll(stacked.model, batch)
        total, count = total.view(k, b), count.view(k, b).clamp(min=1)
        if dp is None:  # HF loss per adapter: all tokens of its batch
            loss = (total.sum(1) / (count * weight).sum(1).clamp(min=1)).sum()
        else:  # DP: per-example mean token NLL, summed (gradients are recomputed per example)
            loss = ((total / count) * weight).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if dp is not None:
            sizes = torch.tensor([float(len(t)) for t in texts], device=device)
            _privatise(stacked, weight, dp, gens, sizes, device)
        opt.step()
        if step in keep:
            out[step] = stacked.updates()
    return out


@torch.no_grad()
def _privatise(stacked: StackedAdapters, weight: torch.Tensor, dp: BatchedDp,
               gens: list[torch.Generator], sizes: torch.Tensor, device: torch.device) -> None:
    """Replace each adapter's gradient by its clipped, noised, normalised DP-SGD gradient."""
    k, b = weight.shape
    grads: list[tuple[nn.Parameter, torch.Tensor]] = []
    for key in sorted(stacked.layers, key=_layer_key):
        layer = stacked.layers[key]
        per = layer.per_example_grads(b)
        if layer.a.requires_grad:
            grads.append((layer.a, per["a"]))
        grads.append((layer.b, per["b"]))
    sq = torch.stack([g.pow(2).flatten(2).sum(2) for _, g in grads]).sum(0)  # (K, b)
    factor = (dp.clip_norm / (sq.sqrt() + 1e-6)).clamp(max=1.0) * weight  # (K, b)
    expected = dp.sample_rate * sizes  # (K,) expected batch sizes
    for param, g in grads:
        summed = torch.einsum("kb,kb...->k...", factor, g)
        noise = torch.stack([torch.normal(0.0, dp.noise_multiplier * dp.clip_norm,
                                          size=summed.shape[1:], generator=gen)
                             for gen in gens]).to(device)
        param.grad = (summed + noise) / expected.view(k, *[1] * (summed.dim() - 1))
