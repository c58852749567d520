"""The production ClientApp with a DP-SGD bug planted at ONE organization, for audits.

An auditor's positive control and planted-bug rows need an organization whose code is wrong
while its ledger still records the planned mechanism (what a buggy organization would claim).
:func:`audited_client_app` delegates every message to
:func:`gt_secure.app.client_app.make_client_app`'s app; only while the named organization
handles a ``train`` message is the DP-SGD call of its release
(:func:`gt_secure.organization.release.prepare_release`) replaced by one that runs
:func:`gt_secure.audit.gradient_canary.plant_bug`'s configuration and reports the planned
mechanism, so the budget check, the ledger entry and SecAgg+ see a correct-looking release.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from flwr.app import Context, Message
from flwr.clientapp import ClientApp

from gt_secure.audit.gradient_canary import PlantedBug, plant_bug


@contextmanager
def planted(bug: PlantedBug) -> Iterator[None]:
    """Within the block, the release's DP-SGD runs with ``bug`` and claims the plan."""
    from gt_secure.organization import release
    from gt_secure.organization.dp_sgd import plan_dp_sgd

    honest = release.train_dp_sgd_texts

    def bugged(model: Any, tokenizer: Any, texts: Sequence[str], cfg: Any) -> Any:
        run = plant_bug(cfg, len(texts), bug).model_copy(update={"accountant": "rdp"})
        result = honest(model, tokenizer, texts, run)  # rdp: PRV cannot report z = 0's epsilon
        return dataclasses.replace(result, mechanism=plan_dp_sgd(cfg, len(texts)))

    release.train_dp_sgd_texts = bugged  # type: ignore[assignment]
    try:
        yield
    finally:
        release.train_dp_sgd_texts = honest  # type: ignore[assignment]


def audited_client_app(overrides: Mapping[str, Any], org: str,
                       bug: PlantedBug | None) -> ClientApp:
    """The production ClientApp; with ``bug``, organization ``org`` trains with it planted."""
    from gt_secure.app.client_app import make_client_app
    from gt_secure.app.config import org_id_of
    from gt_secure.app.receipts import ACTION

    inner = make_client_app(overrides)
    if bug is None:
        return inner
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        if org_id_of(context.node_config) != org:
            return inner(msg, context)
        with planted(bug):
            return inner(msg, context)

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        return inner(msg, context)

    @app.query(ACTION)
    def ledger_receipt(msg: Message, context: Context) -> Message:
        return inner(msg, context)

    return app
