"""bench/org_dp.py's rows (mean and std over noise draws), its table, plot and target notes."""

from __future__ import annotations

import argparse
import math
from typing import Any

import numpy as np

from bench.docs import DOC

PLOT = DOC.parent / "img" / "org_dp.png"
KEY = ("orgs", "epsilon", "mode", "k")


def _fraction(ppl: float | None, base: float, none: float | None) -> float | None:
    if ppl is None or none is None or base - none <= 0:
        return None  # no non-private gain to keep a fraction of
    return (base - ppl) / (base - none)


def aggregate(draws: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (orgs, epsilon, mode, k): gain fractions against the full-space non-private
    mean of the same ``orgs``, mean and std over the noise draws."""
    ref = {d["orgs"]: d for d in draws if d["mode"] == "none" and d["k"] == max(
        e["k"] for e in draws if e["orgs"] == d["orgs"])}
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for d in draws:
        r = ref[d["orgs"]]
        d = d | {"tinylm_gain_fraction": _fraction(d["ppl"], d["ppl_base"], r["ppl"]),
                 "llm_gain_fraction": _fraction(d["llm_ppl"], d["llm_ppl_base"], r["llm_ppl"])}
        groups.setdefault(tuple(d[k] for k in KEY), []).append(d)
    rows = []
    for group in groups.values():
        row = dict(group[0])
        row.pop("seed")
        for field in ("tinylm_gain_fraction", "llm_gain_fraction", "ppl", "llm_ppl",
                      "noise_l2"):
            values = [g[field] for g in group if g[field] is not None]
            row[field] = float(np.mean(values)) if values else None
            row[f"{field}_std"] = float(np.std(values)) if len(values) > 1 else None
        row["draws"] = len(group)
        row["epsilon"] = "inf" if math.isinf(row["epsilon"]) else row["epsilon"]
        rows.append(row)
    return rows


def _fmt(v: Any, spec: str = ".2f") -> str:
    return "-" if v is None else format(v, spec)


def _pm(row: dict[str, Any], field: str) -> str:
    std = row.get(f"{field}_std")
    return _fmt(row[field]) + ("" if std is None else f" ± {std:.2f}")


def plot(rows: list[dict[str, Any]], k: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for n in sorted({r["orgs"] for r in rows}):
        for mode, style in (("distributed", "-o"), ("central", "--s")):
            pts = sorted((r["epsilon"], r["tinylm_gain_fraction"]) for r in rows
                         if r["orgs"] == n and r["mode"] == mode and r["k"] == k)
            if pts:
                axes[0].plot(*zip(*pts, strict=True), style, label=f"{n} orgs, {mode}")
        sweep = sorted((r["k"], r["tinylm_gain_fraction"]) for r in rows
                       if r["orgs"] == n and r["mode"] == "distributed"
                       and r["epsilon"] != "inf" and r.get("sweep"))
        if len(sweep) > 1:
            axes[1].plot(*zip(*sweep, strict=True), "-o", label=f"{n} orgs, distributed")
    axes[0].set(xscale="log", xlabel="organization-level epsilon (one round, delta 1e-5)",
                ylabel="TinyLM gain fraction", title=f"k = {k}", ylim=(-0.5, 1.1))
    axes[1].set(xscale="log", xlabel="k (public basis rows released; d = 2048 rightmost)",
                ylabel="TinyLM gain fraction", title="utility vs k", ylim=(-0.5, 1.1))
    for ax in axes:
        ax.axhline(0.5, color="grey", lw=0.8)
        ax.legend(fontsize=7)
    fig.tight_layout()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PLOT, dpi=110)


def section(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """The docs/benchmarks.md section (table of every row, plot, notes on the targets)."""
    for r in rows:
        r["sweep"] = r["orgs"] in args.sweep_orgs and r["epsilon"] == args.sweep_eps
        r["sweep_eps"] = args.sweep_eps
    plot(rows, args.k)
    lines = [
        "## Organization-level DP", "",
        f"`nice -n 10 python -m bench.org_dp` ({args.texts} records and {args.steps} plain LoRA "
        "steps per "
        f"organization, {args.eval} validation texts per family, {args.seeds} noise draws per "
        "setting, 2-core shared machine). One round; organization-level epsilon at delta 1e-5 "
        f"(RDP). Organizations release the k coordinates of their update in the provider's "
        f"public basis (top principal directions of public TinyLM updates, shipped with the "
        "translator), clipped in the k-space to the published public clip norm C_k (median k-space "
        "norm of held-out public updates). distributed = discrete "
        "Gaussian shares inside Flower SecAgg+ (16 bits), shares sized for 70% survivors and "
        "30% of organizations dying after masking; central = a trusted aggregator adding "
        "Gaussian noise calibrated to the same epsilon; none = no noise (k = 2048: the full "
        "update, the reference of the gain fractions). LLM = the shipped translator applied to "
        "the reconstructed aggregate. round s / bytes: a Flower round releasing one k-dim "
        "block alone (not run at 100 orgs: there only the batched round below; round times "
        "depend on the shared machine's load at the time). The shares are sized for 70% "
        "survivors while all vectors reach the sum (dropouts after masking), so the "
        "distributed sum carries 1/0.7 of the target noise variance (noise std x1.2 against "
        "central: compare the noise L2 columns). k-dim rows at the main k "
        "cover every n and epsilon; other k: the k sweep at the sweep epsilon (and any "
        "further k run with --k). Reproduce: `python -m bench.org_dp --no-write` (k 16, every "
        "n, k sweep), `python -m bench.org_dp --k 32 --sweep-orgs --measure-orgs --no-write`, "
        "then `python -m bench.org_dp --reuse` (merges every k cached per n under "
        "runs/org_dp/).", "",
        "| orgs | epsilon | mode | k | z | TinyLM ppl | TinyLM gain fraction | LLM ppl "
        "| LLM gain fraction | noise L2 | round s | bytes/org |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    order = sorted(rows, key=lambda r: (r["orgs"], r["k"] != args.k, r["k"],
                                        -math.inf if r["epsilon"] == "inf" else -r["epsilon"],
                                        r["mode"]))
    for r in order:
        lines.append(f"| {r['orgs']} | {r['epsilon']} | {r['mode']} | {r['k']} "
                     f"| {_fmt(r.get('z'), '.3f')} | {_fmt(r['ppl'], '.0f')} "
                     f"| {_pm(r, 'tinylm_gain_fraction')} | {_fmt(r['llm_ppl'], '.0f')} "
                     f"| {_pm(r, 'llm_gain_fraction')} | {_fmt(r['noise_l2'])} "
                     f"| {_fmt(r['round_s'], '.1f')} | {_fmt(r['bytes_per_org'], ',')} |")
    lines += ["", f"![org-level DP](img/{PLOT.name})", "", *targets(rows, args.k), ""]
    return "\n".join(lines)


def targets(rows: list[dict[str, Any]], k: int) -> list[str]:
    """Each target, met or missed, from the rows at the published k."""
    out = []
    for r in sorted((r for r in rows if r["mode"] == "none" and r["k"] == k),
                    key=lambda r: r["orgs"]):
        out.append(f"- Projection alone (no noise, k = {k}), {r['orgs']} orgs: TinyLM gain "
                   f"fraction {r['tinylm_gain_fraction']:.2f} (what a k-dim release keeps "
                   "before noise).")
    for r in sorted((r for r in rows if r["mode"] == "none" and r["k"] == 2048),
                    key=lambda r: r["orgs"]):
        out.append(f"- {r['orgs']} orgs: base TinyLM perplexity {r['ppl_base']:.0f}, non-private "
                   f"{r['ppl']:.0f}; base LLM {r['llm_ppl_base']:.0f}, translated non-private "
                   f"mean {r['llm_ppl']:.0f}"
                   + (" (no LLM gain to keep: LLM gain fractions undefined)"
                      if r["llm_ppl"] >= r["llm_ppl_base"] else "") + "; Flower round with "
                   f"every setting of this n batched: "
                   f"{_batched(rows, r['orgs'])} s (one per run).")
    for n in sorted({r["orgs"] for r in rows if r.get("sweep")}):
        sweep = {r["k"]: r["tinylm_gain_fraction"] for r in rows if r["orgs"] == n
                 and r.get("sweep") and r["mode"] == "distributed"}
        best = max(sweep, key=lambda j: sweep[j])
        out.append(f"- k sweep, {n} orgs, epsilon {rows[0]['sweep_eps']:g}, distributed: best "
                   f"k = {best} (gain fraction {sweep[best]:.2f}; "
                   + ", ".join(f"k={j}: {g:.2f}" for j, g in sorted(sweep.items())) + ").")
    for t in target_rows(rows, k):
        if t["target"] == "gain_fraction >= 0.5":
            out.append(f"- {t['orgs']} organizations, epsilon {t['epsilon']:g}, distributed: "
                       f"TinyLM gain fraction {t['distributed']:.2f} (target >= 0.50: "
                       f"{'met' if t['met'] else 'MISSED'}).")
        else:
            out.append(f"- distributed vs central, {t['orgs']} orgs, epsilon {t['epsilon']}: "
                       f"{t['distributed']:.2f} vs {t['central']:.2f} (relative gap "
                       f"{t['relative_gap']:+.0%}; target <= 10%: "
                       f"{'met' if t['met'] else 'MISSED'}).")
    return out


def target_rows(rows: list[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """The issue's targets at the published ``k``, each with its measured values and verdict."""
    def get(n: int, eps: Any, mode: str) -> dict[str, Any] | None:
        return next((r for r in rows if (r["orgs"], r["epsilon"], r["mode"], r["k"])
                     == (n, eps, mode, k)), None)

    out: list[dict[str, Any]] = []
    for n, eps in ((10, 8.0), (100, 2.0)):
        if (target := get(n, eps, "distributed")) is not None:
            g = target["tinylm_gain_fraction"]
            out.append({"target": "gain_fraction >= 0.5", "orgs": n, "epsilon": eps,
                        "distributed": g, "met": g >= 0.5})
    for r in rows:
        c = get(r["orgs"], r["epsilon"], "central") if r["mode"] == "distributed" else None
        if c is not None and r["k"] == k and c["tinylm_gain_fraction"] > 0:
            gap = 1 - r["tinylm_gain_fraction"] / c["tinylm_gain_fraction"]
            out.append({"target": "distributed within 10% of central", "orgs": r["orgs"],
                        "epsilon": r["epsilon"], "distributed": r["tinylm_gain_fraction"],
                        "central": c["tinylm_gain_fraction"], "relative_gap": gap,
                        "met": gap <= 0.10})
    return out


def _batched(rows: list[dict[str, Any]], n: int) -> str:
    """The batched Flower rounds' seconds at ``n`` (one per run that measured this n)."""
    times = sorted({round(r["batched_round_s"]) for r in rows if r["orgs"] == n
                    and r.get("batched_round_s") is not None})
    return " s, ".join(map(str, times)) or "-"
