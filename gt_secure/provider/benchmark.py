"""The utility benchmark behind ``bench/utility.py`` and ``gt-secure bench utility``."""

from __future__ import annotations

import json
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from gt_secure.provider.baselines import MeanUpdate, RidgeMap
from gt_secure.provider.build import compare_on_pairs
from gt_secure.provider.shadow import ShadowConfig, generate_shadow_pairs
from gt_secure.provider.training import TrainConfig, train_translator
from gt_secure.provider.utility import Score, Translate, UtilityConfig, evaluate_org, pgr_table

METHOD_ORDER = (
    "base_tinylm",
    "tinylm_finetuned",
    "base_llm",
    "mean_update",
    "ridge",
    "distillation",
    "grad_transformer",
    "llm_finetuned",
)


def run_utility_benchmark(
    shadow: ShadowConfig,
    train: TrainConfig,
    utility: UtilityConfig,
    cache: Path,
    out_dir: Path,
    console: Console | None = None,
) -> dict:
    console = console or Console()
    start = time.time()
    pairs = generate_shadow_pairs(shadow, cache)
    console.print(
        f"shadow pairs: {len(pairs.tiny)} from {shadow.subsets} subsets "
        f"({time.time() - start:.0f}s)"
    )
    held_out = compare_on_pairs(pairs, train)
    _print_pairs(console, held_out)
    translator, _ = train_translator(pairs, train)
    methods: dict[str, Translate] = {
        "mean_update": MeanUpdate(pairs).translate,
        "ridge": RidgeMap(pairs).translate,
        "grad_transformer": translator.translate,
    }
    scores: list[Score] = []
    for org in utility.orgs:
        for seed in utility.seeds:
            scores += evaluate_org(org, seed, methods, utility)
            console.print(f"evaluated {org} seed {seed} ({time.time() - start:.0f}s)")
    table = pgr_table(scores)
    _print_pgr(console, table, utility)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = {
        "shadow": shadow.model_dump(mode="json"),
        "train": train.model_dump(mode="json"),
        "utility": utility.model_dump(mode="json"),
        "held_out_pairs": held_out,
        "pgr": table,
        "scores": [s.model_dump() for s in scores],
        "seconds": time.time() - start,
    }
    (out_dir / "utility.json").write_text(json.dumps(result, indent=2))
    _plot(table, out_dir / "utility.png")
    return result


def _print_pairs(console: Console, held_out: dict[str, dict[str, float]]) -> None:
    t = Table(title="Held-out shadow subsets: predicted vs true LLM update")
    t.add_column("method")
    t.add_column("relative L2 error", justify="right")
    t.add_column("cosine", justify="right")
    for method, m in held_out.items():
        t.add_row(method, f"{m['val_relative_error']:.3f}", f"{m['val_cosine']:.3f}")
    console.print(t)


def _print_pgr(console: Console, table: dict[str, dict[str, float]], cfg: UtilityConfig) -> None:
    t = Table(
        title=f"PGR on held-out organization domains {list(cfg.orgs)}, "
        f"{len(cfg.seeds)} seeds (mean ± std)"
    )
    for col in ("method", "perplexity", "PGR (LM)", "accuracy", "PGR (accuracy)"):
        t.add_column(col, justify="right" if col != "method" else "left")
    for method in METHOD_ORDER:
        if method not in table:
            continue
        m = table[method]
        t.add_row(
            method,
            f"{m['ppl_mean']:.1f} ± {m['ppl_std']:.1f}",
            f"{m['pgr_lm_mean']:.3f} ± {m['pgr_lm_std']:.3f}",
            f"{m['acc_mean']:.3f} ± {m['acc_std']:.3f}",
            f"{m['pgr_acc_mean']:.3f} ± {m['pgr_acc_std']:.3f}",
        )
    console.print(t)


def _plot(table: dict[str, dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = [m for m in METHOD_ORDER if m in table]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    x = range(len(methods))
    for offset, key, label in ((-0.2, "pgr_lm", "PGR (LM)"), (0.2, "pgr_acc", "PGR (accuracy)")):
        ax.bar(
            [i + offset for i in x],
            [table[m][f"{key}_mean"] for m in methods],
            width=0.4,
            yerr=[table[m][f"{key}_std"] for m in methods],
            label=label,
        )
    ax.set_xticks(list(x), methods, rotation=30, ha="right")
    ax.axhline(1.0, color="grey", linestyle="--", linewidth=0.8)
    ax.set_ylabel("PGR")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
