"""Inputs of bench/org_dp.py: the organizations' TinyLM updates and validation texts, cached.

Organization ``j`` belongs to public family ``public_families()[j % 3]`` and fine-tunes the
TinyLM (full LoRA, the translator's layout; the recipe of
:data:`gt_secure.provider.public_basis.PUBLIC_CONFIG` for ``steps`` steps; plain: the
organization-level mechanism alone is measured) on ``texts`` records of its family's organization
style (:data:`gt_secure.data.families.ORG_STYLES`) with its own faker seed
``5000 + j``: its own data, in a format and locale no public record uses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gt_secure.data.families import ORG_STYLES, org_records, style_records
from gt_secure.provider.public_basis import PUBLIC_CONFIG, public_families
from gt_secure.provider.shadow import train_batched

CACHE = Path("runs/org_dp")


def org_names() -> list[str]:
    """The organization style of each public family (hospital, bank, law)."""
    by_family = {s.family: name for name, s in ORG_STYLES.items()}
    return [by_family[f] for f in public_families()]


def org_updates(n: int, texts: int, steps: int) -> np.ndarray:
    """(n, d) float64 updates of organizations 0..n-1 after ``steps`` steps (cached)."""
    for m in (100, n):  # organization j's update does not depend on how many are trained
        path = CACHE / f"orgs_{m}x{texts}x{steps}.npy"
        if m >= n and path.exists():
            return np.load(path)[:n]
    names = org_names()
    records = [style_records(ORG_STYLES[names[j % len(names)]], texts, 5000 + j)
               for j in range(n)]
    cfg = PUBLIC_CONFIG.model_copy(update={"steps": steps, "checkpoints": (steps,)})
    raw = train_batched("tinylm", records, list(range(n)), cfg)
    out = raw[:, -1].astype(np.float64)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, out)
    return out


def eval_texts(n_eval: int) -> list[list[str]]:
    """Each public family's organization validation texts."""
    return [org_records(name, "validation", n_eval) for name in org_names()]


if __name__ == "__main__":
    import torch

    from gt_secure.provider.public_basis import public_updates

    torch.set_num_threads(2)
    print([a.shape for a in public_updates(12, 128, CACHE)], flush=True)
    print(org_updates(100, 64, 8).shape, flush=True)
