"""Data-path canary audit: rare-token canary records trained by the organization's real DP-SGD.

Each canary is a short record of tokens that occur nowhere else (not in the organization's data,
not in another canary). Canaries whose seeded fair coin says "in" are appended to the
organization's dataset *as examples*, so Opacus's Poisson sampler draws them, the step loop
counts them, and Opacus clips and noises their gradients like any record
(:func:`gt_secure.organization.dp_sgd.train_dp_sgd`, unchanged). The trained parameters are the
input embedding table of the TinyLM (the output head is an untied frozen copy): a token's row
then receives gradient only from the examples that contain it, so canary ``k``'s gradient lives
on rows nobody else touches, and rows of tokens that no example contains receive only noise.

Scores, in units of the accumulated noise std (measured on the untouched "floor" rows):
``s_k = <theta_0 - theta_T, u_k> / sigma_hat`` with ``u_k`` the unit direction of canary ``k``'s
gradient at the start. Under the recorded mechanism (q, T, z, C, plain SGD):

* floor: every floor coordinate is ``N(0, T (z C lr / B)^2)``, so ``n sigma_hat^2 / that`` is
  chi-square(n): more steps (or more noise) than recorded shows here (``noise_p``);
* signal: an "out" canary scores ``N(0, 1)``; an "in" canary gains at most ``C`` per inclusion,
  so its mean is at most ``mu = q sqrt(T) / z`` (scale-free): a higher sampling rate, more steps,
  no clipping or no noise shows here (``signal_p``, one-sided z-test on the "in" scores);
* the one-run lower bound of Steinke, Nasr & Jagielski (NeurIPS 2023) on the same scores
  (:func:`~gt_secure.audit.empirical_epsilon.one_run_audit`).

The verdict FAILs when either test rejects at ``alpha`` or the lower bound exceeds the claim.
"""

from __future__ import annotations

import copy
import math
import warnings
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict
from scipy.stats import chi2, norm
from torch import nn

from gt_secure.audit.dp_pipeline import claimed_epsilon
from gt_secure.audit.empirical_epsilon import one_run_audit
from gt_secure.audit.gradient_canary import PlantedBug, plant_bug
from gt_secure.audit.metrics import attack_metrics
from gt_secure.audit.results import AuditResult, verdict
from gt_secure.errors import InvalidFieldError
from gt_secure.organization._opacus import PerExampleLoss
from gt_secure.organization.dp_sgd import DpSgdConfig, train_dp_sgd
from gt_secure.organization.secure_rng import InsecureRandomnessWarning

ATTACK_NAME = "data_path_canary"


class MechanismCheck(BaseModel):
    """The two closed-form checks of a data-path audit against the recorded mechanism."""

    model_config = ConfigDict(frozen=True)
    floor_coordinates: int
    noise_ratio: float  # measured / recorded accumulated noise variance (1 as recorded)
    noise_p: float  # P[chi2(n) / n >= noise_ratio] under the record
    signal_bound: float  # mu = q sqrt(T) / z: the largest mean "in" score the record allows
    signal_mean: float  # mean "in" score
    signal_p: float  # one-sided p-value of signal_mean > signal_bound
    alpha: float

    @property
    def rejects(self) -> bool:
        """Whether either check rejects the recorded mechanism at ``alpha``."""
        return min(self.noise_p, self.signal_p) < self.alpha


def embedding_copy(base: nn.Module) -> nn.Module:
    """A copy of ``base`` whose only trainable tensor is its (untied) input embedding table."""
    model: Any = copy.deepcopy(base)
    for param in model.parameters():
        param.requires_grad = False
    embed = model.get_input_embeddings()
    head = model.get_output_embeddings()
    if head is not None and head.weight is embed.weight:  # untie: the head stays frozen
        head.weight = nn.Parameter(embed.weight.detach().clone(), requires_grad=False)
    embed.weight.requires_grad = True
    return model


def canary_coins(n_canaries: int, seed: int) -> np.ndarray:
    """(m,) the one-run audit's seeded fair coins (True = inserted)."""
    return np.random.default_rng(seed + 1).random(n_canaries) < 0.5


def canary_tokens(used: torch.Tensor, vocab_size: int, n_canaries: int, length: int,
                  seed: int, reserved: int = 4) -> np.ndarray:
    """(m, length) distinct token ids, none in ``used`` nor below ``reserved`` (special ids)."""
    free = np.setdiff1d(np.arange(reserved, vocab_size), used.unique().numpy())
    if free.size < n_canaries * length:
        raise InvalidFieldError("n_canaries", n_canaries, f"<= {free.size // length} "
                                f"({free.size} unused tokens, {length} per canary)")
    rng = np.random.default_rng(seed)
    return rng.choice(free, size=(n_canaries, length), replace=False)


def canary_directions(model: nn.Module, tokens: np.ndarray) -> torch.Tensor:
    """(m, length, d): canary k's unit loss gradient on its own embedding rows at ``model``."""
    ids = torch.as_tensor(tokens)
    weight = model.get_input_embeddings().weight  # type: ignore[operator]
    weight.grad = None
    loss = PerExampleLoss(model)(ids, torch.ones_like(ids), ids).sum()  # rows disjoint: sum ok
    loss.backward()
    grad = weight.grad[ids].detach().clone()  # (m, L, d)
    weight.grad = None
    norms = grad.flatten(1).norm(dim=1).clamp_min(1e-12)  # (m,)
    return grad / norms[:, None, None]


def check_mechanism(delta_rows: torch.Tensor, floor: torch.Tensor, scores: np.ndarray,
                    is_member: np.ndarray, *, recorded_std: float, sample_rate: float,
                    steps: int, noise_multiplier: float, alpha: float) -> MechanismCheck:
    """Closed-form checks of the floor noise and the "in" scores against the record.

    ``delta_rows``: (V, d) parameter change in gradient-sum units; ``floor``: (V,) rows no
    example touched; ``recorded_std``: the recorded per-step noise std ``z C``.
    """
    noise = delta_rows[floor].double().flatten().numpy()  # (n,)
    n = noise.size
    if n < 2:
        raise InvalidFieldError("floor_coordinates", n, ">= 2 (unused embedding rows)")
    recorded_var = steps * recorded_std**2
    ratio = float(np.mean(noise**2) / recorded_var) if recorded_var > 0 else math.inf
    noise_p = float(chi2.sf(ratio * n, n)) if math.isfinite(ratio) else 0.0
    bound = sample_rate * math.sqrt(steps) / noise_multiplier if noise_multiplier > 0 else math.inf
    inside = scores[is_member]
    mean = float(inside.mean())
    if not math.isfinite(mean):
        signal_p = 0.0
    else:
        se = max(float(inside.std(ddof=1)), 1.0) / math.sqrt(inside.size)  # out-std is 1
        signal_p = float(norm.sf((mean - bound) / se))
    return MechanismCheck(floor_coordinates=n, noise_ratio=ratio, noise_p=noise_p,
                          signal_bound=bound, signal_mean=mean, signal_p=signal_p, alpha=alpha)


def append_canaries(data: dict[str, torch.Tensor], tokens: np.ndarray,
                    pad_id: int) -> dict[str, torch.Tensor]:
    """``data`` (N, T) with one example per row of ``tokens`` (M, L) appended (right-padded)."""
    width = max(data["input_ids"].shape[1], tokens.shape[1])

    def pad(x: torch.Tensor, value: int) -> torch.Tensor:
        return nn.functional.pad(x, (0, width - x.shape[1]), value=value)

    ids = torch.as_tensor(tokens, dtype=data["input_ids"].dtype)  # (M, L)
    ones = torch.ones_like(ids)
    return {"input_ids": torch.cat([pad(data["input_ids"], pad_id), pad(ids, pad_id)]),
            "attention_mask": torch.cat([pad(data["attention_mask"], 0), pad(ones, 0)]),
            "labels": torch.cat([pad(data["labels"], -100), pad(ids, -100)])}


def run_data_path_audit(
    base: nn.Module,
    data: dict[str, torch.Tensor],
    run_cfg: DpSgdConfig,
    recorded_cfg: DpSgdConfig,
    *,
    n_canaries: int = 256,
    length: int = 4,
    seed: int = 0,
    pad_id: int = 0,
    alpha: float = 1e-3,
    beta: float = 0.05,
    organization: str = "",
) -> tuple[AuditResult, MechanismCheck]:
    """DP-SGD (``run_cfg``) on ``data`` plus the "in" canaries; audit against ``recorded_cfg``.

    ``data`` must hold the organization's records (N_data, T); the claim and the checks use the
    mechanism ``recorded_cfg`` plans for the dataset actually trained on (records + canaries).
    Both configs must use plain SGD (the change of a row is linear in its noisy gradients).
    """
    for name, cfg in (("run_cfg", run_cfg), ("recorded_cfg", recorded_cfg)):
        if cfg.optimizer != "sgd":
            raise InvalidFieldError(f"{name}.optimizer", cfg.optimizer, "'sgd'")
    model = embedding_copy(base)
    vocab = int(model.get_input_embeddings().weight.shape[0])  # type: ignore[operator]
    tokens = canary_tokens(torch.cat([data["input_ids"].flatten(), torch.tensor([pad_id])]),
                           vocab, n_canaries, length, seed)
    coins = canary_coins(n_canaries, seed)
    train = append_canaries(data, tokens[coins], pad_id)
    n_examples = len(train["input_ids"])
    mechanism, claim = claimed_epsilon(recorded_cfg, n_examples)
    directions = canary_directions(model, tokens)  # (m, L, d)
    before = model.get_input_embeddings().weight.detach().clone()  # type: ignore[operator]
    with warnings.catch_warnings():  # seeded audit run; a planted zero noise
        warnings.simplefilter("ignore", InsecureRandomnessWarning)
        warnings.filterwarnings("ignore", message="Optimal order is the")
        train_dp_sgd(model, train, run_cfg)  # type: ignore[arg-type]
    after = model.get_input_embeddings().weight.detach()  # type: ignore[operator]
    expected_batch = n_examples * mechanism.sample_rate  # the recorded divisor B
    delta_rows = (before - after) * expected_batch / recorded_cfg.lr  # (V, d) gradient sums
    touched = torch.zeros(vocab, dtype=torch.bool)
    touched[train["input_ids"].flatten()] = True
    touched[torch.as_tensor(tokens).flatten()] = True
    floor = ~touched
    floor[:4] = False  # special ids
    sigma_hat = float(delta_rows[floor].double().pow(2).mean().sqrt())
    raw = (delta_rows[torch.as_tensor(tokens)] * directions).sum(dim=(1, 2)).double().numpy()
    scores = raw / sigma_hat if sigma_hat > 0 else np.sign(raw) * 1e12  # no noise: (m,)
    check = check_mechanism(delta_rows, floor, scores, coins,
                            recorded_std=mechanism.noise_multiplier * mechanism.clip_norm,
                            sample_rate=mechanism.sample_rate, steps=mechanism.steps,
                            noise_multiplier=mechanism.noise_multiplier, alpha=alpha)
    bound = one_run_audit(scores, coins, delta=recorded_cfg.delta, beta=beta)
    decided = "FAIL" if check.rejects else verdict(bound.epsilon, claim)
    result = AuditResult(
        organization=organization, attack=ATTACK_NAME, metrics=attack_metrics(scores, coins),
        empirical_epsilon=bound, claimed_epsilon=claim, delta=recorded_cfg.delta,
        verdict=decided, canary_seed=seed, split_seed=seed + 1, n_canaries=n_canaries,
        scores=[float(s) for s in scores], is_member=[bool(c) for c in coins])
    return result, check


# Nominal data-path audit run: N = 256 examples (hospital records + "in" canaries) at B = 32
# (q = 1/8), 3 epochs = 24 plain-SGD steps, epsilon 1 at delta 1e-5, seeded for reproducible CI.
# C = 0.1 sits below the canaries' gradient norms, so every inclusion is clipped.
DATA_PATH_DP_SGD = DpSgdConfig(target_epsilon=1.0, delta=1e-5, max_grad_norm=0.1,
                               batch_size=32, epochs=3, lr=1.0, optimizer="sgd",
                               max_length=64, secure_mode=False, seed=0)


def audit_org_data_path(
    org: str = "hospital",
    n_examples: int = 256,
    cfg: DpSgdConfig = DATA_PATH_DP_SGD,
    *,
    bug: PlantedBug | None = None,
    n_canaries: int = 256,
    length: int = 4,
    seed: int = 0,
    alpha: float = 1e-3,
    beta: float = 0.05,
) -> tuple[AuditResult, MechanismCheck]:
    """Data-path audit of the organization's DP-SGD on ``org``'s records of the shipped TinyLM.

    The dataset is ``n_examples`` long: the "in" canaries and the first ``n_examples - #in``
    training records of ``org``. The claim is ``cfg``'s; ``bug`` plants a deviation in the run
    (:func:`~gt_secure.audit.gradient_canary.plant_bug`). ``seed`` drives the canary tokens, the
    coins and, unless ``cfg`` is in secure mode, the DP-SGD run (sampling and noise).
    """
    if not cfg.secure_mode:
        cfg = DpSgdConfig.model_validate({**cfg.model_dump(), "seed": seed})
    from gt_secure.data.organizations import org_texts
    from gt_secure.models.loading import load_base
    from gt_secure.models.scoring import encode

    base, tokenizer = load_base("tinylm")
    n_in = int(canary_coins(n_canaries, seed).sum())
    if not 1 <= n_in < n_examples:
        raise InvalidFieldError("n_examples", n_examples, f"> {n_in} (the 'in' canaries)")
    data = encode(tokenizer, org_texts(org, "train", n_examples - n_in),
                  max_length=cfg.max_length)
    return run_data_path_audit(
        base, data, plant_bug(cfg, n_examples, bug), cfg, n_canaries=n_canaries,
        length=length, seed=seed, pad_id=int(tokenizer.pad_token_id or 0), alpha=alpha,
        beta=beta, organization=f"{org}: {bug or 'as claimed'}")
