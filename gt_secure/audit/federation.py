"""Federation audit: canaries at one organization, scored on what the other parties receive.

One audit runs the whole federation in Flower's simulation engine with the production
ServerApp and ClientApp (3 organizations, the protocol's aggregation, e.g. SecAgg+, and the
provider's translator producing the delivered PEFT adapter). Two kinds of canaries, each with
seeded fair in/out coins:

* ``canaries="gradient"`` (default, white-box): the audited organization's DP-SGD carries
  ``n_canaries`` Dirac gradient canaries on the TinyLM LoRA A factors
  (:class:`~gt_secure.audit.federation_app.GradientCanarySpec`): each "in" canary is one more
  per-example gradient, Poisson-included at the recorded rate, clipped and noised by Opacus with
  the data (the organization runs the auditor's instrumented training). Scores: the canary's
  coordinate of the aggregated update, and its coefficient in the adapter on the public
  translator's image of that coordinate (:mod:`gt_secure.audit.federation_provider`);
* ``canaries="text"``: rare-token canary texts inserted the way an organization inserts an
  auditor's public canary file (``<state-dir>/canaries.txt``,
  :mod:`gt_secure.organization.canaries`), records of its DP-SGD dataset, scored by loss drop
  (:mod:`gt_secure.audit.federation_scores`); :func:`nonprivate_control` is their own control.

The artifacts scored are ``federation_tinylm_update`` (the aggregated TinyLM update the provider
holds after SecAgg+) and ``federation_adapter`` (the LLM adapter delivered to the
organizations). Each gets the one-run lower bound of Steinke, Nasr & Jagielski (NeurIPS 2023,
:func:`~gt_secure.audit.empirical_epsilon.one_run_audit`) against the claim of the audited
organization's own ledger (its example-level entry for this release). Either bound above the
claim is a violation. A planted ``bug`` (:mod:`gt_secure.audit.federation_app`) makes that
organization (``bug_at="all"``: every organization) run a wrong DP-SGD while recording the
planned one; ``provider_bug="translator_copy"`` makes the provider translate with a map that
copies the TinyLM update into the adapter (the adapter audit's positive control).

Power, measured (docs/benchmarks.md "Audit power"): the gradient canaries detect noise off at
one organization on the aggregated TinyLM update; through the shipped translator (rank-128
linear path of the 2048-number update) the adapter audit detects it only when the translator
copies the update. Text canaries have no measurable power on either artifact.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from gt_secure.audit.data_path import canary_coins
from gt_secure.audit.empirical_epsilon import one_run_audit
from gt_secure.audit.federation_app import GradientCanarySpec, audited_client_app
from gt_secure.audit.federation_provider import ProviderBug
from gt_secure.audit.gradient_canary import PlantedBug
from gt_secure.audit.metrics import attack_metrics
from gt_secure.audit.results import AuditResult, verdict
from gt_secure.errors import InvalidFieldError

ARTIFACTS = ("federation_tinylm_update", "federation_adapter")


class FederationAuditConfig(BaseModel):
    """What one federation audit runs."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    protocol: str = "dp-sgd-secagg"
    org: str = "bank"  # the organization whose data holds the canaries
    n_canaries: int = Field(256, ge=2)
    canary_length: int = Field(8, ge=1)
    local_steps: int = Field(32, ge=1)
    num_texts: int = Field(64, ge=1)  # each organization's own training texts
    seed: int = 0
    beta: float = Field(0.05, gt=0, lt=1)
    bug: PlantedBug | None = None
    bug_at: Literal["org", "all"] = "org"  # all: every organization runs the bug
    canaries: Literal["gradient", "text"] = "gradient"
    grad_norm: float = Field(100.0, gt=0)  # Dirac canaries' gradient norm (>> the clip)
    provider_bug: ProviderBug | None = None  # the adapter audit's control (a leaking translator)

    def gradient_spec(self) -> GradientCanarySpec | None:
        """The Dirac canaries the audited organization inserts (``canaries="gradient"``)."""
        if self.canaries != "gradient":
            return None
        return GradientCanarySpec(n_canaries=self.n_canaries, seed=self.seed,
                                  grad_norm=self.grad_norm)


class FederationAudit(BaseModel):
    """Both artifacts' results and where the run's files are."""

    model_config = ConfigDict(frozen=True)
    config: FederationAuditConfig
    results: list[AuditResult]  # one per artifact, in ARTIFACTS order
    release_id: str
    run_dir: str

    @property
    def verdict(self) -> str:
        """FAIL when either artifact's bound exceeds the claim."""
        return "FAIL" if any(r.verdict == "FAIL" for r in self.results) else "PASS"


@contextmanager
def _state_root(path: Path) -> Iterator[None]:
    """GT_SECURE_STATE_DIR (inherited by the simulation's workers) set to ``path``."""
    old = os.environ.get("GT_SECURE_STATE_DIR")
    os.environ["GT_SECURE_STATE_DIR"] = str(path)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("GT_SECURE_STATE_DIR", None)
        else:
            os.environ["GT_SECURE_STATE_DIR"] = old


def _canaries(cfg: FederationAuditConfig) -> tuple[list[str], np.ndarray]:
    """All canary texts and their coins (no canary token in any organization's texts)."""
    from gt_secure.audit.federation_scores import rare_token_canaries
    from gt_secure.data.organizations import ORGANIZATIONS, org_texts

    used = [t for o in ORGANIZATIONS for t in org_texts(o, "train", cfg.num_texts)]
    texts = rare_token_canaries(used, cfg.n_canaries, cfg.canary_length, cfg.seed)
    return texts, canary_coins(cfg.n_canaries, cfg.seed)


def simulate(cfg: FederationAuditConfig, work: Path, inserted: list[str]) -> dict[str, object]:
    """Run the federation with ``inserted`` in ``cfg.org``'s data; summary.json's content."""
    import json

    from flwr.simulation import run_simulation

    from gt_secure.app.server_app import make_server_app
    from gt_secure.data.organizations import ORGANIZATIONS
    from gt_secure.demo.simulation import BACKEND, write_demo_policies

    if cfg.org not in ORGANIZATIONS:
        raise InvalidFieldError("org", cfg.org, f"one of {ORGANIZATIONS}")
    from gt_secure.audit.federation_provider import copy_translator, provider_translator

    state = work / "orgs" / cfg.org
    state.mkdir(parents=True, exist_ok=True)
    if inserted:
        (state / "canaries.txt").write_text("\n".join(inserted) + "\n", encoding="utf-8")
    overrides = {"protocol": cfg.protocol, "num-rounds": 1, "local-steps": cfg.local_steps,
                 "num-texts": cfg.num_texts, "output-dir": str(work / "provider")}
    logging.getLogger("flwr").setLevel(logging.WARNING)
    provider = (provider_translator(copy_translator()) if cfg.provider_bug == "translator_copy"
                else nullcontext())
    with _state_root(work / "orgs"), provider:
        write_demo_policies(cfg.protocol)
        run_simulation(make_server_app(overrides),
                       audited_client_app(overrides, cfg.org, cfg.bug, cfg.gradient_spec(),
                                          cfg.bug_at),
                       num_supernodes=len(ORGANIZATIONS), backend_config=BACKEND)
    path = work / "provider" / "summary.json"
    if not path.exists():
        raise RuntimeError(f"the federation wrote no summary at {path}; see Flower's log")
    summary: dict[str, object] = json.loads(path.read_text())
    return summary


def _organization(cfg: FederationAuditConfig) -> str:
    """``bank: noise_off`` etc.: the audited organization and what was planted."""
    planted = [f"{cfg.bug}{' at every organization' if cfg.bug_at == 'all' else ''}"
               if cfg.bug else "", f"provider {cfg.provider_bug}" if cfg.provider_bug else ""]
    return f"{cfg.org}: {', '.join(p for p in planted if p) or 'as claimed'}"


def run_federation_audit(cfg: FederationAuditConfig,
                         work: Path | None = None) -> FederationAudit:
    """Run the federation with canaries at ``cfg.org``; audit both released artifacts (the
    adapter through the translator the provider used: the shipped one, or the planted copy)."""
    from gt_secure.app.roles import release_id_of
    from gt_secure.audit.federation_provider import copy_translator, translator_scores
    from gt_secure.audit.federation_scores import (
        adapter_scores,
        canary_indices,
        coordinate_scores,
        tinylm_scores,
    )
    from gt_secure.audit.ledger_audit import ledger_claim
    from gt_secure.ledger.store import Ledger
    from gt_secure.provider.service import load_translator
    from gt_secure.update import UpdateVector

    work = Path(tempfile.mkdtemp(prefix="gt-fed-audit-")) if work is None else work
    spec = cfg.gradient_spec()
    if spec is None:
        texts, coins = _canaries(cfg)
        summary = simulate(cfg, work, [t for t, c in zip(texts, coins, strict=True) if c])
    else:
        index, members = canary_indices(spec)
        coins = np.asarray(members)
        summary = simulate(cfg, work, [])
    release_id = release_id_of(cfg.org, int(str(summary["run_id"])), 1)
    state = work / "orgs" / cfg.org
    claim = ledger_claim(Ledger(state / "ledger.jsonl"), release_id)
    aggregate = UpdateVector.load(work / "provider" / "round1" / "tinylm_update.safetensors")
    adapter = state / "adapters" / f"{summary['run_id']}-round1"  # what the org received
    if spec is None:
        scores = {ARTIFACTS[0]: tinylm_scores(aggregate, texts),
                  ARTIFACTS[1]: adapter_scores(adapter, texts)}
    else:  # white-box: the canaries' coordinates, through the public translator for the adapter
        translator = copy_translator() if cfg.provider_bug else load_translator()
        delivered = UpdateVector.load(adapter / "update_vector.safetensors")
        scores = {ARTIFACTS[0]: coordinate_scores(aggregate, index),
                  ARTIFACTS[1]: translator_scores(delivered, translator, index)}
    results = []
    for artifact, s in scores.items():
        bound = one_run_audit(s, coins, delta=claim.delta, beta=cfg.beta)
        results.append(AuditResult(
            organization=_organization(cfg), attack=artifact,
            metrics=attack_metrics(s, coins), empirical_epsilon=bound,
            claimed_epsilon=claim.epsilon, delta=claim.delta,
            verdict=verdict(bound.epsilon, claim.epsilon), canary_seed=cfg.seed,
            split_seed=cfg.seed + 1, n_canaries=cfg.n_canaries,
            ledger_release_ids=[release_id], scores=[float(x) for x in s],
            is_member=[bool(c) for c in coins]))
    return FederationAudit(config=cfg, results=results, release_id=release_id,
                           run_dir=str(work))


def nonprivate_control(cfg: FederationAuditConfig, claim: float, delta: float, work: Path,
                       steps: int = 800) -> list[AuditResult]:
    """Text canaries: the loss scores' own positive control, outside the federation:
    ``cfg.org``'s texts plus the "in" canaries fine-tuned WITHOUT DP for ``steps`` steps (no
    update clip, no averaging), the update translated by the shipped translator, both artifacts
    scored against ``claim``. It shows whether the scoring can detect a leak at all, before
    SecAgg+'s mean and clip dilute it.
    """
    import copy

    from gt_secure.audit.federation_scores import adapter_scores, tinylm_scores
    from gt_secure.data.organizations import org_texts
    from gt_secure.models.loading import load_base
    from gt_secure.organization.canaries import with_canaries
    from gt_secure.provider.service import finish_round, load_translator
    from gt_secure.update.finetune import FinetuneConfig, finetune_lora
    from gt_secure.update.lora import attach_lora, extract_update, lora_state, update_layout

    texts, coins = _canaries(cfg)
    data = with_canaries(org_texts(cfg.org, "train", cfg.num_texts),
                         [t for t, c in zip(texts, coins, strict=True) if c])
    base, tokenizer = load_base("tinylm")
    model = attach_lora(copy.deepcopy(base))
    initial = lora_state(model)
    finetune_lora(model, tokenizer, data, FinetuneConfig(steps=steps, seed=cfg.seed))
    update = extract_update(model, initial, update_layout(model, "tinylm"))
    adapter = Path(finish_round(update, load_translator(), work, evaluate=False).adapter_dir)
    scores = {ARTIFACTS[0]: tinylm_scores(update, texts),
              ARTIFACTS[1]: adapter_scores(adapter, texts)}
    results = []
    for artifact, s in scores.items():
        bound = one_run_audit(s, coins, delta=delta, beta=cfg.beta)
        results.append(AuditResult(
            organization=f"{cfg.org}: non-private fine-tune (control)", attack=artifact,
            metrics=attack_metrics(s, coins), empirical_epsilon=bound, claimed_epsilon=claim,
            delta=delta, verdict=verdict(bound.epsilon, claim), canary_seed=cfg.seed,
            split_seed=cfg.seed + 1, n_canaries=cfg.n_canaries,
            scores=[float(x) for x in s], is_member=[bool(c) for c in coins]))
    return results
