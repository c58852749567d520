"""How tight the white-box audit is on a *correct* pipeline: its lower bound at a large claim.

A bug detector only has to beat the claim; a tight audit's lower bound on a correct run should
approach it. The setting that lets one run do that (Nasr et al., USENIX Security 2023; Steinke
et al. 2023; Mahloujifar et al. 2025): Dirac gradient canaries on dedicated coordinates (no
interference between canaries), the white-box score that is optimal for Gaussian noise (the sum
over steps of the canary coordinate's noisy gradient, read off the final SGD model), full-batch
DP-SGD (sample rate 1, so the canary's trade-off curve is exactly Gaussian, ``mu = sqrt(T) / z``)
and the Gaussian-DP one-run bound (:mod:`gt_secure.audit.gdp_one_run`) on 8000 canaries:
a LoRA rank-16 adapter has 8192 ``lora_A`` coordinates. The run is the organization's real Opacus
DP-SGD (:func:`~gt_secure.audit.gradient_canary.audit_org_dp_sgd`); the claim its ledger epsilon.

Poisson-subsampled DP-SGD (q < 1) is not Gaussian-DP and its final model hides which steps a
canary was in: :func:`audit_subsampled_tightness` observes every noisy step
(:mod:`gt_secure.audit.step_canary`) and bounds with the subsampled Gaussian's own curve.
"""

from __future__ import annotations

from gt_secure.audit.empirical_epsilon import EpsilonBound, one_run_audit
from gt_secure.audit.gdp_one_run import gdp_one_run_audit
from gt_secure.audit.gradient_canary import PlantedBug, audit_org_dp_sgd, make_gradient_canaries
from gt_secure.audit.results import AuditResult
from gt_secure.errors import InvalidFieldError
from gt_secure.ledger.accountant import AccountantName
from gt_secure.organization.dp_sgd import DpSgdConfig
from gt_secure.update.layout import LoraSpec

TIGHT_LORA = LoraSpec(r=16)  # 16 x 64 lora_A per q/v projection: 8192 canary coordinates
# 64 texts at B = 64 (sample rate 1), 8 plain-SGD steps; the target epsilon is set per audit.
TIGHT_DP_SGD = DpSgdConfig(target_epsilon=8.0, delta=1e-5, max_grad_norm=1.0, batch_size=64,
                           steps=8, lr=1e-2, optimizer="sgd", max_length=64, secure_mode=False,
                           seed=0)
TIGHT_N_TEXTS = 64
# Guess the top and bottom f/2 of the canaries for each f (fixed before scoring, Bonferroni).
TIGHT_GUESS_FRACTIONS: tuple[float, ...] = (0.02, 0.05, 0.1, 0.2)


def fraction_guess_grid(m: int, fractions: tuple[float, ...] = TIGHT_GUESS_FRACTIONS
                        ) -> list[tuple[int, int]]:
    """``(k_pos, k_neg)`` guessing ``round(f m)`` canaries, half each side, per fraction ``f``."""
    if m < 2 or not all(0.0 < f <= 1.0 for f in fractions):
        raise InvalidFieldError("fractions", fractions, "in (0, 1] with m >= 2 canaries")
    grid: list[tuple[int, int]] = []
    for f in fractions:
        r = max(2, round(f * m))
        if (r - r // 2, r // 2) not in grid:
            grid.append((r - r // 2, r // 2))
    return grid


def audit_tightness(
    epsilon: float = 8.0,
    *,
    accountant: AccountantName = "rdp",
    n_canaries: int = 8000,
    seed: int = 0,
    bug: PlantedBug | None = None,
    beta: float = 0.05,
) -> tuple[AuditResult, EpsilonBound]:
    """Full-batch DP-SGD claimed at ``epsilon`` (ledger ``accountant``), ``n_canaries`` canaries.

    Returns the Gaussian-DP audit result and, on the same scores and guess grid, the (epsilon,
    delta) one-run bound of Steinke et al. for comparison. ``bug`` plants a deviation
    (:func:`~gt_secure.audit.gradient_canary.plant_bug`; its steps/sampling bugs would leave
    sample rate 1 or the claim's plan, so the positive control is ``"noise_off"``).
    """
    cfg = TIGHT_DP_SGD.model_copy(update={"target_epsilon": epsilon, "accountant": accountant,
                                          "seed": seed})
    grid = fraction_guess_grid(n_canaries)
    result = audit_org_dp_sgd(n_texts=TIGHT_N_TEXTS, cfg=cfg, bug=bug, n_canaries=n_canaries,
                              seed=seed, beta=beta, lora=TIGHT_LORA, bound="gdp",
                              guess_grid=grid)
    eps_delta = one_run_audit(result.scores, result.is_member, delta=cfg.delta, beta=beta,
                              guess_grid=grid)
    return result, eps_delta


def gdp_ceiling(result: AuditResult) -> float:
    """The Gaussian-DP bound were every canary ranked right, on the tightness guess grid."""
    labels = result.is_member
    bound = result.empirical_epsilon
    return gdp_one_run_audit([float(y) for y in labels], labels, delta=bound.delta,
                             beta=bound.beta, guess_grid=fraction_guess_grid(len(labels))).epsilon


# Poisson-subsampled DP-SGD (q = 1/2, T = 64) with the per-step white-box audit: 16000 canary
# records on the lora_A coordinates of a rank-32 adapter (16384), the f-DP one-run bound with the
# composed subsampled Gaussian's curve. Chosen by simulating the exact mechanism with the optimal
# score (tests/audit/test_subsampled_curve.py): at claim 8, T in {2, 4, 8, 16} or q = 1/4, 1/8
# at 8000 canaries stay below 4; q = 1/2, T = 64 with 16000 canaries reaches it.
# Texts cut to 4 tokens: each step's cost is the forward/backward of ~4000 rows (the canary records
# are real batch rows) and the audit measures the mechanism (q, T, z, C), not the text length.
SUBSAMPLED_LORA = LoraSpec(r=32)
SUBSAMPLED_DP_SGD = TIGHT_DP_SGD.model_copy(update={"steps": 64, "max_length": 4})
SUBSAMPLED_RATE_DIVISOR = 2  # q = 1 / ceil(N / B) = 1/2


def audit_subsampled_tightness(
    epsilon: float = 8.0,
    *,
    accountant: AccountantName = "rdp",
    n_canaries: int = 16000,
    seed: int = 0,
    noise_off: bool = False,
    steps: int | None = None,
    lora: LoraSpec = SUBSAMPLED_LORA,
    beta: float = 0.05,
) -> tuple[AuditResult, dict[str, float]]:
    """Per-step white-box audit of Poisson-subsampled DP-SGD (q = 1/2) claimed at ``epsilon``.

    :func:`~gt_secure.audit.step_canary.run_step_canary_audit` on a fresh TinyLM LoRA and the
    hospital's first 64 texts plus the "in" canary records; ``noise_off`` is the positive control.
    """
    import math

    from gt_secure.audit.step_canary import run_step_canary_audit
    from gt_secure.data.organizations import org_texts
    from gt_secure.models.scoring import encode
    from gt_secure.provider.adapter import fresh_lora

    model, _, _, tokenizer = fresh_lora("tinylm", lora)
    cfg = SUBSAMPLED_DP_SGD.model_copy(update={"target_epsilon": epsilon, "seed": seed,
                                               "accountant": accountant,
                                               "steps": steps or SUBSAMPLED_DP_SGD.steps})
    data = encode(tokenizer, org_texts("hospital", "train", TIGHT_N_TEXTS),
                  max_length=cfg.max_length)
    members = sum(make_gradient_canaries(model, n_canaries, seed, match="lora_A").is_member)
    n = TIGHT_N_TEXTS + members
    cfg = cfg.model_copy(update={"batch_size": math.ceil(n / SUBSAMPLED_RATE_DIVISOR)})
    return run_step_canary_audit(model, data, cfg, n_canaries=n_canaries, seed=seed, beta=beta,
                                 noise_off=noise_off, guess_grid=fraction_guess_grid(n_canaries),
                                 organization="hospital: " + ("noise_off" if noise_off
                                                              else "as claimed"))
