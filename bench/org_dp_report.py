"""bench/org_dp.py's rows (mean and std over noise draws), its table, plot and target notes."""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

import numpy as np

from bench.docs import DOC
from bench.org_dp_data import CACHE
from bench.org_dp_stats import comparison
from bench.org_dp_text import intro

PLOT = DOC.parent / "img" / "org_dp.png"
KEY = ("orgs", "epsilon", "mode", "k", "min_survivors", "drop_stage")
STAGES = ("after_masking", "before_masking")


def _fraction(ppl: float | None, base: float, none: float | None) -> float | None:
    if ppl is None or none is None or base - none <= 0:
        return None  # no non-private gain to keep a fraction of
    return (base - ppl) / (base - none)


def aggregate(draws: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (orgs, epsilon, mode, k, min_survivors, drop_stage): gain fractions against
    the full-space non-private mean of all ``orgs``, mean and std over the noise draws (and the
    draws in seed order, to pair them)."""
    draws = [{"drop_stage": "after_masking", "min_survivors": None, "summed": d["orgs"]} | d
             for d in draws]  # rows measured before the drop stage was recorded
    ref = {d["orgs"]: d for d in draws if d["mode"] == "none" and d["k"] == max(
        e["k"] for e in draws if e["orgs"] == d["orgs"]) and d["drop_stage"] == STAGES[0]}
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for d in draws:
        r = ref[d["orgs"]]
        d = d | {"tinylm_gain_fraction": _fraction(d["ppl"], d["ppl_base"], r["ppl"]),
                 "llm_gain_fraction": _fraction(d["llm_ppl"], d["llm_ppl_base"], r["llm_ppl"])}
        groups.setdefault(tuple(d[k] for k in KEY), []).append(d)
    rows = []
    for group in groups.values():
        group.sort(key=lambda g: g["seed"])
        row = dict(group[0])
        row.pop("seed")
        for field in ("tinylm_gain_fraction", "llm_gain_fraction", "ppl", "llm_ppl",
                      "noise_l2"):
            values = [g[field] for g in group if g[field] is not None]
            row[field] = float(np.mean(values)) if values else None
            row[f"{field}_std"] = float(np.std(values)) if len(values) > 1 else None
        row["tinylm_gain_fraction_draws"] = [g["tinylm_gain_fraction"] for g in group]
        row["draws"] = len(group)
        row["epsilon"] = "inf" if math.isinf(row["epsilon"]) else row["epsilon"]
        rows.append(row)
    return rows


def checks(orgs: list[int]) -> list[dict[str, Any]]:
    """The rounds run only to check what a configuration releases (bench/org_dp.py)."""
    return [c for n in orgs if (CACHE / f"checks_{n}.json").exists()
            for c in json.loads((CACHE / f"checks_{n}.json").read_text())]


def config(r: dict[str, Any]) -> str:
    """``min_survivors=n`` / ``0.7n`` and the drop stage of a row (central: its summands)."""
    stage = r["drop_stage"].replace("_", " ")
    if r["mode"] != "distributed":
        return f"{r['summed']} orgs summed, drop {stage}"
    share = "n" if r["min_survivors"] == r["orgs"] else "0.7n"
    return f"min_survivors={share} ({r['min_survivors']}), drop {stage}"


def _fmt(v: Any, spec: str = ".2f") -> str:
    return "-" if v is None else format(v, spec)


def _pm(row: dict[str, Any], field: str) -> str:
    std = row.get(f"{field}_std")
    return _fmt(row[field]) + ("" if std is None else f" ± {std:.2f}")


def plot(rows: list[dict[str, Any]], k: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    colors = dict(zip(sorted({r["orgs"] for r in rows}), "bgrmck", strict=False))
    lines = {STAGES[0]: (("central", None, "--s"), ("distributed", "n", "-o"),
                         ("distributed", "0.7n", ":^")),
             STAGES[1]: (("central", None, "--s"), ("distributed", "0.7n", ":^"))}
    for n, color in colors.items():
        for ax, stage in zip(axes[:2], STAGES, strict=True):
            for mode, share, style in lines[stage]:
                want = None if share is None else n if share == "n" else n - round(0.3 * n)
                pts = sorted((r["epsilon"], r["tinylm_gain_fraction"]) for r in rows
                             if (r["orgs"], r["mode"], r["k"], r["drop_stage"],
                                 r["min_survivors"]) == (n, mode, k, stage, want))
                if pts:
                    label = f"{n} orgs, {mode}" + (f" ms={share}" if share else "")
                    ax.plot(*zip(*pts, strict=True), style, color=color, label=label)
        sweep = sorted((r["k"], r["tinylm_gain_fraction"]) for r in rows
                       if r["orgs"] == n and r["mode"] == "distributed"
                       and r["epsilon"] != "inf" and r.get("sweep"))
        if len(sweep) > 1:
            axes[2].plot(*zip(*sweep, strict=True), "-o", color=color,
                         label=f"{n} orgs, distributed")
    for ax, stage in zip(axes[:2], STAGES, strict=True):
        ax.set(xscale="log", xlabel="organization-level epsilon (one round, delta 1e-5)",
               ylabel="TinyLM gain fraction", title=f"k = {k}, 30% drop {stage.split('_')[0]} "
               "masking", ylim=(-0.5, 1.1))
    axes[2].set(xscale="log", xlabel="k (public basis rows released; d = 2048 rightmost)",
                ylabel="TinyLM gain fraction", title="utility vs k", ylim=(-0.5, 1.1))
    for ax in axes:
        ax.axhline(0.5, color="grey", lw=0.8)
        ax.legend(fontsize=6)
    fig.tight_layout()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PLOT, dpi=110)


def section(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """The docs/benchmarks.md section (table of every row, plot, notes on the targets)."""
    at_sweep = [r for r in rows if r["epsilon"] == args.sweep_eps]
    swept = {n for n in {r["orgs"] for r in at_sweep}
             if len({r["k"] for r in at_sweep if r["orgs"] == n}) > 2}
    # the sweep's configuration: the distributed rows of the other k at the sweep epsilon
    ms = {(r["orgs"], r["min_survivors"], r["drop_stage"]) for r in at_sweep
          if r["mode"] == "distributed" and r["k"] != args.k}
    for r in rows:
        r["sweep"] = (r["orgs"] in swept and r["epsilon"] == args.sweep_eps
                      and (r["mode"] != "distributed"
                           or (r["orgs"], r["min_survivors"], r["drop_stage"]) in ms))
    plot(rows, args.k)
    lines = [*intro(args), "",
             "| orgs | epsilon | mode | configuration | k | z | TinyLM ppl "
             "| TinyLM gain fraction | LLM ppl | LLM gain fraction | noise L2 | draws | round s "
             "| bytes/org |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    order = sorted(rows, key=lambda r: (r["orgs"], r["k"] != args.k, r["k"],
                                        r["drop_stage"],
                                        -math.inf if r["epsilon"] == "inf" else -r["epsilon"],
                                        r["mode"], -(r["min_survivors"] or 0)))
    for r in order:
        lines.append(f"| {r['orgs']} | {r['epsilon']} | {r['mode']} | {config(r)} | {r['k']} "
                     f"| {_fmt(r.get('z'), '.3f')} | {_fmt(r['ppl'], '.0f')} "
                     f"| {_pm(r, 'tinylm_gain_fraction')} | {_fmt(r['llm_ppl'], '.0f')} "
                     f"| {_pm(r, 'llm_gain_fraction')} | {_fmt(r['noise_l2'])} | {r['draws']} "
                     f"| {_fmt(r['round_s'], '.1f')} | {_fmt(r['bytes_per_org'], ',')} |")
    lines += ["", f"![org-level DP](img/{PLOT.name})", "", *targets(rows, args), ""]
    return "\n".join(lines)


def targets(rows: list[dict[str, Any]], args: argparse.Namespace) -> list[str]:
    """Each target, met or missed, from the rows at the published k."""
    k, out = args.k, []
    for r in sorted((r for r in rows if r["mode"] == "none" and r["k"] == k),
                    key=lambda r: (r["orgs"], r["drop_stage"])):
        out.append(f"- Projection alone (no noise, k = {k}), {r['orgs']} orgs, "
                   f"{r['summed']} summed: TinyLM gain fraction {r['tinylm_gain_fraction']:.2f} "
                   "(what a k-dim release of these organizations keeps before noise).")
    for r in sorted((r for r in rows if r["mode"] == "none" and r["k"] == 2048),
                    key=lambda r: r["orgs"]):
        out.append(f"- {r['orgs']} orgs: base TinyLM perplexity {r['ppl_base']:.0f}, non-private "
                   f"{r['ppl']:.0f}; base LLM {r['llm_ppl_base']:.0f}, translated non-private "
                   f"mean {r['llm_ppl']:.0f}"
                   + (" (no LLM gain to keep: LLM gain fractions undefined)"
                      if r["llm_ppl"] >= r["llm_ppl_base"] else "") + "; batched Flower "
                   f"rounds of this n: {_batched(rows, r['orgs'])}.")
    for c in checks(args.orgs):
        out.append(f"- Check, {c['orgs']} orgs, {c['check']} (SecAgg+ threshold "
                   f"{c['threshold']}): {'released' if c['released'] else 'nothing released'}.")
    for n in sorted({r["orgs"] for r in rows if r.get("sweep")}):
        sweep = {r["k"]: r["tinylm_gain_fraction"] for r in rows if r["orgs"] == n
                 and r.get("sweep") and r["mode"] == "distributed"}
        best = max(sweep, key=lambda j: sweep[j])
        out.append(f"- k sweep, {n} orgs, epsilon {args.sweep_eps:g}, distributed: best "
                   f"k = {best} (gain fraction {sweep[best]:.2f}; "
                   + ", ".join(f"k={j}: {g:.2f}" for j, g in sorted(sweep.items())) + ").")
    out += _noise_ratios(rows, k)
    demo = [r for r in rows if (r["orgs"], r["epsilon"], r["k"], r["mode"], r["drop_stage"])
            == (3, 8.0, k, "distributed", STAGES[0]) and r["min_survivors"] == 3]
    for r in demo:
        out.append(f"- Demo scale, 3 orgs, epsilon 8, {config(r)}: TinyLM gain fraction "
                   f"{_pm(r, 'tinylm_gain_fraction')} over {r['draws']} draws "
                   f"({'>=' if r['tinylm_gain_fraction'] >= 0.5 else 'below'} 0.5).")
    for t in target_rows(rows, k):
        verdict = {True: "met", False: "MISSED", None: "undefined"}[t["met"]]
        if t["target"] == "gain_fraction >= 0.5":
            out.append(f"- {t['orgs']} organizations, epsilon {t['epsilon']:g}, distributed "
                       f"{t['configuration']}: TinyLM gain fraction {t['distributed']:.2f} ± "
                       f"{t['distributed_std']:.2f} (target >= 0.50 on the mean: {verdict}).")
        else:
            ci = t["relative_gap_ci95"]
            gap = ("undefined" if t["relative_gap"] is None else
                   f"{t['relative_gap']:+.1%} ± {t['relative_gap_se']:.1%} s.e., 95% bootstrap "
                   f"CI [{ci[0]:+.1%}, {ci[1]:+.1%}]: {t['ci_vs_margin']}")
            note = "" if t["issue_target"] else " (not the issue's scenario)"
            out.append(f"- distributed vs central, {t['orgs']} orgs, epsilon {t['epsilon']}, "
                       f"{t['configuration']}{note}, {t['draws']} draws each: "
                       f"{t['distributed']:.3f} ± {t['distributed_se']:.3f} s.e. (std "
                       f"{t['distributed_std']:.2f}) vs {t['central']:.3f} ± "
                       f"{t['central_se']:.3f} s.e. (std {t['central_std']:.2f}), noise L2 "
                       f"{t['distributed_noise_l2']:.3f} vs {t['central_noise_l2']:.3f} "
                       f"(relative gap of the means {gap}; "
                       f"target <= 10% on the means: {verdict}).")
    return out


def target_rows(rows: list[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """The issue's targets at the published ``k``, per distributed configuration, each with its
    measured means (std over draws) and verdict on the means; ``issue_target``: the issue's
    scenario (30% dropping after masking)."""
    main = [r for r in rows if r["k"] == k and r["mode"] == "distributed"]
    out: list[dict[str, Any]] = []
    for r in main:
        if (r["orgs"], r["epsilon"]) in ((10, 8.0), (100, 2.0)):
            g = r["tinylm_gain_fraction"]
            out.append({"target": "gain_fraction >= 0.5", "orgs": r["orgs"],
                        "epsilon": r["epsilon"], "min_survivors": r["min_survivors"],
                        "drop_stage": r["drop_stage"], "configuration": config(r),
                        "distributed": g, "distributed_std": r["tinylm_gain_fraction_std"] or 0.0,
                        "draws": r["draws"], "met": g >= 0.5})
    for r in main:
        c = next((c for c in rows if c["mode"] == "central" and c["k"] == k and
                  (c["orgs"], c["epsilon"], c["drop_stage"])
                  == (r["orgs"], r["epsilon"], r["drop_stage"])), None)
        if c is None:
            continue
        out.append({"target": "distributed within 10% of central", "orgs": r["orgs"],
                    "epsilon": r["epsilon"], "min_survivors": r["min_survivors"],
                    "drop_stage": r["drop_stage"], "configuration": config(r),
                    "issue_target": r["drop_stage"] == "after_masking",
                    "distributed": r["tinylm_gain_fraction"],
                    "distributed_std": r["tinylm_gain_fraction_std"] or 0.0,
                    "central": c["tinylm_gain_fraction"],
                    "central_std": c["tinylm_gain_fraction_std"] or 0.0,
                    "distributed_noise_l2": r["noise_l2"], "central_noise_l2": c["noise_l2"],
                    "draws": r["draws"], "central_draws": c["draws"]}
                   | comparison(r["tinylm_gain_fraction_draws"],
                                c["tinylm_gain_fraction_draws"]))
    return out


def _noise_ratios(rows: list[dict[str, Any]], k: int) -> list[str]:
    """Noise L2 of each distributed configuration over central's at the same setting."""
    ratios: dict[str, list[float]] = {}
    for t in target_rows(rows, k):
        if t["target"] != "gain_fraction >= 0.5":
            share = "n" if t["min_survivors"] == t["orgs"] else "0.7n"
            name = f"min_survivors={share}, drop {t['drop_stage'].replace('_', ' ')}"
            ratios.setdefault(name, []).append(t["distributed_noise_l2"] / t["central_noise_l2"])
    return [f"- Noise L2 of distributed / central (mean over every n and epsilon at k = {k}), "
            f"{name}: {np.mean(v):.2f} (range {min(v):.2f}-{max(v):.2f}; expected "
            f"{'1/sqrt(0.7) = 1.20' if '0.7n' in name and 'after' in name else '1.00'})."
            for name, v in ratios.items()]


def _batched(rows: list[dict[str, Any]], n: int) -> str:
    """The batched Flower rounds' seconds at ``n`` (per drop stage, one per run)."""
    parts = []
    for stage in STAGES:
        times = sorted({round(r["batched_round_s"]) for r in rows if r["orgs"] == n
                        and r["drop_stage"] == stage and r.get("batched_round_s") is not None})
        if times:
            parts.append(f"drop {stage.split('_')[0]} masking " + " s, ".join(map(str, times))
                         + " s")
    return "; ".join(parts) or "-"
