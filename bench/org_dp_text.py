"""The opening paragraphs of bench/org_dp.py's docs section: what was run and how to read it."""

from __future__ import annotations

import argparse


def intro(args: argparse.Namespace) -> list[str]:
    """The section's heading and the paragraphs that say what was run."""
    return [
        "## Organization-level DP", "",
        f"`nice -n 10 python -m bench.org_dp` ({args.texts} records and {args.steps} plain LoRA "
        f"steps per organization, {args.eval} validation texts per family, {args.seeds} "
        f"independent noise draws per setting at k = {args.k}, more at the settings near the "
        "low-epsilon cliff (30 orgs epsilon 1, 10 orgs epsilon 2 and 1: appended to the cached "
        "draws by `--append` runs; the draws column; older rows of other k kept from earlier "
        "runs have 3), 2-core shared machine). One round; "
        "organization-level epsilon at delta 1e-5 (RDP). Organizations release the k "
        "coordinates of their update in the provider's public basis (top principal directions "
        "of public TinyLM updates, shipped with the translator), clipped in the k-space to the "
        "published public clip norm C_k. distributed = discrete Gaussian shares inside Flower "
        "SecAgg+ (16 bits), each share of std z C / sqrt(min_survivors) (no colluders assumed); "
        "central = a trusted aggregator adding Gaussian noise calibrated to the same epsilon to "
        "the exact sum of the organizations it receives; none = no noise (k = 2048: the full "
        "update of all n organizations, the reference of every gain fraction). In every "
        "setting 30% of the organizations (round(0.3 n)) drop, either after masking (they die "
        "at UNMASK: their masked vectors are already in the sum) or before masking (they never "
        "send their masked vectors; central then sums the same surviving 0.7 n organizations). "
        "Checked in each round: the after-masking round sums all n vectors (the dying "
        "organizations are in Flower's active list at UNMASK, so the organizations' survivor "
        "guard sees n), the before-masking round 0.7 n, each with round(0.3 n) failed "
        "organizations (the bench stops otherwise).",
        "",
        "Configurations. min_survivors=n: shares sized for all n organizations; it tolerates "
        "drops after masking at no noise cost (every share is in the sum: exactly the target "
        "variance), but a drop before masking aborts the release (the survivor guard refuses "
        "UNMASK: nothing is released; the check rows below ran it). min_survivors=0.7n: shares "
        "sized for 0.7 n survivors; it tolerates both, at a 1/0.7 noise-variance cost (std "
        "x1.2) when the drops come after masking (all n shares reach the sum), and at no cost "
        "when they come before. Removable excess noise (XNoise-style: each organization adds "
        "noise sized for the worst-case drops from secret-shared seeds, and the excess is "
        "removed once the survivors are known) is what would give both; it is not built. "
        "SecAgg+'s reconstruction threshold is 0.7 n in both configurations (the UNMASK "
        "replies Flower needs), passed to gt_secure's run_ddp_round apart from min_survivors "
        "(its `threshold` argument; a protocol spec pins it in `[secagg] "
        "reconstruction_threshold`, which the server app uses); run_ddp_round's default, "
        "min(min_survivors, n - 1), survives only one drop after masking with min_survivors = "
        "n (the threshold check below).", "",
        "Verdicts are on the means over the draws: within 10% = distributed's mean gain "
        "fraction at most 10% (relative) below central's at the same n, epsilon and drop stage "
        "(one-sided); undefined where central's mean gain is <= 0 (nothing to be within 10% "
        "of). Near the low-epsilon cliff the gain fraction is heavy-tailed (single draws lose "
        "hundreds of perplexity points), so each comparison gives both means with their "
        "standard errors, the relative gap with its standard error (delta method, independent "
        "draws) and a 95% percentile bootstrap interval (10,000 resamples of each side's "
        "draws), and says where that interval lies against the 10% margin; the noise L2 ratio "
        "of the two mechanisms is the sharper comparison of the mechanisms themselves.", "",
        "LLM = the shipped translator applied to the reconstructed aggregate. round s / bytes: "
        "a Flower round releasing one k-dim min_survivors=n block alone (3/10/30 orgs; round "
        "times depend on the shared machine's load); the LLM is scored for the first 3 draws of "
        "each setting. Reproduce: `python -m bench.org_dp --no-write` (k 16, every n, both "
        "configurations and drop stages); the k sweep (10 and 100 orgs, epsilon 4) and the "
        "k = 32 rows (3 draws, min_survivors=0.7n, drop after masking) are kept from the "
        "previous version of this bench (commit 2c390e3: `--sweep-orgs 10 100 --seeds 3` and "
        "`--k 32 --sweep-orgs --measure-orgs --seeds 3`); then "
        "`python -m bench.org_dp --append --orgs 30 --eps 1 --seeds 200` (likewise `--orgs 10 "
        "--eps 2` and `--orgs 10 --eps 1`; each run appends its draws to the cache, seeds "
        "numbered after the cached ones, central noise from a generator seeded by n and the "
        "first seed), then `python -m bench.org_dp --reuse` (merges every k cached per n under "
        "runs/org_dp/)."]
