"""The demo's closing lines: what the protocol protected and what the shared update bought."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

BASE_OF = {"tinylm_aggregated": "base_tinylm", "generated_llm": "base_llm"}
NEGLIGIBLE = 0.05  # a mean perplexity change below 5% is reported as "about the base model"


def change_vs_base(ppl: dict[str, dict[str, float]]) -> dict[str, float]:
    """Mean over organizations of perplexity / base perplexity - 1, for each released model."""
    return {
        name: float(np.mean([ppl[name][o] / ppl[base][o] - 1 for o in ppl[name]]))
        for name, base in BASE_OF.items()
        if name in ppl and base in ppl
    }


def fmt_change(change: float) -> str:
    """``-33%`` for moderate changes, ``x20.6`` once perplexity more than doubles."""
    return f"{change:+.0%}" if change < 1 else f"x{1 + change:.1f}"


def _epsilons(ledgers: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Largest recorded epsilon per privacy unit over the organizations."""
    out: dict[str, float] = {}
    for record in ledgers.values():
        for unit, eps in record.get("epsilon", {}).items():
            out[unit] = max(out.get(unit, 0.0), eps)
    return out


def _protection(config: dict[str, Any], eps: dict[str, float], dim: int) -> str:
    example = eps.get("example")
    organization = eps.get("organization")
    parts = [f"example-level eps={example:.2f} (each training record protected)" if example
             else "no example-level DP (training records NOT protected)"]
    if organization:
        z, clip = float(config["noise_multiplier"]), float(config["clip_norm"])
        noise = z * clip * math.sqrt(dim)
        parts.append(f"organization-level eps={organization:.2f} (each organization's dataset "
                     f"protected as a unit; its noise has norm ~{noise:.0f} per organization vs "
                     f"an update of norm <= {clip:g})")
    else:
        parts.append("no organization-level DP (an organization's dataset as a whole is NOT "
                     "protected; organization eps = inf)")
    return "; ".join(parts)


def _effect(change: dict[str, float]) -> str:
    words = []
    for name, label in (("tinylm_aggregated", "aggregated TinyLM"),
                        ("generated_llm", "generated LLM")):
        if name not in change:
            continue
        c = change[name]
        if abs(c) < NEGLIGIBLE:
            text = f"{label} {fmt_change(c)}, about the base model"
        else:
            text = f"{label} {fmt_change(c)} ({'better' if c < 0 else 'WORSE'} than the base model)"
        words.append(text)
    return "perplexity vs base, mean over organizations: " + "; ".join(words)


def verdict(summary: dict[str, Any], ledgers: dict[str, dict[str, Any]],
            ppl: dict[str, dict[str, float]], dim: int) -> list[str]:
    """Three lines: the protocol and its guarantees, the measured effect, what to run next."""
    config = summary.get("config", {})
    protocol = str(config.get("protocol", "?"))
    texts = config.get("num_texts") or 64
    eps = _epsilons(ledgers)
    change = change_vs_base(ppl)
    lines = [f"Protocol {protocol} ({len(ledgers)} organizations, {texts} texts and "
             f"{config.get('local_steps', '?')} steps each): {_protection(config, eps, dim)}.",
             _effect(change) + "."]
    llm = change.get("generated_llm")
    if llm is not None and abs(llm) < NEGLIGIBLE:
        lines.append("The shipped translator does not yet transfer to these held-out domains "
                     "(docs/benchmarks.md, Utility).")
    if "organization" not in eps:
        lines.append("For the organization-level guarantee and its cost: "
                     "gt-secure demo --protocol dp-secagg (docs/benchmarks.md, Demo utility).")
    return lines
