"""Organization-level DP at 3-100 organizations: distributed discrete Gaussian inside Flower SecAgg+
vs central Gaussian at the same epsilon, releasing ``k`` coordinates in the provider's public
basis (issue 13, items 3 and 4).

Organizations: bench/org_dp_data.py (own faker seeds, three public families, plain TinyLM LoRA
fine-tunes). Each releases the ``k`` coordinates of its update in the public basis
(:mod:`gt_secure.provider.public_basis`), clipped to the published public clip norm ``C_k``
(median k-space norm of held-out public updates) in the ``k``-space; the provider
reconstructs ``V^T mean`` for the aggregated TinyLM and translates it with the shipped translator
for the LLM. Per ``(n, epsilon)``, ``epsilon`` the organization-level epsilon of the round at
delta 1e-5 (RDP):

- ``distributed``: Flower's simulation engine, SecAgg+ (bench/org_dp_round.py), 16 bits, shares
  sized for ``min_survivors`` organizations (ledger KLS21 epsilon <= target), in two
  configurations, ``min_survivors = n`` and ``min_survivors = n - round(0.3 n)``, with
  ``round(0.3 n)`` organizations dropping either after masking (they die at UNMASK: their masked
  vectors are in the sum) or, for ``0.7 n``, before masking (they never send them; with
  ``min_survivors = n`` such a round releases nothing, which ``--abort-orgs`` checks);
- ``central``: a trusted aggregator adds ``N(0, (z C)^2 I_k)`` (Gaussian ``z`` calibrated to the
  same epsilon) to the exact sum of the same clipped coordinates of the organizations it
  receives (all ``n`` after masking, the survivors before);
- ``none``: no noise, in the basis (``k``) and in the full space (``k = d``: the reference of the
  gain fractions).

Gain fraction = (ppl_base - ppl) / (ppl_base - ppl_none_full) at the same ``n``, mean perplexity
over the three families' organization validation texts (TinyLM: the aggregated update; LLM: the
translated one). Every setting is averaged over ``--seeds`` independent noise draws (std
reported); ``--append`` adds more draws of chosen ``(n, epsilon)`` to the cache (standard
errors and bootstrap intervals: bench/org_dp_stats.py). The distributed blocks of all
settings of one ``n`` and drop stage ride in one Flower round (each with its own parameters,
decoded apart; a deployment releases one); ``round_s`` and ``bytes_per_org`` come from a
separate Flower round that releases one ``k``-dim block alone.

    python -m bench.org_dp            # writes docs/benchmarks.md and docs/results/org_dp.json
    python -m bench.org_dp --append --orgs 30 --eps 1 --seeds 100   # more draws, then --reuse
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.docs import write_results, write_section
from bench.org_dp_data import CACHE, eval_texts, org_updates
from bench.org_dp_report import aggregate, section, target_rows
from bench.org_dp_round import Block, flower_round
from bench.org_dp_stats import LEVEL, MARGIN, RESAMPLES
from bench.org_dp_text import intro
from gt_secure.aggregation.ddp import DdpParams
from gt_secure.aggregation.ddp_basis import PublicBasis
from gt_secure.ledger.accountant import noise_multiplier_for
from gt_secure.models.scoring import perplexity
from gt_secure.organization.vector_dp import clip_l2
from gt_secure.provider.adapter import adapted_model, fresh_lora
from gt_secure.provider.public_basis import load_public_basis, published_clip
from gt_secure.provider.service import load_translator
from gt_secure.update import UpdateVector

DELTA, BITS, DROP = 1e-5, 16, 0.3
DATA_FIELDS = ("orgs", "signal_l2", "ppl_base", "ppl", "llm_ppl_base", "llm_ppl")
TEXT_FIELDS = ("texts", "steps", "eval", "seeds", "k", "orgs", "eps")
ROUND_FIELDS = ("orgs", "epsilon", "k", "bits", "dropout", "min_survivors", "drop_stage",
                "threshold", "summed", "round_s", "bytes_per_org", "batched_round_s")


def ddp_params(eps: float, n: int, survivors: int, basis: PublicBasis | None, dim: int,
               clip: float) -> DdpParams:
    """Grid whose ledger (KLS21) epsilon is <= ``eps``, recording ``basis`` when given."""
    record = basis.release_record() if basis is not None else None
    return DdpParams.for_epsilon(eps, clip, dim, n, survivors, 0, BITS, basis=record)


class Scorer:
    """Perplexity of the aggregated TinyLM and of its translation, per full-space mean update."""

    def __init__(self, n_eval: int) -> None:
        base, _, self.layout, self.tok = fresh_lora("tinylm")
        self.evals = eval_texts(n_eval)
        self.translator = load_translator()
        llm_base, _, _, _ = fresh_lora("llm")
        self.base = (self._ppl(base), self._ppl(llm_base))

    def _ppl(self, model: torch.nn.Module) -> float:
        return float(np.mean([perplexity(model, self.tok, t) for t in self.evals]))

    def __call__(self, mean: np.ndarray, llm: bool) -> tuple[float, float | None]:
        update = UpdateVector(self.layout, mean.astype(np.float32))
        tiny = self._ppl(adapted_model(update))
        return tiny, (self._ppl(adapted_model(self.translator.translate(update))) if llm
                      else None)


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    full = load_public_basis(max(args.k_sweep))
    scorer = Scorer(args.eval)
    all_updates = org_updates(max(args.orgs), args.texts, args.steps)
    draws: list[dict[str, Any]] = []
    for n in args.orgs:
        path = CACHE / f"draws_{n}_k{args.k}.json"
        if args.reuse and path.exists():
            draws += [d for p in sorted(CACHE.glob(f"draws_{n}_k*.json"))
                      for d in json.loads(p.read_text())]  # every k measured at n
            continue
        old = json.loads(path.read_text()) if path.exists() else []
        if args.append:  # more draws of the cached settings: seeds numbered after theirs
            first = 1 + max((d["seed"] for d in old if d["k"] == args.k
                             and d["epsilon"] in args.eps), default=-1)
            got = run_orgs(n, list(all_updates[:n]), full, scorer, args, first)
            path.write_text(json.dumps(old + [d for d in got if d["mode"] != "none"]))
        else:
            got = run_orgs(n, list(all_updates[:n]), full, scorer, args)
            new = {(d["k"], d["epsilon"]) for d in got}  # other settings (a k sweep) are kept
            path.write_text(json.dumps([d for d in old if (d["k"], d["epsilon"]) not in new]
                                       + got))
        draws += [d for p in sorted(CACHE.glob(f"draws_{n}_k*.json"))
                  for d in json.loads(p.read_text())]
    return aggregate(draws)


def _round(updates: list[np.ndarray], blocks: list[Block], dropped: set[int], stage: str,
           threshold: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = flower_round(updates, blocks, dropped, Path(tmp), stage, threshold)
    print(f"  {len(updates)} orgs, {len(blocks)} blocks, {stage}, guard {out['guard']}, "
          f"threshold {threshold}: released {out['released']}, {out['summed']} vectors summed, "
          f"{out['failures']} failures, {out['round_s']:.1f} s", flush=True)
    return out


def run_orgs(n: int, updates: list[np.ndarray], full: PublicBasis, scorer: Scorer,
             args: argparse.Namespace, first: int = 0) -> list[dict[str, Any]]:
    """Every draw at ``n`` organizations (seeds ``first``, ...): one batched Flower round per
    drop stage (every ``(epsilon, seed)`` block of every configuration), and the checks of
    ``args``."""
    # central noise (independent of the organizations' shares and of earlier runs' draws)
    rng = np.random.default_rng(n if first == 0 else [n, first])
    m = n - round(DROP * n)  # organizations left after the drop; SecAgg+ threshold
    dropped = set(range(m, n))
    ref = np.mean([clip_l2(u, published_clip(u.size)) for u in updates], axis=0)
    common = {"orgs": n, "bits": None, "dropout": 0.0, "round_s": None, "min_survivors": None,
              "bytes_per_org": None, "signal_l2": float(np.linalg.norm(ref)),
              "ppl_base": scorer.base[0], "llm_ppl_base": scorer.base[1]}
    # (epsilon, k, seed, min_survivors, drop stage) of every distributed block
    main = [(e, args.k, s) for e in args.eps for s in range(first, first + args.seeds)]
    sweep = [(args.sweep_eps, k, s) for k in [*args.k_sweep, 0] for s in range(args.seeds)
             if k != args.k] if n in args.sweep_orgs else []
    settings = {"after_masking": [(*t, ms) for t in main for ms in (n, m)]
                + [(*t, n) for t in sweep], "before_masking": [(*t, m) for t in main]}
    blocks = {stage: [Block(ddp_params(e, n, ms, full.truncate(k) if k else None,
                                       k or ref.size, published_clip(k or ref.size)),
                            full.truncate(k) if k else None) for e, k, _, ms in sets]
              for stage, sets in settings.items()}
    outs = {stage: _round(updates, blocks[stage], dropped, stage, m) for stage in settings}
    for stage, out in outs.items():  # the 30% are (after) / are not (before) in the sum
        want = n if stage == "after_masking" else m
        if not out["released"] or out["summed"] != want or out["failures"] != n - m:
            raise RuntimeError(f"{stage} round: {out} (expected {want} vectors summed)")
    alone = (_round(updates, blocks["after_masking"][:1], dropped, "after_masking", m)
             if n in args.measure_orgs else {})
    checks = [{"orgs": n, "check": "min_survivors=n, drop before masking", "stage":
               "before_masking", "threshold": m, "released": _round(
                   updates, blocks["after_masking"][:1], dropped, "before_masking",
                   m)["released"]}] if n in args.abort_orgs else []
    if n in args.threshold_orgs:  # run_ddp_round's default threshold min(min_survivors, n - 1)
        checks.append({"orgs": n, "check": "min_survivors=n, run_ddp_round's default threshold "
                       "n-1, drop after masking",
                       "stage": "after_masking", "threshold": n - 1, "released": _round(
                           updates, blocks["after_masking"][:1], dropped, "after_masking",
                           n - 1)["released"]})
    if checks:
        (CACHE / f"checks_{n}.json").write_text(json.dumps(checks))
    draws: list[dict[str, Any]] = []
    drawn: set[tuple[float, int, int, str]] = set()
    for k in sorted({t[1] for sets in settings.values() for t in sets} | {0}):
        basis = full.truncate(k) if k else None
        clip = published_clip(k or ref.size)
        coords = [clip_l2(basis.project(u) if basis else u, clip) for u in updates]
        back = basis.reconstruct if basis else (lambda c: c)
        for stage, summed in (("after_masking", n), ("before_masking", m)):
            if stage == "before_masking" and k != args.k:
                continue
            exact = np.mean(coords[:summed], axis=0)  # the organizations whose updates count
            tiny, llm = scorer(back(exact), True)
            base = common | {"k": k or ref.size, "drop_stage": stage, "summed": summed}
            draws.append(base | {"epsilon": math.inf, "mode": "none", "seed": 0, "ppl": tiny,
                                 "llm_ppl": llm, "noise_l2": 0.0})
            sets, out = settings[stage], outs[stage]
            for (eps, kk, seed, ms), block, total in zip(sets, blocks[stage], out["totals"],
                                                         strict=True):
                if kk != k:
                    continue
                z0 = noise_multiplier_for(eps, DELTA, 1.0, 1, "rdp")
                central = exact + rng.normal(0.0, z0 * clip, exact.size) / summed
                cases = [("distributed", total / summed)]
                if (eps, k, seed, stage) not in drawn:  # one central draw per setting
                    drawn.add((eps, k, seed, stage))
                    cases.append(("central", central))
                meas = alone if (k, ms, stage) == (args.k, n, "after_masking") else {}
                for mode, mean in cases:
                    dist = mode == "distributed"
                    tiny, llm = scorer(back(mean), (args.llm or k == args.k)
                                       and seed < args.llm_seeds)
                    draws.append(base | {
                        "epsilon": eps, "mode": mode, "seed": seed, "ppl": tiny, "llm_ppl": llm,
                        "bits": BITS if dist else None, "dropout": (n - m) / n,
                        "z": block.params.noise_multiplier if dist else z0,
                        "min_survivors": ms if dist else None,
                        "threshold": m if dist else None,
                        "noise_l2": float(np.linalg.norm(back(mean) - back(exact))),
                        "round_s": meas.get("round_s") if dist else None,
                        "bytes_per_org": meas.get("bytes_per_org") if dist else None,
                        "batched_round_s": out["round_s"] if dist else None})
    print(f"n={n}: {len(draws)} draws", flush=True)
    return draws


def write_parts(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    """Each helper module's own numbers: the organizations' data (org_dp_data), the Flower
    rounds (org_dp_round), the targets checked from the rows (org_dp_report), their
    distributed-vs-central statistics (org_dp_stats) and the run settings the docs text quotes
    (org_dp_text)."""
    reference = [r for r in rows if r["mode"] == "none" and r["k"] == max(
        e["k"] for e in rows if e["orgs"] == r["orgs"])]
    write_results("org_dp_data", {"texts": args.texts, "steps": args.steps, "eval": args.eval,
                                  "rows": [{f: r[f] for f in DATA_FIELDS} for r in reference]})
    checks = [c for n in args.orgs if (CACHE / f"checks_{n}.json").exists()
              for c in json.loads((CACHE / f"checks_{n}.json").read_text())]
    write_results("org_dp_round", {"checks": checks, "rows": [
        {f: r.get(f) for f in ROUND_FIELDS} for r in rows if r["mode"] == "distributed"]})
    targets = target_rows(rows, args.k)
    write_results("org_dp_report", {"k": args.k, "targets": targets})
    write_results("org_dp_stats", {"margin": MARGIN, "level": LEVEL, "resamples": RESAMPLES,
                                   "comparisons": [t for t in targets if "relative_gap" in t]})
    write_results("org_dp_text", {"settings": {f: getattr(args, f) for f in TEXT_FIELDS},
                                  "intro": intro(args)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orgs", type=int, nargs="+", default=[3, 10, 30, 100])
    parser.add_argument("--eps", type=float, nargs="+", default=[8.0, 4.0, 2.0, 1.0])
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--k-sweep", type=int, nargs="+", default=[4, 8, 16, 32, 64, 128])
    parser.add_argument("--sweep-orgs", type=int, nargs="*", default=[])
    parser.add_argument("--sweep-eps", type=float, default=4.0)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--texts", type=int, default=64)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--eval", type=int, default=24)
    parser.add_argument("--llm", action="store_true", help="LLM for the k sweep rows too")
    parser.add_argument("--llm-seeds", type=int, default=3,
                        help="noise draws whose translated LLM is scored (the first ones)")
    parser.add_argument("--measure-orgs", type=int, nargs="*", default=[3, 10, 30],
                        help="n whose k-dim release also runs alone (round s, bytes)")
    parser.add_argument("--abort-orgs", type=int, nargs="*", default=[3, 10, 30],
                        help="n whose round with min_survivors=n and a drop before masking runs")
    parser.add_argument("--threshold-orgs", type=int, nargs="*", default=[10],
                        help="n whose round runs with run_ddp_round's default threshold n-1")
    parser.add_argument("--reuse", action="store_true", help="reuse runs/org_dp/draws_<n>")
    parser.add_argument("--append", action="store_true",
                        help="append --seeds more draws of --eps at --orgs to the cache (no "
                        "checks, sweep, round-alone runs or writes: then --reuse)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if args.append:  # only the draws: the other n's rows and the checks stay as cached
        args.measure_orgs = args.abort_orgs = args.threshold_orgs = args.sweep_orgs = []
        args.no_write = True
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    rows = run(args)
    text = section(rows, args)
    print(text)
    if not args.no_write:
        write_results("org_dp", {"rows": rows, "args": vars(args)})
        write_parts(rows, args)
        write_section(text)


if __name__ == "__main__":
    main()
