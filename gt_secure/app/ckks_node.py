"""The organization's node in a dp-ckks round: the ClientApp mod that keeps the trained vector
on the node and answers the key-agreement, encryption and decryption stages.

Node-local settings: ``roster`` (node config) — the directory of the federation's
``<org>.pub.pem`` keys (default: ``roster`` beside the organization's state directory; the node
adds its own key there and trusts the others it finds, copied out of band); the organization's
policy (:mod:`gt_secure.organization.policy`) — its ``min_organizations`` is the fewest
organizations this node encrypts for and, as key holder, decrypts (counted from signatures).

``ddp-ckks`` (distributed noise, :mod:`gt_secure.aggregation.ckks_ddp`): the released vector is
the organization's integer share; the node encrypts ``step * share`` (exact on the CKKS grid),
and the fewest organizations it encrypts for and decrypts is also at least ``min_survivors``,
the count the share was sized for.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flwr.app import ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.clientapp.typing import ClientAppCallable, Mod

from gt_secure.app import ckks_messages as wire
from gt_secure.app.config import AppConfig, Resolved, org_id_of
from gt_secure.app.messages import KEY_HASH, KEY_ROUND, META, read_ckks_request, read_reply
from gt_secure.app.roles import ddp_config, expected_layout, state_dir
from gt_secure.app.validation import norm_bound
from gt_secure.errors import InvalidFieldError, ProtocolConfigError
from gt_secure.organization.ckks_member import announce, contribute, keep_vector
from gt_secure.organization.ckks_statements import context_digest
from gt_secure.organization.key_holder import KeyHolder
from gt_secure.organization.roster import Roster, publish_key


@dataclass(frozen=True)
class Member:
    """This node's organization, its CKKS directory, signing key, roster and minimum."""

    org_id: str
    directory: Path
    key: Ed25519PrivateKey
    roster: Roster
    min_orgs: int

    def key_holder(self) -> KeyHolder:
        """This organization acting as the round's key holder."""
        return KeyHolder(self.directory, self.org_id, self.roster, self.min_orgs)


def roster_dir(org_id: str, node_config: Mapping[str, Any]) -> Path:
    """The node's ``roster``, else ``roster`` beside its state directory."""
    if "roster" in node_config:
        return Path(str(node_config["roster"])).expanduser()
    return state_dir(org_id, node_config).parent / "roster"


def local_min_orgs(org_id: str, node_config: Mapping[str, Any]) -> int:
    """The fewest organizations this node takes part in: its policy's ``min_organizations``."""
    from gt_secure.app.policy_mod import policy_path
    from gt_secure.organization.policy import load_policy

    return load_policy(policy_path(org_id, node_config)).min_organizations


def member_of(context: Context, cfg: Resolved | None = None) -> Member:
    """This node's :class:`Member`; creates its signing key and adds it to the roster. Under
    distributed noise (``cfg``) its minimum is at least the shares' ``min_survivors``."""
    from gt_secure.ledger.signing import generate_key, load_private_key, save_keypair

    node_config = context.node_config
    org_id = org_id_of(node_config)
    state = state_dir(org_id, node_config)
    key_path = state / f"{org_id}.key.pem"
    if not key_path.exists():
        save_keypair(generate_key(), state, org_id)
    key = load_private_key(key_path)
    roster = roster_dir(org_id, node_config)
    publish_key(roster, org_id, key.public_key())
    fewest = local_min_orgs(org_id, node_config)
    if cfg is not None and (ddp := ddp_config(cfg)) is not None:
        fewest = max(fewest, int(ddp.min_survivors))
    return Member(org_id, state / "ckks", key, Roster.load(roster), fewest)


def _spec(cfg: Resolved) -> tuple[Any, int]:
    from gt_secure.protocols import load_protocol

    if cfg.ckks is None:
        raise ProtocolConfigError("protocol.ckks", None, f"set in {cfg.app.protocol!r} (a CKKS "
                                  "request under a protocol without CKKS)")
    return cfg.ckks, load_protocol(cfg.app.protocol).max_organizations


def _keys(body: dict[str, object], context: Context, cfg: Resolved) -> RecordDict:
    member = member_of(context)
    round_idx = int(cast(int, body[KEY_ROUND]))
    holder = str(body.get(wire.KEY_HOLDER, ""))
    public, digest = b"", ""
    if holder == member.org_id:
        spec, _ = _spec(cfg)
        public = member.key_holder().new_keys(context.run_id, round_idx, spec.to_params())
        digest = context_digest(public)
    ann = announce(member.directory, member.org_id, context.run_id, round_idx, member.key, digest)
    return wire.keys_reply(member.org_id, ann, public)


def _encrypt(body: dict[str, object], context: Context, cfg: Resolved) -> RecordDict:
    member = member_of(context, cfg)
    spec, max_orgs = _spec(cfg)
    chunks, contribution = contribute(
        member.directory, member.org_id, context.run_id, int(cast(int, body[KEY_ROUND])),
        member.key, member.roster, wire.read_announcements(body),
        str(body.get(wire.KEY_HOLDER, "")), bytes(cast(bytes, body.get(wire.KEY_CONTEXT, b""))),
        spec.encoding(max_orgs), member.min_orgs)
    return wire.encrypt_reply(member.org_id, chunks, contribution)


def _decrypt(body: dict[str, object], context: Context, cfg: Resolved) -> RecordDict:
    member = member_of(context, cfg)
    spec, max_orgs = _spec(cfg)
    chunks, announcements, contributions = wire.read_decrypt_request(body)
    dim = expected_layout().dim
    ddp = ddp_config(cfg)
    bound = (norm_bound(cfg.clip_norm, cfg.noise_multiplier, dim) if ddp is None
             else ddp.mean_norm_bound(member.min_orgs))  # the fewest shares it decrypts
    out = member.key_holder().decrypt(context.run_id, int(cast(int, body[KEY_ROUND])), chunks,
                                      announcements, contributions, spec.encoding(max_orgs),
                                      dim, bound)
    return wire.decrypt_reply(member.org_id, out)


STAGES: dict[str, Callable[[dict[str, object], Context, Resolved], RecordDict]] = {
    "keys": _keys, "encrypt": _encrypt, "decrypt": _decrypt}


def make_ckks_mod(overrides: Mapping[str, Any] | None = None) -> Mod:
    """Mod for CKKS requests: keeps the trained vector (``train``), answers the other stages
    without training; other messages pass through."""

    def ckks_mod(msg: Message, ctxt: Context, call_next: ClientAppCallable) -> Message:
        stage = None
        if msg.metadata.message_type == MessageType.TRAIN:
            stage = read_ckks_request(msg.content)
        if stage is None:
            return call_next(msg, ctxt)
        cfg = AppConfig.from_run_config(ctxt.run_config, overrides).resolve()
        if stage == "train":
            reply = call_next(msg, ctxt)
            if reply.has_error():
                return reply
            payload = read_reply(reply.content)
            round_idx = int(cast(int, wire.stage_of(msg.content)[KEY_ROUND]))
            flat = np.asarray(payload.flat, dtype=np.float32)
            if (ddp := ddp_config(cfg)) is not None:  # integer share -> the CKKS grid, exact
                flat = flat * np.float32(ddp.scale)
            keep_vector(member_of(ctxt).directory, ctxt.run_id, round_idx, flat)
            meta = {k: v for k, v in payload.meta().items() if k != KEY_HASH}
            reply.content = RecordDict({META: ConfigRecord(dict(meta))})
            return reply
        handler = STAGES.get(stage)
        if handler is None:
            raise InvalidFieldError("gt.ckks.stage", stage, f"one of {['train', *STAGES]}")
        return Message(handler(wire.stage_of(msg.content), ctxt, cfg), reply_to=msg)

    return ckks_mod
