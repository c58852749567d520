"""The two calls the app makes into the roles: one organization step, one provider step.

``local-step`` (run config) picks the implementation: ``"torch-step"`` (:mod:`gt_secure.app.task`:
a few AdamW steps of a seeded random-init TinyLM, deterministic, used to check the transport
against an exact reference) or ``"dp-release"`` (:mod:`gt_secure.app.release_step`: the DP LoRA
release of :mod:`gt_secure.organization` and the translation of :mod:`gt_secure.provider`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from gt_secure.app import task
from gt_secure.app.config import Resolved
from gt_secure.app.task import Layout


def expected_layout(cfg: Resolved) -> Layout:
    """Layout every organization's update must have in this run."""
    if cfg.app.local_step == "dp-release":
        from gt_secure.app.release_step import lora_layout, wire_layout

        return wire_layout(lora_layout())
    return task.base_layout(cfg.app.base_seed)


def organization_step(cfg: Resolved, node_config: Mapping[str, Any], org_id: str, run_id: int,
                      round_idx: int, start: np.ndarray) -> tuple[np.ndarray, Layout, str]:
    """This organization's update for ``round_idx`` from ``start``: (flat, layout, ledger JSON)."""
    if cfg.app.local_step == "dp-release":
        from gt_secure.app.release_step import release_step

        return release_step(cfg, node_config, org_id, run_id, round_idx, start)
    flat, layout, entry = task.organization_step(cfg, org_id, round_idx, start)
    return flat, layout, json.dumps(entry, sort_keys=True)


def provider_step(cfg: Resolved, global_flat: np.ndarray, layout: Layout, round_idx: int,
                  out_dir: Path) -> dict[str, Any]:
    """The provider's work on the cumulative mean update after ``round_idx``."""
    if cfg.app.local_step == "dp-release":
        from gt_secure.app.release_step import finish_step

        return finish_step(global_flat, round_idx, out_dir)
    return {"artifact": str(task.provider_step(global_flat, layout, round_idx, out_dir))}
