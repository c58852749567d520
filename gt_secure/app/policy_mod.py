"""The organization enforces its own policy on every request, before any training.

:func:`make_policy_mod` is the outermost ClientApp mod. For every TRAIN message it builds the
:class:`~gt_secure.organization.policy.ReleaseRequest` its node would carry out — the protocol
the run names, the aggregation the message actually carries (SecAgg+ configs, a CKKS context, or
neither: plain), the mechanisms the release would run (DP-SGD planned for this round's data size
and steps, vector noise) and the fewest organizations the server's sum may hold — and refuses it
with a :class:`~gt_secure.errors.PolicyRefusalError` when it falls short of the organization's
policy. SecAgg+ stages are checked too: the threshold at setup and the live organizations at
unmasking must reach ``policy.min_organizations``. After the handler, a reply that would carry
an update in the clear is refused unless the accepted protocol aggregates in plain.
:func:`enforce_policy` is also called by the train handler itself (second line of defence).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from flwr.app import Context, Message, MessageType, RecordDict
from flwr.clientapp.typing import ClientAppCallable, Mod
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key, Stage

from gt_secure.app.config import AppConfig, Resolved, org_id_of
from gt_secure.app.messages import is_secagg, read_ckks_request
from gt_secure.app.roles import (
    ddp_config,
    mechanism_configs,
    num_texts,
    release_basis,
    state_dir,
)
from gt_secure.errors import PolicyRefusalError
from gt_secure.organization.policy import (
    POLICY_FILE,
    OrganizationPolicy,
    ReleaseRequest,
    UnitRequest,
    load_policy,
)


def policy_path(org_id: str, node_config: Mapping[str, Any]) -> Path:
    """The node config's ``policy-file``, else ``policy.toml`` in the organization's state dir."""
    if "policy-file" in node_config:
        return Path(str(node_config["policy-file"])).expanduser()
    return state_dir(org_id, node_config) / POLICY_FILE


def carried_aggregation(content: RecordDict) -> str:
    """What a request's message carries: ``secagg+``, ``ckks`` (a public context) or ``plain``."""
    if is_secagg(content):
        return "secagg+"
    return "ckks" if read_ckks_request(content) is not None else "plain"


def release_request(cfg: Resolved, node_config: Mapping[str, Any], aggregation: str,
                    min_organizations: int) -> ReleaseRequest:
    """The release this organization's node would run for ``cfg`` (nothing is trained)."""
    from gt_secure.ledger.accountant import compute_epsilon
    from gt_secure.organization.dp_sgd import plan_dp_sgd

    dp_sgd, vector = mechanism_configs(cfg, cfg.app.local_steps)
    example = organization = None
    if dp_sgd is not None:
        mech = plan_dp_sgd(dp_sgd, num_texts(cfg, node_config))
        eps = compute_epsilon([mech], dp_sgd.delta, dp_sgd.accountant)
        example = UnitRequest(mech.noise_multiplier, eps, dp_sgd.delta)
    if vector is not None:
        vmech = vector.mechanism()
        eps = compute_epsilon([vmech], vector.delta, vector.accountant)
        organization = UnitRequest(vmech.noise_multiplier, eps, vector.delta)
    elif (distributed := ddp_config(cfg)) is not None:  # the sum's noise multiplier
        from gt_secure.aggregation.ddp import ORG_DELTA

        eps = compute_epsilon([distributed.mechanism()], ORG_DELTA, "rdp")
        organization = UnitRequest(distributed.noise_multiplier, eps, ORG_DELTA)
    basis = release_basis(cfg)
    return ReleaseRequest(cfg.app.protocol, aggregation, min_organizations, cfg.clip_norm,
                          example, organization,
                          basis_sha256=None if basis is None else basis.sha256())


def enforce_policy(cfg: Resolved, content: RecordDict, context: Context,
                   min_organizations: int | None = None) -> OrganizationPolicy:
    """Load the organization's policy and refuse ``content``'s request if it falls short of it;
    the policy when accepted. The fewest organizations asked for is the run's ``min-orgs`` as
    requested (0: the protocol's), or ``min_organizations`` when lower (SecAgg+ threshold, live
    organizations at unmasking)."""
    org_id = org_id_of(context.node_config)
    policy = load_policy(policy_path(org_id, context.node_config))
    count = cfg.app.min_orgs or cfg.min_orgs
    if min_organizations is not None:
        count = min(count, min_organizations)
    request = release_request(cfg, context.node_config, carried_aggregation(content), count)
    policy.enforce(request, org_id)
    return policy


def _secagg_count(content: RecordDict) -> int | None:
    """SecAgg+ threshold (setup) or live organizations (unmask) of a stage message."""
    configs = content.config_records[RECORD_KEY_CONFIGS]
    stage = configs.get(Key.STAGE)
    if stage == Stage.SETUP:
        return int(cast(int, configs[Key.THRESHOLD]))
    if stage == Stage.UNMASK:
        return len(cast(list[int], configs[Key.ACTIVE_NODE_ID_LIST]))
    return None


def check_not_in_clear(reply: RecordDict, aggregation: str) -> None:
    """Refuse a reply that carries update values in the clear when ``aggregation`` is not plain."""
    if aggregation == "plain":
        return
    for name, record in reply.array_records.items():
        if len(record) > 0:
            raise PolicyRefusalError(f"reply.{name}", f"<{len(record)} array(s) in the clear>",
                                     f"empty: the accepted protocol aggregates with {aggregation}")


def make_policy_mod(overrides: Mapping[str, Any] | None = None) -> Mod:
    """The outermost mod: enforce the organization's policy on every TRAIN message."""

    def policy_mod(msg: Message, ctxt: Context, call_next: ClientAppCallable) -> Message:
        if msg.metadata.message_type != MessageType.TRAIN:
            return call_next(msg, ctxt)
        cfg = AppConfig.from_run_config(ctxt.run_config, overrides).resolve()
        count = _secagg_count(msg.content) if is_secagg(msg.content) else None
        enforce_policy(cfg, msg.content, ctxt, count)
        reply = call_next(msg, ctxt)
        if not reply.has_error():
            check_not_in_clear(reply.content, cfg.aggregation)
        return reply

    return policy_mod
