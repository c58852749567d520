"""A ClientApp for tests: the real organization step, then a scripted fault per (org, round).

Faults: ``nan`` (a NaN entry), ``norm`` (10x the norm bound), ``base-hash`` (a layout naming
another base model) and ``crash`` (the handler raises; under SecAgg+ that is after the key
exchange, since the handler runs in the collect-masked-vectors stage) bypass the organization's
guard, as a faulty or malicious organization would; ``guarded-norm`` goes through the real
guard, which must refuse to send it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
from flwr.app import Context, Message, MessageType
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import ClientAppCallable

from gt_secure.app.ckks_node import make_ckks_mod
from gt_secure.app.client_app import local_update, receive
from gt_secure.app.config import AppConfig, org_id_of
from gt_secure.app.messages import UpdatePayload, is_secagg, read_request, write_reply
from gt_secure.app.mods import expected_for, make_update_guard, secagg_route_mod
from gt_secure.app.policy_mod import make_policy_mod

Faults = Mapping[tuple[str, int], str]
GUARDED = {"guarded-norm"}


def _fault(msg: Message, context: Context, faults: Faults) -> str | None:
    round_idx, _ = read_request(msg.content)
    return faults.get((org_id_of(context.node_config), round_idx))


def corrupt(payload: UpdatePayload, fault: str, bound: float) -> UpdatePayload:
    """Apply ``fault`` to an honest payload (the content hash is recomputed by nobody)."""
    flat = payload.flat.copy()
    if fault == "nan":
        flat[0] = np.nan
        return dataclasses.replace(payload, flat=flat, content_hash="")
    if fault in ("norm", "guarded-norm"):
        flat = (flat / np.linalg.norm(flat) * 10 * bound).astype(np.float32)
        return dataclasses.replace(payload, flat=flat, content_hash="")
    if fault == "base-hash":
        layout = json.loads(payload.layout_json)
        layout["base_model_hash"] = "0" * 64
        return dataclasses.replace(payload, layout_json=json.dumps(layout, sort_keys=True))
    raise ValueError(f"fault must be a known fault, got fault={fault!r}.")


def make_faulty_client_app(overrides: Mapping[str, Any], faults: Faults) -> ClientApp:
    """ClientApp with the production mods, whose guard is skipped for unguarded faults."""
    guard = make_update_guard(overrides)

    def selective_guard(msg: Message, ctxt: Context, call_next: ClientAppCallable) -> Message:
        if msg.metadata.message_type == MessageType.TRAIN:
            fault = _fault(msg, ctxt, faults)
            if fault is not None and fault not in GUARDED:
                return call_next(msg, ctxt)
        return guard(msg, ctxt, call_next)

    app = ClientApp(mods=[make_policy_mod(overrides), secagg_route_mod, make_ckks_mod(overrides),
                          selective_guard])

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        cfg = AppConfig.from_run_config(context.run_config, overrides).resolve()
        fault = _fault(msg, context, faults)
        if fault == "crash":
            raise RuntimeError("organization process died after the key exchange")
        payload = local_update(msg, context, cfg)
        if fault is not None:
            payload = corrupt(payload, fault, expected_for(cfg).norm_bound)
        return Message(write_reply(payload, secagg=is_secagg(msg.content)), reply_to=msg)

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        return Message(receive(msg, context), reply_to=msg)

    return app
