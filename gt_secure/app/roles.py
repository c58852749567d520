"""The two calls the app makes into the roles: one organization step, one provider step.

Organization: :func:`gt_secure.organization.release.prepare_release` — LoRA fine-tune of the
shipped TinyLM on the organization's own texts (DP-SGD when the protocol has example-level DP),
clip (+ Gaussian noise when the protocol has organization-level DP) on the update vector (or,
with a public basis, on its ``k`` coordinates: :func:`release_basis`), one
signed ledger entry per protected privacy unit in the organization's own ledger, and a copy of
the released vector kept by the organization. Provider:
:func:`gt_secure.provider.service.finish_round` — translate the mean TinyLM update into an LLM
update and export the PEFT adapter.

Organization-local state (``node_config``, all optional): ``state-dir`` (default
``$GT_SECURE_STATE_DIR/<org-id>``, else ``~/.gt-secure/<org-id>``) holds ``ledger.jsonl``, the
Ed25519 ledger key ``<org>.key.pem`` (created on first use; ``<org>.pub.pem`` goes to the
auditor), the data-fingerprint salt and ``releases/<release-id>.safetensors`` (every vector it
sent, matching the ledger's ``update_vector_hash``) and ``adapters/`` (the LLM adapters the
provider delivered) and ``policy.toml``, the organization's own policy
(:mod:`gt_secure.organization.policy`: accepted protocols, limits and budget per privacy unit;
``policy-file`` names another file; no policy, no release); ``num-texts`` (default 512, the
shipped train split) is how many of its training texts a round uses; ``eval-texts`` (default
32) how many validation texts score a delivered adapter; ``canaries`` (default
``<state-dir>/canaries.txt`` if present) an auditor's public canary file whose texts join the
training texts of every round (:mod:`gt_secure.organization.canaries`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from gt_secure.app.config import Resolved
from gt_secure.app.layout import Layout, lora_layout
from gt_secure.update import UpdateVector

log = logging.getLogger("gt_secure.app")


def expected_layout(cfg: Resolved | None = None) -> Layout:
    """Layout every organization's update must have on the wire: the TinyLM LoRA update, or
    its ``k`` coordinates when ``cfg``'s protocol releases in a public basis."""
    basis = None if cfg is None else release_basis(cfg)
    return Layout.of(lora_layout() if basis is None else basis.coords_layout(lora_layout()))


def release_basis(cfg: Resolved) -> Any:
    """The ``PublicBasis`` the protocol's organizations release their ``k`` coordinates in
    (``[dp.organization.distributed] basis``), else None (the full update)."""
    if not cfg.distributed:
        return None
    from gt_secure.protocols import load_protocol
    from gt_secure.provider.public_basis import spec_basis

    return spec_basis(load_protocol(cfg.app.protocol))


def mechanism_configs(cfg: Resolved, steps: int) -> tuple[Any, Any]:
    """``(DpSgdConfig | None, VectorDpConfig | None)`` this run asks for: DP-SGD (example level)
    when the protocol spec has it; clip + vector noise (organization level) when
    ``cfg.noise_multiplier > 0``."""
    from gt_secure.organization.dp_sgd import DpSgdConfig
    from gt_secure.organization.vector_dp import VectorDpConfig
    from gt_secure.protocols import load_protocol

    spec = load_protocol(cfg.app.protocol)
    example = spec.dp.example if spec.dp is not None else None
    dp_sgd = None
    if example is not None:
        dp_sgd = DpSgdConfig(target_epsilon=example.epsilon, delta=example.delta,
                             max_grad_norm=example.clip, accountant=example.accountant,
                             steps=steps)
    vector = None
    if cfg.noise_multiplier > 0 and not cfg.distributed:
        vector = VectorDpConfig(clip_norm=cfg.clip_norm, noise_multiplier=cfg.noise_multiplier)
    return dp_sgd, vector


def ddp_config(cfg: Resolved) -> Any:
    """``DdpParams`` of a protocol with distributed organization-level noise (else None): the
    grid every organization and the server derive from the spec alone."""
    if not cfg.distributed:
        return None
    from gt_secure.aggregation.ddp_round import params_for
    from gt_secure.protocols import load_protocol

    spec = load_protocol(cfg.app.protocol)
    if cfg.aggregation == "ckks":  # shares on the CKKS grid; the run's clip and noise
        from gt_secure.aggregation.ckks_ddp import ckks_ddp_params

        return ckks_ddp_params(spec, expected_layout().dim, cfg.clip_norm, cfg.noise_multiplier)
    basis = release_basis(cfg)
    if basis is None:
        return params_for(spec, expected_layout().dim)
    return params_for(spec, basis.k, basis.release_record())  # the k coordinates


def release_config(cfg: Resolved, budget: tuple[float, float], steps: int) -> Any:
    """ReleaseConfig of :func:`mechanism_configs` (a plain fine-tune without DP-SGD; clip only
    without vector noise) with the organization's ``(example, organization)`` budget; an
    unprotected unit gets budget ``inf`` (and no ledger entry)."""
    from gt_secure.organization.release import PrivacyBudget, ReleaseConfig
    from gt_secure.update.finetune import FinetuneConfig

    dp_sgd, vector = mechanism_configs(cfg, steps)
    distributed = ddp_config(cfg)
    org_dp = vector is not None or distributed is not None
    return ReleaseConfig(
        budget=PrivacyBudget(example=budget[0] if dp_sgd else math.inf,
                             organization=budget[1] if org_dp else math.inf),
        dp_sgd=dp_sgd, vector_dp=vector, distributed=distributed,
        clip_norm=None if org_dp else cfg.clip_norm, plain=FinetuneConfig(steps=steps))


def num_texts(cfg: Resolved, node_config: Mapping[str, Any]) -> int:
    """Training texts per round: the run's ``num-texts``, else the node's, else 512."""
    return cfg.app.num_texts or int(node_config.get("num-texts", 512))


def state_dir(org_id: str, node_config: Mapping[str, Any]) -> Path:
    """The organization's local state directory (see the module docstring)."""
    root = Path(os.environ.get("GT_SECURE_STATE_DIR", Path.home() / ".gt-secure"))
    return Path(str(node_config.get("state-dir", root / org_id))).expanduser()


def _state(org_id: str, node_config: Mapping[str, Any]) -> tuple[Path, Any, Any, bytes]:
    from gt_secure.ledger.signing import generate_key, load_private_key, save_keypair
    from gt_secure.ledger.store import Ledger

    state = state_dir(org_id, node_config)
    key_path = state / f"{org_id}.key.pem"
    if not key_path.exists():
        save_keypair(generate_key(), state, org_id)
    salt_path = state / "salt"
    if not salt_path.exists():
        salt_path.write_bytes(secrets.token_bytes(32))
        salt_path.chmod(0o600)
    return state, Ledger(state / "ledger.jsonl"), load_private_key(key_path), salt_path.read_bytes()


def release_id_of(org_id: str, run_id: int, round_idx: int) -> str:
    """Release id of an organization's update in one round of one run."""
    return f"{org_id}-{run_id}-{round_idx}"


def organization_step(cfg: Resolved, node_config: Mapping[str, Any], org_id: str, run_id: int,
                      round_idx: int, start: np.ndarray,
                      budget: tuple[float, float]) -> tuple[np.ndarray, Layout, str]:
    """One organization release: (update flat, wire layout, ledger entries as JSON).

    ``budget`` is the organization's ``(example, organization)`` epsilon budget from its policy
    (:func:`gt_secure.app.policy_mod.enforce_policy` has accepted the request). Under SecAgg+
    and CKKS the entries that travel with the update carry a salted commitment, not the
    vector's SHA-256 (:mod:`gt_secure.organization.commitment`); the organization keeps the
    SHA-256 and the opening key in ``releases/<release-id>.json``."""
    from gt_secure.data.organizations import org_texts
    from gt_secure.organization.canaries import canary_file, read_public_canaries, with_canaries
    from gt_secure.organization.commitment import load_or_create_secret, release_key
    from gt_secure.organization.release import prepare_release

    layout = lora_layout()
    state, ledger, key, salt = _state(org_id, node_config)
    ledger.ensure(owner=org_id, budget={"example": budget[0], "organization": budget[1]},
                  signing_key=key)  # the header's budget is written once, on first use
    texts = org_texts(org_id, "train", num_texts(cfg, node_config))
    canaries = canary_file(node_config, state)  # an auditor's public canaries join the data
    if canaries is not None:
        texts = with_canaries(texts, read_public_canaries(canaries), seed=round_idx)
    start_vec = UpdateVector(layout, start.astype(np.float32)) if np.any(start) else None
    config = release_config(cfg, budget, cfg.app.local_steps)
    release_id = release_id_of(org_id, run_id, round_idx)
    commit_key = None
    if cfg.aggregation in ("secagg", "ckks"):  # masked or encrypted: no per-org fingerprint
        commit_key = release_key(load_or_create_secret(state), release_id)
    release = prepare_release(org_id, texts, config, ledger, key, salt=salt,
                              release_id=release_id, round=round_idx, start=start_vec,
                              commit_key=commit_key, protocol=cfg.app.protocol,
                              basis=release_basis(cfg))
    update = release.update
    (state / "releases").mkdir(exist_ok=True)
    update.save(state / "releases" / f"{release_id}.safetensors")
    local = {"update_vector_hash": update.content_hash(),
             "commitment_key": None if commit_key is None else commit_key.hex()}
    (state / "releases" / f"{release_id}.json").write_text(json.dumps(local, indent=2))
    entries = json.dumps([json.loads(e.model_dump_json()) for e in release.entries])
    return update.flat.astype(np.float32), Layout.of(update.layout), entries


@cache
def _translator() -> Any:
    """The shipped translator, loaded once per ServerApp process (not once per round)."""
    from gt_secure.provider.service import load_translator

    return load_translator()


def provider_step(global_flat: np.ndarray, round_idx: int, out_dir: Path) -> dict[str, Any]:
    """Save the cumulative TinyLM update; translate it and export the LLM adapter.

    Without a trained translator (``gt_secure/provider/shipped_translator``) the round keeps the
    TinyLM update and says so in its record instead of failing the run.
    """
    from gt_secure.provider.service import SHIPPED_TRANSLATOR, finish_round

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
    result = finish_round(update, _translator(), round_dir, evaluate=False)
    return record | {"translator": str(SHIPPED_TRANSLATOR), "adapter_dir": result.adapter_dir,
                     "llm_update_hash": result.llm_update_hash,
                     "llm_update_norm": result.llm_update_norm}
