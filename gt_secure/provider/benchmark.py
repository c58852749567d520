"""The utility benchmark behind ``bench/utility.py``: translators vs baselines, PGR, gates."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from gt_secure.data.families import org_family
from gt_secure.provider.baselines import FamilyMean, KnnMap, MeanUpdate, RidgeMap
from gt_secure.provider.shadow import ShadowConfig, eps_key, generate_shadow_set
from gt_secure.provider.shadow_plan import FAMILY_INDEX
from gt_secure.provider.training import TrainConfig, Translator, train_translator
from gt_secure.provider.utility import (
    Evaluator,
    Score,
    Translate,
    UtilityConfig,
    evaluate_multi,
    evaluate_single,
    pgr_rows,
    public_finetunes,
)

METHOD_ORDER = ("base_llm", "tinylm_finetuned", "global_mean", "family_mean", "knn", "ridge",
                "grad_transformer", "distillation", "public_finetune", "llm_finetuned")
BASELINES = ("global_mean", "family_mean", "public_finetune", "distillation")


def run_utility_benchmark(shadow: ShadowConfig, train: TrainConfig, utility: UtilityConfig,
                          cache: Path, out_dir: Path, console: Console | None = None,
                          epsilons: tuple[float, ...] = (math.inf, 8.0, 1.0),
                          translator_dir: Path | None = None) -> dict:
    """Generate shadow pairs, fit every translator per epsilon, score them; write the results."""
    console = console or Console(width=160)
    start = time.time()
    shadow_set = generate_shadow_set(shadow, cache, log=True)
    timings = {"shadow_s": time.time() - start}
    console.print(f"shadow set: K={shadow.subsets} ({timings['shadow_s']:.0f} s)")
    ev = Evaluator(utility, shadow)
    public = public_finetunes(ev)
    scores: list[Score] = []
    held_out: dict[str, dict[str, float]] = {}
    result: dict = {}
    for eps in epsilons:
        pairs = shadow_set.pairs(eps)
        train_pairs, _ = pairs.split()
        t0 = time.time()
        translator, metrics = train_translator(pairs, train)
        held_out[eps_key(eps)] = metrics | {"train_s": time.time() - t0}
        console.print(f"eps={eps_key(eps)}: translator {metrics}")
        if translator_dir is not None and math.isinf(eps):
            translator.save(translator_dir, metrics, {"shadow": shadow.model_dump(mode="json"),
                                                      "train": train.model_dump(mode="json")})
            pairs.split()[1].save(str(translator_dir / "shadow_pairs.safetensors"))  # held out
        methods = _methods(train_pairs, translator)
        oracles = {org: FamilyMean(train_pairs, FAMILY_INDEX[org_family(org)]).translate
                   for org in (*utility.orgs, *utility.stretch_orgs, *utility.mixture_orgs)}
        scores += evaluate_single(ev, methods, eps, public, oracles)
        scores += evaluate_multi(ev, methods, eps)
        console.print(f"eps={eps_key(eps)} evaluated ({time.time() - start:.0f} s)")
        # Written after every epsilon: a run cut short keeps what it measured.
        result = _write(out_dir, shadow, train, utility, held_out, scores, start)
        print_rows(console, [r for r in result["rows"] if r["epsilon"] == eps])
    print_gates(console, result["gates"])
    return result


def _write(out_dir: Path, shadow: ShadowConfig, train: TrainConfig, utility: UtilityConfig,
           held_out: dict, scores: list[Score], start: float) -> dict:
    rows = pgr_rows(scores)
    result = {"shadow": shadow.model_dump(mode="json"), "train": train.model_dump(mode="json"),
              "utility": utility.model_dump(mode="json"), "held_out_pairs": held_out,
              "rows": rows, "baselines": list(BASELINES), "gates": gates(rows),
              "scores": [s.model_dump() for s in scores], "seconds": time.time() - start}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "utility.json").write_text(json.dumps(result, indent=2, default=str))
    return result


def _methods(pairs, translator: Translator) -> dict[str, Translate]:  # type: ignore[no-untyped-def]
    return {"global_mean": MeanUpdate(pairs).translate, "knn": KnnMap(pairs).translate,
            "ridge": RidgeMap(pairs).translate, "grad_transformer": translator.translate}


def _row(rows: list[dict], method: str, eps: float, setting: str) -> dict | None:
    for r in rows:
        if r["method"] == method and r["epsilon"] == eps and r["setting"] == setting:
            return r
    return None


def gates(rows: list[dict]) -> list[dict]:
    """The issue's targets, each with the measured value and pass/fail."""
    out = []

    def pgr(method: str, eps: float, setting: str = "single") -> float:
        r = _row(rows, method, eps, setting)
        return r["pgr_mean"] if r else float("nan")

    inf = math.inf
    best = float(np.nanmax([pgr(b, inf) for b in BASELINES]))
    gt = pgr("grad_transformer", inf)
    checks = [  # (target, value, threshold, at most?)
        ("single eps=inf GT PGR >= 0.9", gt, 0.9, False),
        ("single eps=inf GT - best baseline >= 0.2", gt - best, 0.2, False),
        ("single eps=8 GT PGR >= 0.8", pgr("grad_transformer", 8.0), 0.8, False),
        ("single eps=1 GT PGR >= 0.6", pgr("grad_transformer", 1.0), 0.6, False),
        ("multi eps=inf GT PGR >= 0.8", pgr("grad_transformer", inf, "multi"), 0.8, False),
        ("public same-family fine-tune PGR <= 0.6", pgr("public_finetune", inf), 0.6, True),
        ("GT - ridge >= -0.02 (eps=inf)", gt - pgr("ridge", inf), -0.02, False),
        ("GT - ridge >= -0.02 (multi, eps=inf)", pgr("grad_transformer", inf, "multi")
         - pgr("ridge", inf, "multi"), -0.02, False),
    ]
    for name, value, threshold, at_most in checks:
        passed = value <= threshold if at_most else value >= threshold
        out.append({"target": name, "value": value, "threshold": threshold,
                    "passed": bool(passed)})
    return out


def print_rows(console: Console, rows: list[dict]) -> None:
    for setting in ("single", "multi", "stretch", "mixture"):
        t = Table(title=f"PGR ({setting}; mean ± std over organizations x seeds)")
        for col in ("method", "epsilon", "PGR", "perplexity per organization"):
            t.add_column(col)
        order = {m: i for i, m in enumerate(METHOD_ORDER)}
        for r in sorted((r for r in rows if r["setting"] == setting),
                        key=lambda r: (-r["epsilon"], order.get(r["method"], 99))):
            ppl = ", ".join(f"{o} {v:.1f}" for o, v in r["perplexity"].items())
            t.add_row(r["method"], eps_key(r["epsilon"]),
                      f"{r['pgr_mean']:.3f} ± {r['pgr_std']:.3f}", ppl)
        console.print(t)


def print_gates(console: Console, checks: list[dict]) -> None:
    for c in checks:
        mark = "PASS" if c["passed"] else "FAIL"
        console.print(f"{mark}  {c['target']}: {c['value']:.3f}")
