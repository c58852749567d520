"""Organization-level DP: distributed discrete Gaussian inside SecAgg+ vs central Gaussian noise of
the same total, on the aggregated TinyLM (issue 13, items 1 and 4 at small scale).

Organizations: ``n`` TinyLM LoRA updates, organization ``j`` fine-tuned (plain, no DP-SGD: the
organization-level mechanism alone is measured) on its own records of family
``ORGANIZATIONS[j % 3]`` (faker seed ``5000 + j``). Per ``(n, epsilon)``:

- ``distributed``: Flower's simulation engine, one SuperNode per organization, SecAgg+ through
  :func:`gt_secure.aggregation.ddp_round.run_ddp_round` (ChaCha20 masks), each organization adding
  its discrete Gaussian share (OS CSPRNG); ``round(0.3 n)`` organizations die before masking and
  the shares are sized for exactly those survivors (``min_survivors = n - dropped``);
- ``central``: a trusted aggregator adds ``N(0, (z C)^2)`` to the exact sum of the same
  survivors' clipped updates (in process, no Flower);
- ``none``: the clipped mean of all ``n`` (the non-private reference of the gain fraction).

``epsilon`` is the organization-level epsilon of one round at delta 1e-5 (RDP): central
calibrates ``z`` for the Gaussian, distributed raises ``z`` until the ledger's KLS21 epsilon is
at most the target. Gain fraction = (ppl_base - ppl) / (ppl_base - ppl_none), mean validation
perplexity over the three families. ``round_s`` is the server's ``run_ddp_round`` wall time;
``bytes_per_org`` what each organization's ClientApp sent over all SecAgg+ stages.

    python -m bench.org_dp            # n in {3, 10}, epsilon in {2, 8, inf}; writes docs
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from flwr.app import Context, Message
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import ClientAppCallable
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters
from flwr.compat.common import recorddict_compat as compat
from flwr.serverapp import Grid, ServerApp
from flwr.simulation import run_simulation

from bench.docs import DOC, write_section
from gt_secure.aggregation.ddp import DdpParams
from gt_secure.aggregation.ddp_round import run_ddp_round, survivor_guard
from gt_secure.aggregation.secagg_round import wait_for_nodes
from gt_secure.app.mods import secagg_route_mod
from gt_secure.data.organizations import LABEL_PREFIX, ORGANIZATIONS, labelled_records, org_texts
from gt_secure.ledger.accountant import compute_epsilon, noise_multiplier_for
from gt_secure.models.scoring import perplexity
from gt_secure.organization.ddp_share import noise_share
from gt_secure.organization.vector_dp import clip_l2
from gt_secure.provider.adapter import adapted_model, fresh_lora
from gt_secure.update import UpdateVector
from gt_secure.update.finetune import FinetuneConfig, finetune_lora
from gt_secure.update.lora import extract_update

RESULTS = DOC.parent / "results" / "org_dp.json"
DELTA, CLIP, BITS, DROP = 1e-5, 1.0, 16, 0.3
BACKEND = {"client_resources": {"num_cpus": 1},
           "init_args": {"num_cpus": 2, "logging_level": "ERROR", "log_to_driver": False}}


def org_updates(n: int, texts: int, steps: int) -> tuple[list[np.ndarray], Any]:
    """``n`` organizations' TinyLM updates (float64) and their layout."""
    out, layout = [], None
    for j in range(n):
        family = ORGANIZATIONS[j % len(ORGANIZATIONS)]
        records = labelled_records(family, texts, seed=5000 + j)
        model, initial, layout, tok = fresh_lora("tinylm")
        finetune_lora(model, tok, [f"{b} {LABEL_PREFIX[family]} {lab}." for b, lab in records],
                      FinetuneConfig(steps=steps, seed=j))
        out.append(extract_update(model, initial, layout).flat.astype(np.float64))
    return out, layout


def ddp_params(eps: float, n: int, survivors: int, dim: int) -> tuple[DdpParams, float]:
    """Grid whose ledger epsilon is <= ``eps``; also the Gaussian ``z`` of the same target."""
    z0 = noise_multiplier_for(eps, DELTA, 1.0, 1, "rdp")
    z = z0
    for _ in range(20):
        p = DdpParams.choose(CLIP, dim, z, n, survivors, 0, BITS)
        if compute_epsilon([p.mechanism()], DELTA, "rdp") <= eps:
            return p, z0
        z *= 1.0 + 1e-3
    raise RuntimeError(f"no grid reached epsilon={eps}")


def distributed_round(updates: list[np.ndarray], p: DdpParams, dropped: set[int],
                      workdir: Path) -> dict[str, Any]:
    """One SecAgg+ round in Flower's simulation engine; the decoded sum and measurements."""
    n = len(updates)

    def count_bytes(msg: Message, ctxt: Context, call_next: ClientAppCallable) -> Message:
        reply = call_next(msg, ctxt)
        size = sum(len(v) for rec in reply.content.config_records.values()
                   for value in rec.values() for v in (value if isinstance(value, list)
                                                       else [value]) if isinstance(v, bytes))
        size += sum(len(a.data) for rec in reply.content.array_records.values()
                    for a in rec.values())
        pid = ctxt.node_config["partition-id"]
        with open(workdir / f"bytes{pid}.txt", "a") as f:
            f.write(f"{size}\n")
        return reply

    app = ClientApp(mods=[count_bytes, survivor_guard(lambda c: p.min_survivors),
                          secagg_route_mod])

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        pid = int(context.node_config["partition-id"])
        if pid in dropped:
            raise RuntimeError("organization dropped before masking")
        share = noise_share(updates[pid], p)
        fitres = FitRes(Status(Code.OK, ""), ndarrays_to_parameters([share.wire]), 1, {})
        return Message(compat.fitres_to_recorddict(fitres, keep_input=True), reply_to=msg)

    server = ServerApp()

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        wait_for_nodes(grid, n, 120.0)
        start = time.monotonic()
        result = run_ddp_round(grid, context, 1, np.zeros(p.dim), p, n,
                               lambda node, meta: None, 300.0, {"round": 1})
        seconds = time.monotonic() - start
        survivors = len(result.outcome.survivors)
        np.save(workdir / "total.npy", result.total)
        (workdir / "server.json").write_text(json.dumps({"round_s": seconds,
                                                         "survivors": survivors}))

    run_simulation(server, app, num_supernodes=n, backend_config=BACKEND)
    out = json.loads((workdir / "server.json").read_text())
    sent = [sum(int(x) for x in (workdir / f"bytes{i}.txt").read_text().split())
            for i in range(n) if i not in dropped]
    return out | {"total": np.load(workdir / "total.npy"), "bytes_per_org": int(np.mean(sent))}


def score(mean: np.ndarray, layout: Any, tok: Any, evals: list[list[str]]) -> float:
    model = adapted_model(UpdateVector(layout, mean.astype(np.float32)))
    return float(np.mean([perplexity(model, tok, texts) for texts in evals]))


def run(orgs: list[int], epsilons: list[float], texts: int, steps: int,
        n_eval: int) -> list[dict[str, Any]]:
    base_model, _, _, tok = fresh_lora("tinylm")
    evals = [org_texts(o, "validation", n_eval) for o in ORGANIZATIONS]
    ppl_base = float(np.mean([perplexity(base_model, tok, t) for t in evals]))
    all_updates, layout = org_updates(max(orgs), texts, steps)
    rows: list[dict[str, Any]] = []
    rng = np.random.default_rng(0)
    for n in orgs:
        updates = all_updates[:n]
        clipped = [clip_l2(u, CLIP) for u in updates]
        dropped = set(range(n - round(DROP * n), n))
        kept = [c for i, c in enumerate(clipped) if i not in dropped]
        ppl_none = score(np.mean(clipped, axis=0), layout, tok, evals)
        gain = ppl_base - ppl_none
        common = {"orgs": n, "llm_gain_fraction": None, "ppl_base": ppl_base}
        rows.append(common | {"epsilon": math.inf, "mode": "none", "bits": None, "dropout": 0.0,
                              "noise_l2": 0.0, "signal_l2": float(np.linalg.norm(
                                  np.mean(clipped, axis=0))),
                              "tinylm_gain_fraction": 1.0, "ppl": ppl_none, "round_s": None,
                              "bytes_per_org": None})
        for eps in epsilons:
            p, z0 = ddp_params(eps, n, len(kept), layout.size)
            exact = np.mean(kept, axis=0)
            central = np.sum(kept, axis=0) + rng.normal(0.0, z0 * CLIP, layout.size)
            ppl = score(central / len(kept), layout, tok, evals)
            rows.append(common | {"epsilon": eps, "mode": "central", "bits": None,
                                  "dropout": len(dropped) / n, "z": z0,
                                  "noise_l2": float(np.linalg.norm(central / len(kept) - exact)),
                                  "tinylm_gain_fraction": (ppl_base - ppl) / gain, "ppl": ppl,
                                  "round_s": None, "bytes_per_org": None})
            with tempfile.TemporaryDirectory() as tmp:
                out = distributed_round(updates, p, dropped, Path(tmp))
            mean = out["total"] / out["survivors"]
            ppl = score(mean, layout, tok, evals)
            rows.append(common | {"epsilon": eps, "mode": "distributed", "bits": BITS,
                                  "dropout": len(dropped) / n, "z": p.noise_multiplier,
                                  "noise_l2": float(np.linalg.norm(mean - exact)),
                                  "tinylm_gain_fraction": (ppl_base - ppl) / gain, "ppl": ppl,
                                  "round_s": out["round_s"], "bytes_per_org": out["bytes_per_org"],
                                  "survivors": out["survivors"]})
            print(rows[-2:], flush=True)
    return rows


def section(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = ["## Organization-level DP", "",
             f"`python -m bench.org_dp` ({args.texts} texts and {args.steps} plain fine-tune "
             f"steps per organization, {args.eval} validation texts per family; 2-core shared "
             "machine). One round; organization-level epsilon at delta 1e-5 (RDP); "
             f"distributed = discrete Gaussian shares inside Flower SecAgg+ ({BITS} bits), "
             f"round({DROP} n) organizations dropping before masking, shares sized for the "
             "survivors; central = a trusted aggregator adding the same total Gaussian noise to "
             "the same survivors' sum. Gain fraction = perplexity gain over the base TinyLM / "
             "the non-private (clipped mean) gain at the same n. LLM gain: not measured.", "",
             "| orgs | epsilon | mode | z | bits | dropped | noise L2 of the mean | ppl "
             "| TinyLM gain fraction | round s | bytes/org |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        def fmt(v: Any, spec: str = "") -> str:
            return "-" if v is None else format(v, spec)
        lines.append(f"| {r['orgs']} | {r['epsilon']:g} | {r['mode']} | {fmt(r.get('z'), '.3f')} "
                     f"| {fmt(r['bits'])} | {r['dropout']:.0%} | {r['noise_l2']:.2f} "
                     f"| {r['ppl']:.2f} "
                     f"| {r['tinylm_gain_fraction']:.3f} | {fmt(r['round_s'], '.2f')} "
                     f"| {fmt(r['bytes_per_org'], ',')} |")
    base = rows[0]["ppl_base"]
    norms = {r["orgs"]: r["signal_l2"] for r in rows if r["mode"] == "none"}
    low = [r["noise_l2"] / norms[r["orgs"]] for r in rows if r["mode"] != "none"
           and r["epsilon"] <= 8] or [math.nan]
    ratios = (min(low), max(low))
    signal = ", ".join(f"{r['signal_l2']:.2f} at n={r['orgs']}" for r in rows
                       if r["mode"] == "none")
    lines += ["", f"Base TinyLM perplexity {base:.2f}; L2 norm of the non-private mean update: "
              f"{signal}. Each row is one noise draw: at equal noise L2 (the distributed and "
              "central columns match, as designed) the perplexity of one draw varies a lot, so "
              "a single distributed-vs-central difference is draw variance, not a measured gap. "
              "The noise norm of the mean, z C sqrt(d) / survivors (d = 2,048), is "
              f"{ratios[0]:.0f}x to {ratios[1]:.0f}x the signal at epsilon <= 8: "
              "organization-level DP in one round costs all of the TinyLM gain at this scale "
              "in both modes. "
              "Results: docs/results/org_dp.json.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orgs", type=int, nargs="+", default=[3, 10])
    parser.add_argument("--eps", type=float, nargs="+", default=[2.0, 8.0])
    parser.add_argument("--texts", type=int, default=256)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--eval", type=int, default=32)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    rows = run(args.orgs, args.eps, args.texts, args.steps, args.eval)
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        shown = [r | {"epsilon": "inf" if math.isinf(r["epsilon"]) else r["epsilon"]}
                 for r in rows]
        RESULTS.write_text(json.dumps({"rows": shown}, indent=2) + "\n")
        write_section(section(rows, args))


if __name__ == "__main__":
    main()
