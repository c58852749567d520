"""White-box per-step audit of Poisson-subsampled DP-SGD: canary records, every noisy step seen.

Under subsampling the final model alone cannot give a tight bound (the last iterate hides which
steps a canary was in), so this auditor sees every step, the threat model of DP-SGD's analysis.

* Canaries are *records of the dataset*: each "in" canary ``k`` (seeded fair coin) is a 3-token
  example ``[MARK, a_k, b_k]`` appended to the organization's texts, so Opacus's real Poisson
  sampler draws it (probability ``q`` per step, independently) and the real loop counts it. Its
  per-example gradient is crafted (the white-box adversary of Nasr et al. 2021/2023): in
  ``before_step`` its row of every ``p.grad_sample`` becomes a Dirac of norm ``grad_norm >> C``
  on its own ``lora_A`` coordinate; Opacus then clips it to ``C``, sums, adds ``N(0, (z C)^2)``,
  divides by the expected batch size ``B`` and steps (all real Opacus).
* The observation is Opacus's noisy gradient of each step, read by a step pre-hook of the
  wrapped SGD optimizer (after the noise, before the update): ``x_t[k] = grad[k] * B / C``, in
  units of the clip norm: ``N(0, z^2)`` without canary ``k``, ``N(1, z^2)`` with it.
* The score is the log-likelihood ratio of "in" vs "out" given the ``T`` observations, optimal
  (Neyman-Pearson) for each canary: an "in" canary is in step ``t`` with probability ``q``, so
  ``p_in(x) = (1 - q) N(x; 0, z^2) + q N(x; 1, z^2)`` and, with
  ``N(x; 1, z^2) / N(x; 0, z^2) = exp((2 x - 1) / (2 z^2))`` and independent steps,
  ``score_k = sum_t log(1 - q + q exp((2 x_t[k] - 1) / (2 z^2)))``, z the *recorded* noise.
* The bound is the f-DP one-run bound (:func:`~gt_secure.audit.fdp_one_run.fdp_one_run_audit`)
  with the mechanism's true curve, the composed subsampled Gaussian at the recorded (q, T)
  (:class:`~gt_secure.audit.subsampled_curve.SubsampledGaussianFamily`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from gt_secure.audit.dp_pipeline import claimed_epsilon as claim_of
from gt_secure.audit.dp_pipeline import with_noise
from gt_secure.audit.empirical_epsilon import one_run_audit
from gt_secure.audit.fdp_one_run import fdp_one_run_audit
from gt_secure.audit.gradient_canary import GradientCanaries, make_gradient_canaries, trainable
from gt_secure.audit.metrics import attack_metrics
from gt_secure.audit.results import AuditResult, verdict
from gt_secure.audit.subsampled_curve import SubsampledGaussianFamily
from gt_secure.errors import InvalidFieldError
from gt_secure.organization.dp_sgd import DpSgdConfig, PrivateTraining, train_dp_sgd
from gt_secure.organization.secure_rng import InsecureRandomnessWarning

ATTACK_NAME = "step_canary"
MARK, FIRST, SPAN = 3, 4, 4000  # canary record k: [MARK, FIRST + k // SPAN, FIRST + k % SPAN]


def canary_records(canaries: GradientCanaries, width: int) -> dict[str, torch.Tensor]:
    """The "in" canaries as examples: input_ids/attention_mask/labels, each (M, width)."""
    ks = torch.tensor([k for k, m in enumerate(canaries.is_member) if m])  # (M,)
    if len(canaries.coords) > SPAN * SPAN:
        raise InvalidFieldError("n_canaries", len(canaries.coords), f"<= {SPAN * SPAN}")
    ids = torch.zeros((len(ks), width), dtype=torch.long)  # (M, width), 0 = padding
    ids[:, 0], ids[:, 1], ids[:, 2] = MARK, FIRST + ks // SPAN, FIRST + ks % SPAN
    mask = torch.zeros_like(ids)
    mask[:, :3] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}


class StepObserver:
    """``before_step`` hook: craft the sampled canary records' gradients, then see each step.

    ``x`` collects ``x_t`` (m,) per step; ``sampled[t]`` the canaries Opacus drew at step t.
    """

    def __init__(self, model: nn.Module, canaries: GradientCanaries, clip: float) -> None:
        params = trainable(model)
        self.canaries, self.clip = canaries, clip
        self.param_ids = {id(p): i for i, p in enumerate(params.values())}
        names = list(params)
        self.owner = torch.tensor([names.index(n) for n in canaries.params])  # (m,)
        self.coords = torch.tensor(canaries.coords)  # (m,)
        self.params = list(params.values())
        starts = np.cumsum([0] + [p.numel() for p in self.params])[:-1]  # (P,)
        self.flat_index = torch.as_tensor(starts)[self.owner] + self.coords  # (m,)
        self.x: list[np.ndarray] = []
        self.sampled: list[np.ndarray] = []
        self._ids = torch.zeros((0, 3), dtype=torch.long)
        self._hooked = False
        model.get_input_embeddings().register_forward_pre_hook(self._see_ids)  # type: ignore[operator]

    def _see_ids(self, _module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        self._ids = args[0].detach()  # (B, w): the batch's input_ids

    def _observe(self, *_: object) -> None:
        grad = torch.cat([p.grad.reshape(-1) if p.grad is not None else torch.zeros(p.numel())
                          for p in self.params])  # (n,) the noisy averaged gradient
        self.x.append(grad[self.flat_index].double().numpy() * self._batch / self.clip)

    def __call__(self, training: PrivateTraining) -> None:
        if not self._hooked:  # the wrapped SGD steps after Opacus clipped, noised and scaled
            training.optimizer.original_optimizer.register_step_pre_hook(self._observe)
            self._hooked = True
        self._batch = float(training.optimizer.expected_batch_size)
        ids = self._ids if len(self._ids) else torch.zeros((0, 3), dtype=torch.long)
        rows = (ids[:, 0] == MARK).nonzero().squeeze(1)  # (R,) canary rows of this batch
        ks = (ids[rows, 1] - FIRST) * SPAN + (ids[rows, 2] - FIRST)  # (R,)
        self.sampled.append(ks.numpy())
        self._ids = torch.zeros((0, 3), dtype=torch.long)
        for p in training.optimizer.params:
            grad_sample = p.grad_sample  # (B, *p.shape), or a list of those
            if isinstance(grad_sample, list):
                grad_sample = torch.cat(grad_sample)
            flat = grad_sample.reshape(len(grad_sample), -1)  # (B, n)
            flat[rows] = 0.0
            mine = (self.owner[ks] == self.param_ids[id(p)]).nonzero().squeeze(1)  # (R_p,)
            flat[rows[mine], self.coords[ks[mine]]] = self.canaries.grad_norm
            p.grad_sample = flat.view_as(grad_sample)


def llr_scores(x: np.ndarray, q: float, z: float) -> np.ndarray:
    """``sum_t log(1 - q + q exp((2 x_t - 1) / (2 z^2)))`` of observations x (T, m): (m,)."""
    if not (0.0 < q <= 1.0 and z > 0):
        raise InvalidFieldError("(q, z)", (q, z), "q in (0, 1], z > 0")
    u = (2.0 * x - 1.0) / (2.0 * z * z)  # (T, m)
    if q == 1.0:
        return np.asarray(u.sum(axis=0))
    return np.asarray(np.logaddexp(math.log1p(-q), math.log(q) + u).sum(axis=0))


def run_step_canary_audit(
    model: nn.Module,
    data: Mapping[str, torch.Tensor],
    cfg: DpSgdConfig,
    *,
    n_canaries: int,
    seed: int = 0,
    beta: float = 0.05,
    grad_norm: float = 100.0,
    noise_off: bool = False,
    guess_grid: Sequence[tuple[int, int]] | None = None,
    organization: str = "",
) -> tuple[AuditResult, dict[str, float]]:
    """DP-SGD of ``model`` on ``data`` (N, w) plus the "in" canary records; f-DP one-run bound.

    ``cfg.batch_size`` is the expected batch size of the data *with* the canary records. The
    claim is ``cfg``'s ledger epsilon on that dataset; ``noise_off`` runs with z = 0 (positive
    control) while the score and the curve keep the recorded z. Returns the result and extras:
    the (epsilon, delta) one-run bound on the same scores, q, T, z, sampled-per-step mean.
    """
    if cfg.optimizer != "sgd":
        raise InvalidFieldError("optimizer", cfg.optimizer, "'sgd' (plain noisy-gradient steps)")
    if bool((data["input_ids"][:, 0] == MARK).any()):
        raise InvalidFieldError("data", f"a record starting with token {MARK}",
                                "no record starting with the canary mark")
    canaries = make_gradient_canaries(model, n_canaries, seed, grad_norm, "lora_A")
    extra = canary_records(canaries, data["input_ids"].shape[1])
    full = {key: torch.cat([data[key], extra[key]]) for key in ("input_ids", "attention_mask",
                                                                "labels")}
    n = len(full["input_ids"])
    mechanism, claim = claim_of(cfg, n)
    q, steps, z = mechanism.sample_rate, mechanism.steps, mechanism.noise_multiplier
    observer = StepObserver(model, canaries, cfg.max_grad_norm)
    with warnings.catch_warnings():  # seeded audit run; planted zero noise
        warnings.simplefilter("ignore", InsecureRandomnessWarning)
        warnings.filterwarnings("ignore", message="Optimal order is the")
        train_dp_sgd(model, full, with_noise(cfg, 0.0 if noise_off else z),  # type: ignore[arg-type]
                     before_step=observer)
    if len(observer.x) != steps:
        raise InvalidFieldError("steps observed", len(observer.x), f"{steps} as planned")
    scores = llr_scores(np.stack(observer.x), q, z)  # (m,)
    labels = canaries.is_member
    family = SubsampledGaussianFamily(q, steps)
    bound = fdp_one_run_audit(scores, labels, family, delta=cfg.delta, beta=beta,
                              guess_grid=guess_grid, points=3)
    eps_delta = one_run_audit(scores, labels, delta=cfg.delta, beta=beta, guess_grid=guess_grid)
    result = AuditResult(
        organization=organization, attack=ATTACK_NAME, metrics=attack_metrics(scores, labels),
        empirical_epsilon=bound, claimed_epsilon=claim, delta=cfg.delta,
        verdict=verdict(bound.epsilon, claim), canary_seed=seed, split_seed=seed,
        n_canaries=n_canaries, scores=[float(s) for s in scores], is_member=labels)
    sampled = float(np.mean([len(s) for s in observer.sampled]))
    return result, {"eps_delta_one_run": eps_delta.epsilon, "sample_rate": q, "steps": steps,
                    "noise_multiplier": z, "true_epsilon_pld": family.epsilon(1.0 / z, cfg.delta),
                    "canaries_sampled_per_step": sampled, "n_examples": n}
