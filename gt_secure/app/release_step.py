"""The real organization and provider steps (``local-step = "dp-release"``).

Organization: :func:`gt_secure.organization.release.prepare_release` — DP-SGD LoRA fine-tune of
the shipped TinyLM on the organization's own texts, clip + Gaussian noise on the update vector,
one signed ledger entry per privacy unit in the organization's own ledger. Provider:
:func:`gt_secure.provider.service.finish_round` — translate the mean TinyLM update into an LLM
update and export the PEFT adapter.

Organization-local state (``node_config``, all optional): ``state-dir`` (default
``$GT_SECURE_STATE_DIR/<org-id>``, else ``~/.gt-secure/<org-id>``) holds ``ledger.jsonl``, the
Ed25519 ledger key ``<org>.key.pem`` (created on first use; ``<org>.pub.pem`` goes to the
auditor) and the data-fingerprint salt; ``budget-epsilon`` (default 100.0) is the
organization's total epsilon per privacy unit; ``num-texts`` (default 64) is how many of its
training texts a round uses.
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from gt_secure.app.config import Resolved
from gt_secure.app.task import Layout
from gt_secure.errors import ProtocolConfigError
from gt_secure.update import UpdateLayout, UpdateVector

log = logging.getLogger("gt_secure.app")


@lru_cache(maxsize=1)
def lora_layout() -> UpdateLayout:
    """Layout of the TinyLM LoRA update (shipped base model, default LoRA spec)."""
    from gt_secure.provider.adapter import fresh_lora

    return fresh_lora("tinylm")[2]


def wire_layout(layout: UpdateLayout) -> Layout:
    """The app's wire/validation view of an :class:`UpdateLayout`."""
    entries = tuple((e.name, tuple(e.shape)) for e in layout.entries)
    lora = json.dumps(layout.lora.model_dump(mode="json"), sort_keys=True)
    return Layout(layout.version, layout.base_model, layout.base_model_hash, entries, lora)


def release_config(cfg: Resolved, budget: float, steps: int) -> Any:
    """ReleaseConfig from the protocol spec: DP-SGD (example level) + vector DP (organization)."""
    from gt_secure.organization.dp_sgd import DpSgdConfig
    from gt_secure.organization.release import PrivacyBudget, ReleaseConfig
    from gt_secure.organization.vector_dp import VectorDpConfig
    from gt_secure.protocols import load_protocol

    if cfg.noise_multiplier <= 0:
        raise ProtocolConfigError("noise_multiplier", cfg.noise_multiplier,
                                  "> 0 for local-step 'dp-release' (the update must be clipped)")
    spec = load_protocol(cfg.app.protocol)
    example = spec.dp.example if spec.dp is not None else None
    dp_sgd = None
    if example is not None:
        dp_sgd = DpSgdConfig(target_epsilon=example.epsilon, delta=example.delta,
                             max_grad_norm=example.clip, accountant=example.accountant,
                             steps=steps)
    vector = VectorDpConfig(clip_norm=cfg.clip_norm, noise_multiplier=cfg.noise_multiplier)
    example_budget = budget if dp_sgd is not None else math.inf
    return ReleaseConfig(budget=PrivacyBudget(example=example_budget, organization=budget),
                         dp_sgd=dp_sgd, vector_dp=vector)


def _state(org_id: str, node_config: Mapping[str, Any]) -> tuple[Any, Any, bytes]:
    from gt_secure.ledger.signing import generate_key, load_private_key, save_keypair
    from gt_secure.ledger.store import Ledger

    root = Path(os.environ.get("GT_SECURE_STATE_DIR", Path.home() / ".gt-secure"))
    state = Path(str(node_config.get("state-dir", root / org_id))).expanduser()
    key_path = state / f"{org_id}.key.pem"
    if not key_path.exists():
        save_keypair(generate_key(), state, org_id)
    salt_path = state / "salt"
    if not salt_path.exists():
        salt_path.write_bytes(secrets.token_bytes(32))
        salt_path.chmod(0o600)
    return Ledger(state / "ledger.jsonl"), load_private_key(key_path), salt_path.read_bytes()


def release_step(cfg: Resolved, node_config: Mapping[str, Any], org_id: str, run_id: int,
                 round_idx: int, start: np.ndarray) -> tuple[np.ndarray, Layout, str]:
    """One organization release: (update flat, wire layout, ledger entries as JSON)."""
    from gt_secure.data.organizations import org_texts
    from gt_secure.organization.release import prepare_release

    layout = lora_layout()
    ledger, key, salt = _state(org_id, node_config)
    texts = org_texts(org_id, "train", int(node_config.get("num-texts", 64)))
    budget = float(node_config.get("budget-epsilon", 100.0))
    start_vec = UpdateVector(layout, start.astype(np.float32)) if np.any(start) else None
    release = prepare_release(org_id, texts, release_config(cfg, budget, cfg.app.local_steps),
                              ledger, key, salt=salt, release_id=f"{org_id}-{run_id}-{round_idx}",
                              round=round_idx, start=start_vec)
    entries = json.dumps([json.loads(e.model_dump_json()) for e in release.entries])
    return release.update.flat.astype(np.float32), wire_layout(layout), entries


def finish_step(global_flat: np.ndarray, round_idx: int, out_dir: Path) -> dict[str, Any]:
    """Save the cumulative TinyLM update; translate it and export the LLM adapter.

    Without a trained translator (``gt_secure/provider/shipped_translator``) the round keeps the
    TinyLM update and says so in its record instead of failing the run.
    """
    from gt_secure.provider.service import SHIPPED_TRANSLATOR, finish_round, load_translator

    round_dir = out_dir / f"round{round_idx}"
    round_dir.mkdir(parents=True, exist_ok=True)
    update = UpdateVector(lora_layout(), global_flat.astype(np.float32))
    update.save(round_dir / "tinylm_update.safetensors")
    record: dict[str, Any] = {"tinylm_update": str(round_dir / "tinylm_update.safetensors"),
                              "tinylm_update_hash": update.content_hash()}
    if not (SHIPPED_TRANSLATOR / "manifest.json").exists():
        log.warning("no translator at %s: round %d keeps the TinyLM update only",
                    SHIPPED_TRANSLATOR, round_idx)
        return record | {"translator": None}
    result = finish_round(update, load_translator(), round_dir, evaluate=False)
    return record | {"translator": str(SHIPPED_TRANSLATOR), "adapter_dir": result.adapter_dir,
                     "llm_update_hash": result.llm_update_hash,
                     "llm_update_norm": result.llm_update_norm}
