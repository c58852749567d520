"""Organization and provider steps as seen by the Flower app.

The app calls exactly two functions: :func:`organization_step` on each SuperNode and
:func:`provider_step` on the ServerApp. Until ``gt_secure.organization`` (DP LoRA fine-tune) and
``gt_secure.provider`` (translate + adapter export) land, the organization step is a real small
torch training run on a seeded, randomly initialised TinyLM (``model_config("tinylm")``), whose
update vector is the clipped change of every ``q_proj``/``v_proj`` weight, and the provider step
stores the running mean TinyLM update. Both sides derive the same layout and base-model hash from
``base_seed``, so the transport and the validation are exercised end to end.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from transformers import LlamaForCausalLM

from gt_secure.app.config import Resolved
from gt_secure.models.config import VOCAB_SIZE, model_config

LAYOUT_VERSION = 1
TARGETS = ("q_proj.weight", "v_proj.weight")


@dataclass(frozen=True)
class Layout:
    """Order and shapes of the entries of a flat update vector, bound to one base model."""

    version: int
    base_model: str
    base_model_hash: str
    entries: tuple[tuple[str, tuple[int, ...]], ...]
    lora: str = ""  # canonical JSON of the LoRA spec (empty: full-weight deltas)

    @property
    def dim(self) -> int:
        """Number of float32 values in a vector of this layout."""
        return int(sum(int(np.prod(shape)) for _, shape in self.entries))

    def to_json(self) -> str:
        """Canonical JSON (sorted keys), as sent on the wire."""
        body = {
            "version": self.version,
            "base_model": self.base_model,
            "base_model_hash": self.base_model_hash,
            "entries": [[name, list(shape)] for name, shape in self.entries],
            "lora": self.lora,
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Layout:
        """Parse :meth:`to_json` output; raises ``ValueError``/``KeyError`` when malformed."""
        body = json.loads(text)
        entries = tuple((str(n), tuple(int(s) for s in shape)) for n, shape in body["entries"])
        return cls(int(body["version"]), str(body["base_model"]),
                   str(body["base_model_hash"]), entries, str(body.get("lora", "")))


def _base_model(seed: int) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    model = LlamaForCausalLM(model_config("tinylm"))
    model.eval()
    return model


@lru_cache(maxsize=4)
def base_layout(seed: int) -> Layout:
    """Layout of the TinyLM update vector for the base model initialised from ``seed``."""
    model = _base_model(seed)
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().numpy().tobytes())
    entries = tuple((name, tuple(p.shape)) for name, p in model.named_parameters()
                    if name.endswith(TARGETS))
    return Layout(LAYOUT_VERSION, "tinylm", digest.hexdigest(), entries)


def content_hash(flat: np.ndarray) -> str:
    """SHA-256 of the float32 bytes of a flat update vector."""
    return hashlib.sha256(np.ascontiguousarray(flat, dtype=np.float32).tobytes()).hexdigest()


def clip_l2(flat: np.ndarray, clip_norm: float) -> np.ndarray:
    """Return a new vector scaled to L2 norm <= ``clip_norm`` (zero vectors are kept)."""
    norm = float(np.linalg.norm(flat.astype(np.float64)))
    scale = min(1.0, clip_norm / norm) if norm > 0 else 1.0
    return (flat * np.float32(scale)).astype(np.float32)


def _org_seed(org_id: str, round_idx: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{org_id}/{round_idx}".encode()).digest()[:8], "big")


def organization_step(
    cfg: Resolved, org_id: str, round_idx: int, start: np.ndarray | None
) -> tuple[np.ndarray, Layout, dict[str, object]]:
    """Train locally from ``base + start`` and return (clipped update, layout, ledger entry).

    The update is the change of the target weights over ``cfg.local_steps`` AdamW steps on the
    organization's (seeded, synthetic) token batches, clipped to ``cfg.clip_norm``; with
    ``cfg.noise_multiplier > 0`` Gaussian noise of std ``noise_multiplier * clip_norm`` drawn
    from a CSPRNG-seeded generator is added.
    """
    torch.set_num_threads(1)
    layout = base_layout(cfg.app.base_seed)
    model = _base_model(cfg.app.base_seed)
    params = dict(model.named_parameters())
    if start is not None:
        _add_flat(params, layout, start)
    before = _flatten(params, layout)
    gen = torch.Generator().manual_seed(_org_seed(org_id, round_idx))
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.app.learning_rate)
    model.train()
    for _ in range(cfg.app.local_steps):
        tokens = torch.randint(3, VOCAB_SIZE, (4, 32), generator=gen)
        loss = model(input_ids=tokens, labels=tokens).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    update = clip_l2(_flatten(params, layout) - before, cfg.clip_norm)
    if cfg.noise_multiplier > 0:
        rng = np.random.default_rng(secrets.randbits(128))
        noise = rng.normal(0.0, cfg.noise_multiplier * cfg.clip_norm, update.shape)
        update = (update + noise).astype(np.float32)
    entry: dict[str, object] = {
        "org_id": org_id, "round": round_idx, "mechanism": "clip+gaussian",
        "clip_norm": cfg.clip_norm, "noise_multiplier": cfg.noise_multiplier,
        "base_model_hash": layout.base_model_hash,
    }
    return update, layout, entry


def _flatten(params: dict[str, torch.nn.Parameter], layout: Layout) -> np.ndarray:
    parts = [params[name].detach().reshape(-1).numpy() for name, _ in layout.entries]
    return np.concatenate(parts).astype(np.float32)


def _add_flat(params: dict[str, torch.nn.Parameter], layout: Layout, flat: np.ndarray) -> None:
    offset = 0
    with torch.no_grad():
        for name, shape in layout.entries:
            size = int(np.prod(shape))
            delta = torch.from_numpy(np.array(flat[offset:offset + size])).reshape(shape)
            params[name].add_(delta)
            offset += size


def provider_step(global_update: np.ndarray, layout: Layout, round_idx: int,
                  out_dir: Path) -> Path:
    """Store the cumulative mean TinyLM update of ``round_idx``; returns the file written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"tinylm_update_round{round_idx}.npz"
    np.savez(path, flat=global_update.astype(np.float32), layout=np.array(layout.to_json()))
    return path
