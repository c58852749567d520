"""Demo utility: what the 3-organization mean TinyLM update is worth under each privacy setting.

For each setting, every organization (hospital, bank, law) runs the real release path
(:func:`gt_secure.organization.release.prepare_release`, as the Flower app's organization step
does: DP-SGD with the app's defaults, batch 16, Adam lr 3e-3) on its first ``N`` training texts
for ``S`` steps; the three released vectors are averaged (what SecAgg+/CKKS hand the provider)
and the TinyLM with that mean update is scored on each organization's validation texts.

Settings: ``plain`` (no DP, update clipped to 1.0 as the app does), ``dp-sgd eps=e`` (example-
level DP-SGD only, clip 1.0, PRV, delta 1e-5), ``dp-sgd eps=1 + org z=1`` (the ``dp-secagg``
protocol: DP-SGD + clip 1.0 and N(0, 1) per coordinate on the update vector), and
``dp-sgd eps=1 + org basis eps=E m/3`` (the ``ddp-secagg-basis`` protocol at organization-level
epsilon E: DP-SGD, then each organization's k = 16 coordinates in the shipped public basis,
clipped to the published 0.65, its discrete Gaussian share sized for ``m`` of the 3 organizations,
16 bits; the three integer vectors are summed modulo 2**16 exactly as Flower's SecAgg+ sums them,
decoded and reconstructed in the full space by the provider's basis).

    python -m bench.demo_utility                       # N in {64, 512}, S in {16, 32}, ~6 min
    python -m bench.demo_utility --texts 512 --steps 32 --eps 1    # the demo's default, ~1.5 min
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from bench.docs import write_results
from gt_secure.aggregation.ddp import DdpParams
from gt_secure.aggregation.ddp_basis import PublicBasis
from gt_secure.data.organizations import ORGANIZATIONS, org_texts
from gt_secure.ledger.signing import generate_key
from gt_secure.ledger.store import Ledger
from gt_secure.models.loading import load_tokenizer
from gt_secure.models.scoring import perplexity
from gt_secure.organization.dp_sgd import DpSgdConfig
from gt_secure.organization.release import PrivacyBudget, ReleaseConfig, prepare_release
from gt_secure.organization.vector_dp import VectorDpConfig
from gt_secure.provider.adapter import adapted_model, fresh_lora
from gt_secure.provider.public_basis import load_public_basis, published_clip
from gt_secure.update import UpdateVector
from gt_secure.update.finetune import FinetuneConfig

SALT = b"bench-demo-utility-salt-0123"


Setting = tuple[str, float | None, float, float | None, int]  # name, eps, z_org, org eps, m


def release_config(eps: float | None, org_noise: float, steps: int,
                   distributed: DdpParams | None = None) -> ReleaseConfig:
    """The config :func:`gt_secure.app.roles.release_config` builds for such a protocol."""
    dp_sgd = None
    if eps is not None:
        dp_sgd = DpSgdConfig(target_epsilon=eps, delta=1e-5, max_grad_norm=1.0,
                             accountant="prv", steps=steps)
    vector = VectorDpConfig(clip_norm=1.0, noise_multiplier=org_noise) if org_noise else None
    org_dp = vector is not None or distributed is not None
    return ReleaseConfig(
        budget=PrivacyBudget(example=100.0 if dp_sgd else math.inf,
                             organization=100.0 if org_dp else math.inf),
        dp_sgd=dp_sgd, vector_dp=vector, distributed=distributed,
        clip_norm=None if org_dp else 1.0, plain=FinetuneConfig(steps=steps))


def basis_params(org_eps: float, survivors: int, basis: PublicBasis) -> DdpParams:
    """``ddp-secagg-basis`` shares at organization-level ``org_eps`` for 3 organizations."""
    return DdpParams.for_epsilon(org_eps, published_clip(basis.k), basis.k, len(ORGANIZATIONS),
                                 survivors, 0, 16, basis=basis.release_record())


def mean_update(cfg: ReleaseConfig, n_texts: int, workdir: Path,
                basis: PublicBasis | None = None) -> tuple[UpdateVector, float]:
    """Mean of the three organizations' released vectors (with ``basis``: their integer shares
    summed modulo 2**bits, decoded and reconstructed); also the mean DP-SGD noise z."""
    flats, z = [], []
    layout = fresh_lora("tinylm")[2]
    for org in ORGANIZATIONS:
        key = generate_key()
        ledger = Ledger(workdir / f"{org}-{time.monotonic_ns()}.jsonl").ensure(
            owner=org, budget={"example": cfg.budget.example,
                             "organization": cfg.budget.organization}, signing_key=key)
        release = prepare_release(org, org_texts(org, "train", n_texts), cfg, ledger, key,
                                  salt=SALT, release_id=f"{org}-bench", basis=basis)
        flats.append(release.update.flat.astype(np.float64))
        z += [getattr(m, "noise_multiplier", 0.0) for m in release.mechanisms[:1]]
    if basis is None or cfg.distributed is None:
        return UpdateVector(layout, np.mean(flats, axis=0).astype(np.float32)), float(np.mean(z))
    params = cfg.distributed
    half = params.modulus // 2
    total = np.mod(np.sum(np.rint(flats).astype(np.int64), axis=0) + half, params.modulus) - half
    coords = total.astype(np.float64) * params.scale / len(flats)  # (k,) decoded mean
    return UpdateVector(layout, basis.reconstruct(coords).astype(np.float32)), float(np.mean(z))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, nargs="+", default=[64, 512])
    parser.add_argument("--steps", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--eps", type=float, nargs="+", default=[1.0, 4.0, 8.0])
    parser.add_argument("--eval", type=int, default=64, help="validation texts per org")
    parser.add_argument("--org-eps", type=float, nargs="*", default=[8.0, 4.0],
                        help="organization-level epsilons of the ddp-secagg-basis rows")
    parser.add_argument("--repeats", type=int, default=1, help="draws of every DP setting")
    parser.add_argument("--no-write", action="store_true",
                        help="leave docs/results/demo_utility.json; rows go to runs/ only")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    tokenizer = load_tokenizer()
    evals = {o: org_texts(o, "validation", args.eval) for o in ORGANIZATIONS}
    base = fresh_lora("tinylm")[0]
    table = Table(title="TinyLM validation perplexity, 3-organization mean update")
    for col in ("texts/org", "steps", "setting", "DP-SGD z", "|mean|", *ORGANIZATIONS, "s"):
        table.add_column(col, justify="right")
    base_ppl = {o: perplexity(base, tokenizer, evals[o]) for o in ORGANIZATIONS}
    table.add_row("-", "-", "base TinyLM", "-", "0",
                  *[f"{base_ppl[o]:.1f}" for o in ORGANIZATIONS], "-")
    records: list[dict] = []
    settings: list[Setting] = [("plain (no DP)", None, 0.0, None, 0)]
    settings += [(f"dp-sgd eps={e:g}", e, 0.0, None, 0) for e in args.eps]
    settings += [("dp-sgd eps=1 + org z=1", 1.0, 1.0, None, 0)]
    settings += [(f"dp-sgd eps=1 + org basis eps={oe:g} {m}/3", 1.0, 0.0, oe, m)
                 for oe in args.org_eps for m in (3, 2)]
    basis = load_public_basis()
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.texts:
            for steps in args.steps:
                for (name, eps, z_org, org_eps, m), _ in itertools.product(
                        settings, range(args.repeats)):
                    if eps is None and _:
                        continue  # plain is deterministic
                    start = time.time()
                    ddp = basis_params(org_eps, m, basis) if org_eps else None
                    update, z = mean_update(release_config(eps, z_org, steps, ddp), n, Path(tmp),
                                            basis if ddp else None)
                    model = adapted_model(update)
                    ppl = [perplexity(model, tokenizer, evals[o]) for o in ORGANIZATIONS]
                    records.append({"texts": n, "steps": steps, "setting": name,
                                    "organization_epsilon": org_eps,
                                    "organization_noise_multiplier": (
                                        ddp.noise_multiplier if ddp else z_org or None),
                                    "dp_sgd_z": z if eps else None,
                                    "mean_norm": float(np.linalg.norm(update.flat)),
                                    "perplexity": dict(zip(ORGANIZATIONS, ppl, strict=True)),
                                    "seconds": time.time() - start})
                    table.add_row(str(n), str(steps), name, f"{z:.2f}" if eps else "-",
                                  f"{np.linalg.norm(update.flat):.2f}",
                                  *[f"{p:.1f}" for p in ppl], f"{time.time() - start:.0f}")
                    Console().print(f"done: N={n} S={steps} {name}")
    Console(width=200).print(table)
    command = "python -m bench.demo_utility " + " ".join(
        f"--{k} {' '.join(str(v) for v in vs)}" for k, vs in
        (("texts", args.texts), ("steps", args.steps), ("eps", args.eps),
         ("org-eps", args.org_eps), ("repeats", [args.repeats])))
    result = {"command": command, "eval_texts": args.eval, "base_perplexity": base_ppl,
              "rows": records}
    runs = Path("runs/demo_utility")
    runs.mkdir(parents=True, exist_ok=True)
    (runs / f"{time.strftime('%Y%m%dT%H%M%S')}.json").write_text(json.dumps(result, indent=1))
    if not args.no_write:
        Console().print(f"wrote {write_results('demo_utility', result)}")


if __name__ == "__main__":
    main()
