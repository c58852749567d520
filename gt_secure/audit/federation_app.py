"""The production ClientApp with an auditor's instrumentation at organizations, for audits.

An auditor's positive control and planted-bug rows need an organization whose code is wrong
while its ledger still records the planned mechanism (what a buggy organization would claim).
:func:`audited_client_app` delegates every message to
:func:`gt_secure.app.client_app.make_client_app`'s app; only while an instrumented organization
handles a ``train`` message is the DP-SGD call of its release
(:func:`gt_secure.organization.release.prepare_release`) replaced by one that runs
:func:`gt_secure.audit.gradient_canary.plant_bug`'s configuration (``bug``) and/or inserts the
auditor's Dirac gradient canaries (``canaries``: :class:`GradientCanarySpec`, the white-box
audit's :class:`~gt_secure.audit.gradient_canary.CanaryInserter`: each "in" canary is one more
per-example gradient, Poisson-included at the recorded sample rate, clipped and noised by
Opacus with the data), and reports the planned mechanism, so the budget check, the ledger entry
and SecAgg+ see a correct-looking release.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal

from flwr.app import Context, Message
from flwr.clientapp import ClientApp
from pydantic import BaseModel, ConfigDict, Field

from gt_secure.audit.gradient_canary import PlantedBug, plant_bug


class GradientCanarySpec(BaseModel):
    """Which Dirac gradient canaries an instrumented organization inserts (the auditor's seed:
    :func:`~gt_secure.audit.gradient_canary.make_gradient_canaries` on the TinyLM LoRA)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    n_canaries: int = Field(ge=2)
    seed: int
    grad_norm: float = Field(100.0, gt=0)  # >> the clip: every inclusion adds exactly C
    match: str = "lora_A"  # canaries sit on the A factors (small data gradient there)


@contextmanager
def planted(bug: PlantedBug | None,
            canaries: GradientCanarySpec | None = None) -> Iterator[None]:
    """Within the block, the release's DP-SGD runs with ``bug`` and/or ``canaries`` and
    claims the plan."""
    from gt_secure.audit.gradient_canary import CanaryInserter, make_gradient_canaries
    from gt_secure.models.scoring import encode
    from gt_secure.organization import release
    from gt_secure.organization.dp_sgd import plan_dp_sgd, train_dp_sgd

    honest = release.train_dp_sgd_texts

    def bugged(model: Any, tokenizer: Any, texts: Sequence[str], cfg: Any) -> Any:
        plan = plan_dp_sgd(cfg, len(texts))
        run = cfg
        if bug is not None:  # rdp: PRV cannot report z = 0's epsilon
            run = plant_bug(cfg, len(texts), bug).model_copy(update={"accountant": "rdp"})
        if canaries is None:
            result = honest(model, tokenizer, texts, run)
        else:
            spec = make_gradient_canaries(model, canaries.n_canaries, canaries.seed,
                                          canaries.grad_norm, canaries.match)
            hook = CanaryInserter(model, spec, plan.sample_rate, canaries.seed + 1)
            data = encode(tokenizer, list(texts), max_length=cfg.max_length)
            result = train_dp_sgd(model, data, run, before_step=hook)
        return dataclasses.replace(result, mechanism=plan)

    release.train_dp_sgd_texts = bugged  # type: ignore[assignment]
    try:
        yield
    finally:
        release.train_dp_sgd_texts = honest  # type: ignore[assignment]


def audited_client_app(overrides: Mapping[str, Any], org: str, bug: PlantedBug | None,
                       canaries: GradientCanarySpec | None = None,
                       bug_at: Literal["org", "all"] = "org") -> ClientApp:
    """The production ClientApp; organization ``org`` trains with ``bug`` planted and
    ``canaries`` inserted; ``bug_at="all"``: every organization runs ``bug``."""
    from gt_secure.app.client_app import make_client_app
    from gt_secure.app.config import org_id_of
    from gt_secure.app.receipts import ACTION

    inner = make_client_app(overrides)
    if bug is None and canaries is None:
        return inner
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        mine = org_id_of(context.node_config) == org
        if not mine and (bug_at == "org" or bug is None):
            return inner(msg, context)
        with planted(bug, canaries if mine else None):
            return inner(msg, context)

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        return inner(msg, context)

    @app.query(ACTION)
    def ledger_receipt(msg: Message, context: Context) -> Message:
        return inner(msg, context)

    return app
