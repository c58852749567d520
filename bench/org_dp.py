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
  sized for ``min_survivors = n - round(0.3 n)`` (ledger KLS21 epsilon <= target), and
  ``round(0.3 n)`` organizations dying at UNMASK (after masking);
- ``central``: a trusted aggregator adds ``N(0, (z C)^2 I_k)`` (Gaussian ``z`` calibrated to the
  same epsilon) to the exact sum of the same clipped coordinates;
- ``none``: no noise, in the basis (``k``) and in the full space (``k = d``: the reference of the
  gain fractions).

Gain fraction = (ppl_base - ppl) / (ppl_base - ppl_none_full) at the same ``n``, mean perplexity
over the three families' organization validation texts (TinyLM: the aggregated update; LLM: the
translated one). Every setting is averaged over ``--seeds`` noise draws (std reported). The
distributed blocks of all settings of one ``n`` ride in one Flower round (each with its own
parameters, decoded apart; a deployment releases one); ``round_s`` and ``bytes_per_org`` come
from a separate Flower round that releases one ``k``-dim block alone.

    python -m bench.org_dp            # writes docs/benchmarks.md and docs/results/org_dp.json
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
from gt_secure.aggregation.ddp import DdpParams
from gt_secure.aggregation.ddp_basis import PublicBasis
from gt_secure.ledger.accountant import compute_epsilon, noise_multiplier_for
from gt_secure.models.scoring import perplexity
from gt_secure.organization.vector_dp import clip_l2
from gt_secure.provider.adapter import adapted_model, fresh_lora
from gt_secure.provider.public_basis import load_public_basis, published_clip
from gt_secure.provider.service import load_translator
from gt_secure.update import UpdateVector

DELTA, BITS, DROP = 1e-5, 16, 0.3
DATA_FIELDS = ("orgs", "signal_l2", "ppl_base", "ppl", "llm_ppl_base", "llm_ppl")
ROUND_FIELDS = ("orgs", "epsilon", "k", "bits", "dropout", "min_survivors", "round_s",
                "bytes_per_org", "batched_round_s")


def ddp_params(eps: float, n: int, survivors: int, basis: PublicBasis | None, dim: int,
               clip: float) -> DdpParams:
    """Grid whose ledger (KLS21) epsilon is <= ``eps``, recording ``basis`` when given."""
    z = noise_multiplier_for(eps, DELTA, 1.0, 1, "rdp")
    record = basis.release_record() if basis is not None else None
    for _ in range(200):
        p = DdpParams.choose(clip, dim, z, n, survivors, 0, BITS, basis=record)
        if compute_epsilon([p.mechanism()], DELTA, "rdp") <= eps:
            return p
        z *= 1.0 + 1e-3
    raise RuntimeError(f"no grid reached epsilon={eps}")


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
        got = run_orgs(n, list(all_updates[:n]), full, scorer, args)
        path.write_text(json.dumps(got))
        draws += got
    return aggregate(draws)


def run_orgs(n: int, updates: list[np.ndarray], full: PublicBasis, scorer: Scorer,
             args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every draw at ``n`` organizations (one batched Flower round, optionally one alone)."""
    rng = np.random.default_rng(n)
    draws: list[dict[str, Any]] = []
    dropped = set(range(n - round(DROP * n), n))
    survivors = n - len(dropped)
    ref = np.mean([clip_l2(u, published_clip(u.size)) for u in updates], axis=0)
    common = {"orgs": n, "bits": None, "dropout": 0.0, "round_s": None,
              "bytes_per_org": None, "signal_l2": float(np.linalg.norm(ref)),
              "ppl_base": scorer.base[0], "llm_ppl_base": scorer.base[1]}
    settings = [(eps, args.k, s) for eps in args.eps for s in range(args.seeds)]
    if n in args.sweep_orgs:
        settings += [(args.sweep_eps, k, s) for k in [*args.k_sweep, 0]
                     for s in range(args.seeds) if k != args.k]
    blocks = []
    for eps, k, _ in settings:
        basis = full.truncate(k) if k else None
        blocks.append(Block(ddp_params(eps, n, survivors, basis, k or ref.size,
                                       published_clip(k or ref.size)), basis))
    with tempfile.TemporaryDirectory() as tmp:
        out = flower_round(updates, blocks, dropped, Path(tmp))
    with tempfile.TemporaryDirectory() as tmp:
        alone = (flower_round(updates, blocks[:1], dropped, Path(tmp))
                 if n in args.measure_orgs else {})
    for k in sorted({k for _, k, _ in settings} | {0}):
        basis = full.truncate(k) if k else None
        clip = published_clip(k or ref.size)
        coords = [clip_l2(basis.project(u) if basis else u, clip) for u in updates]
        exact = np.mean(coords, axis=0)
        back = basis.reconstruct if basis else (lambda c: c)
        tiny, llm = scorer(back(exact), True)
        draws.append(common | {"epsilon": math.inf, "mode": "none", "k": k or ref.size,
                               "seed": 0, "ppl": tiny, "llm_ppl": llm, "noise_l2": 0.0})
        for (eps, kk, seed), block, total in zip(settings, blocks, out["totals"],
                                                 strict=True):
            if kk != k:
                continue
            z0 = noise_multiplier_for(eps, DELTA, 1.0, 1, "rdp")
            central = exact + rng.normal(0.0, z0 * clip, exact.size) / n
            meas = alone if k == args.k else {}
            for mode, mean in (("central", central), ("distributed", total / n)):
                tiny, llm = scorer(back(mean), args.llm or k == args.k)
                dist = mode == "distributed"
                draws.append(common | {
                    "epsilon": eps, "mode": mode, "k": k or ref.size, "seed": seed,
                    "bits": BITS if dist else None, "dropout": len(dropped) / n,
                    "z": block.params.noise_multiplier if dist else z0,
                    "min_survivors": survivors if dist else None,
                    "noise_l2": float(np.linalg.norm(back(mean) - back(exact))),
                    "ppl": tiny, "llm_ppl": llm,
                    "round_s": meas.get("round_s") if dist else None,
                    "bytes_per_org": meas.get("bytes_per_org") if dist else None,
                    "batched_round_s": out["round_s"] if dist else None})
    print(f"n={n}: {len(draws)} draws, batched round {out['round_s']:.1f} s", flush=True)
    return draws


def write_parts(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    """Each helper module's own numbers: the organizations' data (org_dp_data), the Flower
    rounds (org_dp_round) and the targets checked from the rows (org_dp_report)."""
    reference = [r for r in rows if r["mode"] == "none" and r["k"] == max(
        e["k"] for e in rows if e["orgs"] == r["orgs"])]
    write_results("org_dp_data", {"texts": args.texts, "steps": args.steps, "eval": args.eval,
                                  "rows": [{f: r[f] for f in DATA_FIELDS} for r in reference]})
    write_results("org_dp_round", {"rows": [{f: r.get(f) for f in ROUND_FIELDS} for r in rows
                                            if r["mode"] == "distributed"]})
    write_results("org_dp_report", {"k": args.k, "targets": target_rows(rows, args.k)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orgs", type=int, nargs="+", default=[3, 10, 30, 100])
    parser.add_argument("--eps", type=float, nargs="+", default=[8.0, 4.0, 2.0, 1.0])
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--k-sweep", type=int, nargs="+", default=[4, 8, 16, 32, 64, 128])
    parser.add_argument("--sweep-orgs", type=int, nargs="*", default=[10, 100])
    parser.add_argument("--sweep-eps", type=float, default=4.0)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--texts", type=int, default=64)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--eval", type=int, default=24)
    parser.add_argument("--llm", action="store_true", help="LLM for the k sweep rows too")
    parser.add_argument("--measure-orgs", type=int, nargs="*", default=[3, 10, 30],
                        help="n whose k-dim release also runs alone (round s, bytes)")
    parser.add_argument("--reuse", action="store_true", help="reuse runs/org_dp/draws_<n>")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
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
