"""ClientApp mods: SecAgg+ routing and the organization's own update guard.

Order in the ClientApp: ``[secagg_route_mod, ckks_mod, guard]`` — the guard sits inside both, so
it sees the plaintext update before ``secaggplus_mod`` masks it or the CKKS mod
(:func:`gt_secure.app.ckks_node.make_ckks_mod`) keeps it for encryption, and refuses to let an
invalid one leave the organization (the ClientApp raises; the provider then leaves the
organization out of the round).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from flwr.app import Context, Message, MessageType
from flwr.client.mod import secaggplus_mod
from flwr.clientapp.typing import ClientAppCallable, Mod

from gt_secure.aggregation.secagg_prg import with_mask_prg
from gt_secure.app.config import AppConfig, Resolved
from gt_secure.app.messages import is_secagg, read_reply
from gt_secure.app.roles import ddp_config, expected_layout
from gt_secure.app.validation import Expected, norm_bound, validate_update

_secaggplus_prg_mod = with_mask_prg(secaggplus_mod)


def secagg_route_mod(msg: Message, ctxt: Context, call_next: ClientAppCallable) -> Message:
    """Send SecAgg+ messages through Flower's ``secaggplus_mod`` with ChaCha20 masks
    (:mod:`gt_secure.aggregation.secagg_prg`); plain ones straight on."""
    if msg.metadata.message_type == MessageType.TRAIN and is_secagg(msg.content):
        return _secaggplus_prg_mod(msg, ctxt, call_next)
    return call_next(msg, ctxt)


def expected_for(cfg: Resolved) -> Expected:
    """Layout and norm bound every update of this run must satisfy."""
    layout = expected_layout(cfg)  # the k coordinates when released in a public basis
    if (ddp := ddp_config(cfg)) is not None:  # integer shares in [-T/2, T/2)
        return Expected(layout, math.sqrt(layout.dim) * ddp.modulus / 2)
    return Expected(layout, norm_bound(cfg.clip_norm, cfg.noise_multiplier, layout.dim))


def make_update_guard(overrides: Mapping[str, Any] | None = None) -> Mod:
    """Mod that validates the handler's update before it is sent (or masked)."""

    def update_guard_mod(msg: Message, ctxt: Context, call_next: ClientAppCallable) -> Message:
        reply = call_next(msg, ctxt)
        if msg.metadata.message_type != MessageType.TRAIN or reply.has_error():
            return reply
        cfg = AppConfig.from_run_config(ctxt.run_config, overrides).resolve()
        validate_update(read_reply(reply.content), expected_for(cfg))
        return reply

    return update_guard_mod
