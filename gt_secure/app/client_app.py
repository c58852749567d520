"""Organization node: a Flower ClientApp that trains locally and returns its update vector,
then receives and scores the provider's LLM adapter.

Run by ``flower-supernode`` (deployment) or the simulation engine. The organization is named by
the SuperNode's ``--node-config 'org-id="..."'`` (simulation: ``org-<partition-id>``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flwr.app import Context, Message, RecordDict
from flwr.clientapp import ClientApp

from gt_secure.aggregation.ddp_round import survivor_guard
from gt_secure.app.ckks_node import make_ckks_mod
from gt_secure.app.config import AppConfig, Resolved, org_id_of
from gt_secure.app.delivery import EVAL_TEXTS, evaluation_reply, receive_adapter
from gt_secure.app.layout import content_hash
from gt_secure.app.messages import UpdatePayload, read_request, write_reply
from gt_secure.app.mods import make_update_guard, secagg_route_mod
from gt_secure.app.policy_mod import enforce_policy, make_policy_mod
from gt_secure.app.receipts import ACTION as LEDGER_ACTION
from gt_secure.app.receipts import answer as answer_ledger
from gt_secure.app.roles import ddp_config, organization_step, state_dir


def local_update(msg: Message, context: Context, cfg: Resolved) -> UpdatePayload:
    """Run this organization's step for the round in ``msg``; return the outgoing payload.

    The organization's policy is enforced first: a refused request trains nothing."""
    org_id = org_id_of(context.node_config)
    policy = enforce_policy(cfg, msg.content, context)
    round_idx, start = read_request(msg.content)
    flat, layout, ledger = organization_step(cfg, context.node_config, org_id, context.run_id,
                                             round_idx, start, policy.budgets())
    return UpdatePayload(org_id, flat, layout.to_json(), ledger, content_hash(flat))


def receive(msg: Message, context: Context) -> RecordDict:
    """Verify, keep and score the LLM adapter the provider delivered; the reply content."""
    from gt_secure.data.organizations import org_texts

    org_id = org_id_of(context.node_config)
    count = int(context.node_config.get("eval-texts", EVAL_TEXTS))
    _, metrics = receive_adapter(msg.content, state_dir(org_id, context.node_config),
                                 context.run_id, org_texts(org_id, "validation", count))
    return evaluation_reply(org_id, metrics)


def make_client_app(overrides: Mapping[str, Any] | None = None) -> ClientApp:
    """ClientApp whose settings are ``run_config`` updated with ``overrides``; the organization's
    policy mod is outermost (:mod:`gt_secure.app.policy_mod`)."""
    def min_survivors(ctxt: Context) -> int:  # distributed DP: fewest vectors in the sum
        cfg = AppConfig.from_run_config(ctxt.run_config, overrides).resolve()
        ddp = ddp_config(cfg)
        return 0 if ddp is None else int(ddp.min_survivors)

    app = ClientApp(mods=[make_policy_mod(overrides), survivor_guard(min_survivors),
                          secagg_route_mod, make_ckks_mod(overrides),
                          make_update_guard(overrides)])

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        cfg = AppConfig.from_run_config(context.run_config, overrides).resolve()
        payload = local_update(msg, context, cfg)
        secagg = cfg.aggregation == "secagg"  # the accepted protocol decides, not the message
        return Message(write_reply(payload, secagg=secagg), reply_to=msg)

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        return Message(receive(msg, context), reply_to=msg)

    @app.query(LEDGER_ACTION)
    def ledger_receipt(msg: Message, context: Context) -> Message:
        org_id = org_id_of(context.node_config)
        state = state_dir(org_id, context.node_config)
        return Message(answer_ledger(msg.content, org_id, state), reply_to=msg)

    return app


app = make_client_app()
