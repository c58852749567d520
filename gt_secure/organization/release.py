"""The organization node's single entry point: train privately, noise, record, release.

Budget policy (checked *before* any training; a refusal trains nothing, releases nothing and
leaves the ledger byte-identical):

- each privacy unit has its own budget (:class:`PrivacyBudget`); the epsilon a release would
  reach per unit (composed with the organization's earlier releases) must not exceed it;
- ``example`` is protected by DP-SGD, ``organization`` by clip + noise on the update vector
  (vector noise is not counted for the example unit: conservative);
- a unit without a mechanism has epsilon = inf: allowed only when that unit's budget is
  explicitly ``math.inf``. So the non-private "plain" protocol (plain LoRA fine-tune) needs
  ``PrivacyBudget(example=inf, organization=inf)``. The ledger records only finite epsilons, so
  an unprotected unit gets no ``release`` entry; a release with no DP at all is recorded as one
  ``unprotected_release`` entry (no budget spent; it states that nothing is protected).

After training, one signed ``release`` entry is appended per protected unit (same
``release_id``), with every mechanism parameter, epsilon, base-model hash, the update vector's
content hash (commitment) and the salted data fingerprint; the ledger re-checks the budget under
its writer lock.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import Field, TypeAdapter, ValidationError, field_validator, model_validator

from gt_secure.aggregation.ddp import ORG_DELTA, DdpParams
from gt_secure.aggregation.ddp_basis import PublicBasis
from gt_secure.errors import BudgetExceededError, InvalidFieldError
from gt_secure.ledger._model import FrozenModel
from gt_secure.ledger.accountant import AccountantName, Mechanism, Unit, compute_epsilon
from gt_secure.ledger.budget import check_budget
from gt_secure.ledger.entry import LedgerEntry, Name, data_fingerprint
from gt_secure.ledger.store import Ledger
from gt_secure.models.loading import load_base
from gt_secure.organization.commitment import commit
from gt_secure.organization.ddp_share import basis_share, noise_share
from gt_secure.organization.dp_sgd import DpSgdConfig, plan_dp_sgd, train_dp_sgd_texts
from gt_secure.organization.vector_dp import VectorDpConfig, clip_l2, privatize_update
from gt_secure.update.finetune import FinetuneConfig, finetune_lora
from gt_secure.update.layout import LoraSpec
from gt_secure.update.lora import (
    apply_update,
    attach_lora,
    extract_update,
    lora_state,
    update_layout,
)
from gt_secure.update.vector import UpdateVector

UNITS: tuple[Unit, ...] = ("example", "organization")
_NAME: TypeAdapter[str] = TypeAdapter(Name)
DEMO_DP_SGD = DpSgdConfig(target_epsilon=1.0, delta=1e-5, max_grad_norm=1.0, batch_size=32,
                          epochs=4, lr=5e-3, accountant="rdp")


class PrivacyBudget(FrozenModel):
    """An organization's total epsilon per privacy unit; ``math.inf`` explicitly allows no DP."""

    example: float
    organization: float

    @field_validator("example", "organization")
    @classmethod
    def _check(cls, value: float, info: object) -> float:
        if math.isnan(value) or value <= 0:
            raise InvalidFieldError(f"budget.{getattr(info, 'field_name', '')}", value,
                                    "> 0 (math.inf to allow a release without DP)")
        return value

    def of(self, unit: Unit) -> float:
        return self.example if unit == "example" else self.organization


class ReleaseConfig(FrozenModel):
    """What one release runs: DP-SGD (or the plain fine-tune when ``dp_sgd`` is None), vector DP."""

    budget: PrivacyBudget
    dp_sgd: DpSgdConfig | None = DEMO_DP_SGD
    plain: FinetuneConfig = Field(default_factory=lambda: FinetuneConfig.model_validate({}))
    vector_dp: VectorDpConfig | None = None
    distributed: DdpParams | None = None  # organization-level noise as a discrete Gaussian share
    clip_norm: float | None = Field(None, gt=0)  # clip without noise when vector_dp is None
    base_model: str = "tinylm"
    lora: LoraSpec = Field(default_factory=lambda: LoraSpec.model_validate({}))

    @model_validator(mode="after")
    def _check_budgets(self) -> ReleaseConfig:
        if self.vector_dp is not None and self.distributed is not None:
            raise InvalidFieldError("distributed", "<DdpParams>", "None when vector_dp is set")
        protectors: dict[Unit, object] = {"example": self.dp_sgd,
                                          "organization": self.vector_dp or self.distributed}
        for unit, mechanism in protectors.items():
            budget = self.budget.of(unit)
            if mechanism is not None and not math.isfinite(budget):
                raise InvalidFieldError(f"budget.{unit}", budget, "finite when a DP mechanism "
                                        "protects this unit (the ledger records the budget)")
        return self


@dataclass(frozen=True)
class Release:
    """A released update vector, its ledger entries (one per protected unit) and mechanisms."""

    org_id: str
    release_id: str
    update: UpdateVector
    entries: tuple[LedgerEntry, ...]
    mechanisms: tuple[Mechanism, ...]
    epsilon: dict[Unit, float]  # epsilon of this release alone per unit (inf: unprotected)
    losses: tuple[float, ...]


@dataclass(frozen=True)
class ReleasePlan:
    """Mechanisms per unit and the projected total epsilon per unit, computed before training."""

    mechanisms: dict[Unit, list[Mechanism]]
    projected_total: dict[Unit, float]


def plan_release(org_id: str, n_examples: int, cfg: ReleaseConfig, ledger: Ledger,
                 release_id: str) -> ReleasePlan:
    """Check ids and budgets without training or writing; raise ``BudgetExceededError``."""
    if n_examples < 1:
        raise InvalidFieldError("texts", [], "non-empty")
    for field, value in (("org_id", org_id), ("release_id", release_id)):
        try:
            _NAME.validate_python(value)
        except ValidationError as err:
            raise InvalidFieldError(field, value, "1-200 characters of [A-Za-z0-9._:/@+-]") from err
    if any(e.release_id == release_id for e in ledger.entries()):
        raise InvalidFieldError("release_id", release_id, "unused in the ledger")
    mechanisms: dict[Unit, list[Mechanism]] = {
        "example": [plan_dp_sgd(cfg.dp_sgd, n_examples)] if cfg.dp_sgd else [],
        "organization": [cfg.vector_dp.mechanism()] if cfg.vector_dp else
                        [cfg.distributed.mechanism()] if cfg.distributed else [],
    }
    projected: dict[Unit, float] = {}
    for unit in UNITS:
        budget, mechs = cfg.budget.of(unit), mechanisms[unit]
        if mechs:
            delta, accountant = _delta_accountant(cfg, unit)
            projected[unit] = check_budget(ledger, org_id, mechs, delta, accountant)
            if not projected[unit] <= budget:  # the ledger header's budget is checked above
                raise BudgetExceededError(
                    "epsilon_total", projected[unit], f"<= budget.{unit}={budget} for org_id="
                    f"{org_id!r} (the release config's; nothing was trained or written)")
        elif math.isfinite(budget):
            raise BudgetExceededError(
                "epsilon_total", math.inf, f"<= budget.{unit}={budget} for org_id={org_id!r}: "
                f"a release without {unit}-level DP has epsilon=inf (set budget.{unit}=inf to "
                "allow it explicitly; nothing was trained or written)")
        else:
            projected[unit] = math.inf
    return ReleasePlan(mechanisms, projected)


def _delta_accountant(cfg: ReleaseConfig, unit: Unit) -> tuple[float, AccountantName]:
    if unit == "organization" and cfg.distributed is not None:
        return ORG_DELTA, "rdp"  # KLS21's zCDP bound composes as RDP only
    mech_cfg = cfg.dp_sgd if unit == "example" else cfg.vector_dp
    assert mech_cfg is not None
    return mech_cfg.delta, mech_cfg.accountant


def prepare_release(org_id: str, texts: Sequence[str], cfg: ReleaseConfig, ledger: Ledger,
                    signing_key: Ed25519PrivateKey, *, salt: bytes, release_id: str,
                    round: int | None = None, start: UpdateVector | None = None,
                    vector_generator: np.random.Generator | None = None,
                    commit_key: bytes | None = None, protocol: str | None = None,
                    basis: PublicBasis | None = None) -> Release:
    """Plan and budget-check, train (DP-SGD or plain), add vector noise, record, return.

    ``start`` (an update of the same layout) is applied before training and the released update
    is the change from it (multi-round). ``salt`` (>= 16 bytes, kept by the organization) keys
    the data fingerprint. ``vector_generator`` is used only by non-secure vector noise.
    ``commit_key`` (masked or encrypted aggregation): the entries' ``update_vector_hash`` is the
    salted commitment :func:`~gt_secure.organization.commitment.commit` instead of the plain
    SHA-256, so the entry that travels with the update cannot confirm a guessed vector.
    ``protocol`` (e.g. ``dp-sgd-secagg``) is recorded in every entry. ``basis`` (with
    ``cfg.distributed`` naming it): the release is the update's ``k`` coordinates in it.
    """
    plan = plan_release(org_id, len(texts), cfg, ledger, release_id)
    fingerprint = data_fingerprint(texts, salt)  # validates the salt before training
    if cfg.vector_dp is not None and cfg.vector_dp.secure_mode != (vector_generator is None):
        raise InvalidFieldError("vector_generator", type(vector_generator).__name__,
                                "None exactly when vector_dp.secure_mode=True")
    base, tokenizer = load_base(cfg.base_model)
    model = attach_lora(copy.deepcopy(base), cfg.lora)
    layout = update_layout(model, cfg.base_model, cfg.lora)
    initial = lora_state(model)
    if start is not None:
        apply_update(model, initial, start, layout)
    reference = lora_state(model)
    if cfg.dp_sgd is not None:
        result = train_dp_sgd_texts(model, tokenizer, texts, cfg.dp_sgd)
        _check_same(result.mechanism, plan.mechanisms["example"])
        losses = result.losses
    else:
        losses = tuple(finetune_lora(model, tokenizer, texts, cfg.plain))
    update = extract_update(model, reference, layout)
    if cfg.vector_dp is not None:
        noised = privatize_update(update, cfg.vector_dp, vector_generator)
        _check_same(noised.mechanism, plan.mechanisms["organization"])
        update = noised.update
    elif cfg.distributed is not None:  # the integer share that goes into SecAgg+
        secure = vector_generator is None
        if basis is None:
            share = noise_share(update.flat, cfg.distributed, vector_generator, secure_mode=secure)
        else:  # the k coordinates in the public basis (cfg.distributed names it)
            share = basis_share(update.flat, basis, cfg.distributed, vector_generator,
                                secure_mode=secure)
        _check_same(share.mechanism, plan.mechanisms["organization"])
        wire = share.wire.astype(np.float32)
        update = (update.replace(wire) if basis is None
                  else UpdateVector(basis.coords_layout(layout), wire))
    elif cfg.clip_norm is not None:
        update = UpdateVector(layout, clip_l2(update.flat, cfg.clip_norm))
    vector_hash = update.content_hash() if commit_key is None else commit(commit_key, update)
    entries = []
    for unit in UNITS:
        if plan.mechanisms[unit]:
            delta, accountant = _delta_accountant(cfg, unit)
            entries.append(ledger.append_release(
                org_id=org_id, release_id=release_id, mechanisms=plan.mechanisms[unit],
                delta=delta,
                base_model_hash=layout.base_model_hash,
                update_vector_hash=vector_hash, data_fingerprint=fingerprint,
                signing_key=signing_key, accountant=accountant,
                round=round, protocol=protocol))
    if not entries:  # no DP at all: recorded as what it is
        entries.append(ledger.append_unprotected_release(
            org_id=org_id, release_id=release_id, base_model_hash=layout.base_model_hash,
            update_vector_hash=vector_hash, data_fingerprint=fingerprint,
            signing_key=signing_key, round=round, protocol=protocol))
    epsilon = {unit: _epsilon(cfg, unit, plan.mechanisms[unit]) for unit in UNITS}
    mechanisms = tuple(m for unit in UNITS for m in plan.mechanisms[unit])
    return Release(org_id, release_id, update, tuple(entries), mechanisms, epsilon, losses)


def _epsilon(cfg: ReleaseConfig, unit: Unit, mechanisms: list[Mechanism]) -> float:
    if not mechanisms:
        return math.inf
    delta, accountant = _delta_accountant(cfg, unit)
    return compute_epsilon(mechanisms, delta, accountant)


def _check_same(ran: Mechanism, planned: list[Mechanism]) -> None:
    if [ran] != planned:
        raise InvalidFieldError("mechanism", ran, f"{planned[0]} as planned and budget-checked")
