"""White-box gradient-canary audit of the organization's DP-SGD, through the real Opacus step.

Dirac gradient canaries (Nasr et al., "Adversary Instantiation", IEEE S&P 2021; "Tight Auditing
of Differentially Private Machine Learning", USENIX Security 2023) with the one-run bound of
Steinke, Nasr & Jagielski (NeurIPS 2023, :func:`~gt_secure.audit.empirical_epsilon.one_run_audit`).

Canary ``k`` owns one coordinate of one trainable (LoRA) tensor and is "in" with a seeded fair
coin. At every DP-SGD step each "in" canary joins the batch independently with probability ``q``,
the run's Poisson sample rate, as one more per-example gradient: a row appended to every
``p.grad_sample`` (zero except ``grad_norm`` on its coordinate) through ``dp_step``'s
``before_step`` hook, i.e. after Opacus computed the data's per-example gradients and before it
clips each row to ``C``, sums, adds ``N(0, (z C)^2)`` and steps. A canary is thus exactly one
Poisson-sampled example, so the claimed (epsilon, delta) covers it. With plain SGD the change of
a coordinate is linear in its noisy gradient sums, so the score of canary ``k`` is
``(theta_init - theta_final)[k] * B / lr``: the sum over steps of the noisy gradient on its
coordinate (an inclusion adds ``min(grad_norm, C)``). ``grad_norm >> C`` makes a missing clip
(e.g. ``max_grad_norm = 1e6`` with the noise still calibrated to ``C = 1``) stand out.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, model_validator
from torch import nn

from gt_secure.audit.dp_pipeline import claimed_epsilon as claim_of
from gt_secure.audit.dp_pipeline import with_noise
from gt_secure.audit.empirical_epsilon import one_run_audit
from gt_secure.audit.gdp_one_run import gdp_one_run_audit
from gt_secure.audit.metrics import attack_metrics
from gt_secure.audit.results import AuditResult, verdict
from gt_secure.errors import InvalidFieldError
from gt_secure.organization.dp_sgd import (
    DpSgdConfig,
    PrivateTraining,
    plan_dp_sgd,
    train_dp_sgd,
)
from gt_secure.organization.secure_rng import InsecureRandomnessWarning
from gt_secure.update.layout import LoraSpec

ATTACK_NAME = "gradient_canary"
PlantedBug = Literal["clipping_off", "noise_off", "steps_x2", "steps_x4", "sample_rate_x4"]
Bound = Literal["one_run", "gdp"]
PLANTED_BUGS: tuple[PlantedBug, ...] = ("clipping_off", "noise_off", "steps_x2", "steps_x4",
                                       "sample_rate_x4")
# Nominal white-box audit run: 64 texts at B=16 (q=1/4), 6 epochs = 24 steps, plain SGD (the
# score is linear in the noisy gradients), epsilon 1 at delta 1e-5, seeded for reproducible CI.
GRADIENT_AUDIT_DP_SGD = DpSgdConfig(target_epsilon=1.0, delta=1e-5, max_grad_norm=1.0,
                                    batch_size=16, epochs=6, lr=1e-2, optimizer="sgd",
                                    max_length=64, secure_mode=False, seed=0)


class GradientCanaries(BaseModel):
    """The canaries of one white-box audit: coordinate, Dirac norm and secret in/out coin."""

    model_config = ConfigDict(frozen=True)
    seed: int
    grad_norm: float
    params: list[str]  # trainable parameter name of canary k
    coords: list[int]  # flat index into that parameter
    is_member: list[bool]

    @model_validator(mode="after")
    def _check(self) -> GradientCanaries:
        if not len(self.params) == len(self.coords) == len(self.is_member) >= 2:
            raise InvalidFieldError("canaries", len(self.coords), ">= 2, one param/coin each")
        if len(set(zip(self.params, self.coords, strict=True))) != len(self.coords):
            raise InvalidFieldError("coords", "repeated", "one distinct coordinate per canary")
        if not self.grad_norm > 0:
            raise InvalidFieldError("grad_norm", self.grad_norm, "> 0")
        return self


def trainable(model: nn.Module, match: str = "") -> dict[str, nn.Parameter]:
    """Name -> trainable parameter whose name contains ``match``, in model order."""
    return {name: p for name, p in model.named_parameters() if p.requires_grad and match in name}


def make_gradient_canaries(model: nn.Module, n_canaries: int, seed: int,
                           grad_norm: float = 100.0, match: str = "") -> GradientCanaries:
    """``n_canaries`` distinct seeded coordinates across the trainable tensors named ``match``."""
    params = trainable(model, match)
    if not params:
        raise InvalidFieldError("match", match, "a substring of a trainable parameter's name")
    names = list(params)
    sizes = np.array([params[n].numel() for n in names])  # (P,)
    if not 2 <= n_canaries <= sizes.sum():
        raise InvalidFieldError("n_canaries", n_canaries, f"in [2, {int(sizes.sum())}]")
    rng = np.random.default_rng(seed)
    flat = rng.choice(int(sizes.sum()), size=n_canaries, replace=False)  # (m,) global indices
    owner = np.searchsorted(np.cumsum(sizes), flat, side="right")  # (m,) tensor of each
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])  # (P,)
    coins = rng.random(n_canaries) < 0.5  # (m,) the one-run audit's fair coins
    return GradientCanaries(seed=seed, grad_norm=grad_norm,
                            params=[names[i] for i in owner],
                            coords=[int(f - starts[i]) for f, i in zip(flat, owner, strict=True)],
                            is_member=[bool(c) for c in coins])


class CanaryInserter:
    """``before_step`` hook: Poisson-include each member canary as a Dirac per-example gradient.

    ``inclusions[k]`` counts the steps canary ``k`` was in the batch; ``expected_batch_size`` is
    Opacus's divisor (read at the first step).
    """

    def __init__(self, model: nn.Module, canaries: GradientCanaries, sample_rate: float,
                 seed: int) -> None:
        params = trainable(model)
        self.canaries = canaries
        self.sample_rate = sample_rate
        self.members = torch.tensor([k for k, m in enumerate(canaries.is_member) if m])  # (M,)
        self.param_ids = {id(p): i for i, p in enumerate(params.values())}
        names = list(params)
        self.owner = torch.tensor([names.index(n) for n in canaries.params])  # (m,)
        self.coords = torch.tensor(canaries.coords)  # (m,)
        self.generator = torch.Generator().manual_seed(seed)
        self.inclusions = np.zeros(len(canaries.coords), dtype=np.int64)  # (m,)
        self.expected_batch_size = 0.0

    def __call__(self, training: PrivateTraining) -> None:
        draw = torch.rand(len(self.members), generator=self.generator) < self.sample_rate
        chosen = self.members[draw]  # (R,) canaries in this step's Poisson batch
        self.inclusions[chosen.numpy()] += 1
        self.expected_batch_size = float(training.optimizer.expected_batch_size)
        for p in training.optimizer.params:
            grad_sample = p.grad_sample  # (B, *p.shape), or a list of those
            if isinstance(grad_sample, list):
                grad_sample = torch.cat(grad_sample)
            rows = torch.zeros((len(chosen), p.numel()), dtype=p.dtype, device=p.device)  # (R, n)
            mine = (self.owner[chosen] == self.param_ids[id(p)]).nonzero().squeeze(1)  # (R_p,)
            rows[mine, self.coords[chosen[mine]]] = self.canaries.grad_norm
            p.grad_sample = torch.cat([grad_sample, rows.view(len(chosen), *p.shape)])


def canary_values(model: nn.Module, canaries: GradientCanaries) -> np.ndarray:
    """``theta[k]``: the current value of every canary's coordinate, (m,)."""
    params = trainable(model)
    return np.array([float(params[n].detach().reshape(-1)[c])
                     for n, c in zip(canaries.params, canaries.coords, strict=True)])


def run_gradient_canary_audit(
    model: nn.Module,
    data: Mapping[str, torch.Tensor],
    cfg: DpSgdConfig,
    *,
    claimed_epsilon: float | None = None,
    n_canaries: int = 128,
    grad_norm: float = 100.0,
    match: str = "",
    seed: int = 0,
    beta: float = 0.05,
    organization: str = "",
    recorded_sample_rate: float | None = None,
    bound: Bound = "one_run",
    guess_grid: Sequence[tuple[int, int]] | None = None,
) -> AuditResult:
    """DP-SGD ``model`` (trained in place) on ``data`` (N, T) with gradient canaries; bound eps.

    The claim defaults to the ledger accountant's epsilon of ``cfg`` on N examples; pass the
    nominal claim when ``cfg`` is a (planted) deviation from what was claimed; canaries are
    inserted at ``recorded_sample_rate`` (default: ``cfg``'s), the rate an auditor knows from the
    record, whatever the run's loader does. Canaries sit on
    the trainable tensors whose name contains ``match`` (all when empty). ``bound="gdp"``
    bounds epsilon through Gaussian DP (:func:`~gt_secure.audit.gdp_one_run.gdp_one_run_audit`),
    valid only for full-batch runs (sample rate 1), whose trade-off curve is exactly Gaussian.
    """
    if cfg.optimizer != "sgd":
        raise InvalidFieldError("optimizer", cfg.optimizer,
                                "'sgd' (the score must be linear in the noisy gradients)")
    n_examples = len(data["input_ids"])
    if claimed_epsilon is None:
        claimed_epsilon = claim_of(cfg, n_examples)[1]
    canaries = make_gradient_canaries(model, n_canaries, seed, grad_norm, match)
    rate = recorded_sample_rate or plan_dp_sgd(cfg, n_examples).sample_rate
    if bound == "gdp" and rate != 1.0:
        raise InvalidFieldError("bound", bound, "'one_run' unless the sample rate is 1 (only "
                                "full-batch DP-SGD is exactly Gaussian-DP)")
    inserter = CanaryInserter(model, canaries, rate, seed + 1)
    before = canary_values(model, canaries)  # (m,)
    with warnings.catch_warnings():  # seeded audit run; planted zero noise
        warnings.simplefilter("ignore", InsecureRandomnessWarning)
        warnings.filterwarnings("ignore", message="Optimal order is the smallest alpha")
        train_dp_sgd(model, data, cfg, before_step=inserter)  # type: ignore[arg-type]
    scores = (before - canary_values(model, canaries)) * inserter.expected_batch_size / cfg.lr
    labels = canaries.is_member
    audit = gdp_one_run_audit if bound == "gdp" else one_run_audit
    eps = audit(scores, labels, delta=cfg.delta, beta=beta, guess_grid=guess_grid)
    return AuditResult(
        organization=organization, attack=ATTACK_NAME, metrics=attack_metrics(scores, labels),
        empirical_epsilon=eps, claimed_epsilon=claimed_epsilon, delta=cfg.delta,
        verdict=verdict(eps.epsilon, claimed_epsilon), canary_seed=seed, split_seed=seed,
        n_canaries=n_canaries, scores=[float(s) for s in scores], is_member=labels)


def _replace(cfg: DpSgdConfig, **update: object) -> DpSgdConfig:
    return DpSgdConfig.model_validate({**cfg.model_dump(), **update})


def plant_bug(cfg: DpSgdConfig, n_examples: int, bug: PlantedBug | None) -> DpSgdConfig:
    """``cfg`` with explicit noise and, if asked, a DP-SGD bug planted (the claim stays ``cfg``'s).

    ``"clipping_off"``: ``max_grad_norm = 1e6`` and ``z / 1e6``, so the noise std stays ``z C``;
    ``"noise_off"``: ``z = 0``; ``"steps_x2"``/``"steps_x4"``: the loop runs 2x/4x the planned
    steps; ``"sample_rate_x4"``: the Poisson loader draws each example with ``4 q`` (expected
    batch ``4 B``, same noise multiplier and steps), which needs ``ceil(N / B)`` divisible by 4.
    """
    plan = plan_dp_sgd(cfg, n_examples)
    z = plan.noise_multiplier
    if bug is None:
        return with_noise(cfg, z)
    if bug == "clipping_off":
        huge = 1e6
        return with_noise(cfg, z * cfg.max_grad_norm / huge, max_grad_norm=huge)
    if bug == "noise_off":
        return with_noise(cfg, 0.0)
    if bug in ("steps_x2", "steps_x4"):
        factor = 2 if bug == "steps_x2" else 4
        return _replace(with_noise(cfg, z), steps=factor * plan.steps)
    if bug == "sample_rate_x4":
        bugged = _replace(with_noise(cfg, z), batch_size=4 * cfg.batch_size, steps=plan.steps)
        if not math.isclose(plan_dp_sgd(bugged, n_examples).sample_rate, 4 * plan.sample_rate):
            raise InvalidFieldError("n_examples", n_examples, f"a size with ceil(N / "
                                    f"{cfg.batch_size}) divisible by 4 (exactly 4x the rate)")
        return bugged
    raise InvalidFieldError("bug", bug, f"None or one of {list(PLANTED_BUGS)}")


def audit_org_dp_sgd(
    org: str = "hospital",
    n_texts: int = 64,
    cfg: DpSgdConfig = GRADIENT_AUDIT_DP_SGD,
    *,
    bug: PlantedBug | None = None,
    n_canaries: int = 128,
    grad_norm: float = 100.0,
    seed: int = 0,
    beta: float = 0.05,
    lora: LoraSpec | None = None,
    bound: Bound = "one_run",
    guess_grid: Sequence[tuple[int, int]] | None = None,
) -> AuditResult:
    """Audit the organization's DP-SGD of a fresh TinyLM LoRA adapter on ``org``'s texts.

    The claim is always the nominal ``cfg``'s ledger epsilon on ``n_texts`` examples; ``bug``
    plants a deviation in the run (:func:`plant_bug`). Canaries sit on the ``lora_A`` factors:
    with ``lora_B = 0`` at init the data's own gradient there is small (measured: the score
    spread of "out" canaries with the noise off is ~3x smaller than on ``lora_B``).
    """
    from gt_secure.data.organizations import org_texts
    from gt_secure.models.scoring import encode
    from gt_secure.provider.adapter import fresh_lora

    model, _, _, tokenizer = fresh_lora("tinylm", lora)
    data = encode(tokenizer, org_texts(org, "train", n_texts), max_length=cfg.max_length)
    claim = claim_of(cfg, n_texts)[1]
    return run_gradient_canary_audit(
        model, data, plant_bug(cfg, n_texts, bug), claimed_epsilon=claim,
        n_canaries=n_canaries, grad_norm=grad_norm, match="lora_A", seed=seed, beta=beta,
        organization=f"{org}: {bug or 'as claimed'}",
        recorded_sample_rate=plan_dp_sgd(cfg, n_texts).sample_rate, bound=bound,
        guess_grid=guess_grid)
