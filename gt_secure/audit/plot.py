"""ROC plots rendered headless (matplotlib Agg) to PNG bytes."""

from __future__ import annotations

import io
from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402

from gt_secure.audit.metrics import RocCurve  # noqa: E402


def roc_png(curves: Mapping[str, RocCurve], title: str = "ROC", dpi: int = 100) -> bytes:
    """Log-log ROC curves with marked points, a linear-axes inset, the chance diagonal; PNG bytes.

    The points are marked and the inset is linear so that a perfect curve (AUC 1.0, which
    runs along the top and left edges of the log-log axes) still reads as one.
    """
    fig = Figure(figsize=(4.5, 4.0), dpi=dpi)
    ax = fig.add_subplot(1, 1, 1)
    inset = ax.inset_axes((0.58, 0.12, 0.38, 0.38))
    floor = 1e-4
    for label, curve in curves.items():
        fpr = [max(f, floor) for f in curve.fpr]
        tpr = [max(t, floor) for t in curve.tpr]
        line = ax.step(fpr, tpr, where="post", label=label)[0]
        ax.plot(fpr, tpr, linestyle="none", marker="o", markersize=3, color=line.get_color())
        inset.plot(curve.fpr, curve.tpr, marker="o", markersize=2, color=line.get_color())
    inset.plot([0.0, 1.0], [0.0, 1.0], linestyle="--", color="grey", linewidth=0.6)
    inset.set_xlim(-0.03, 1.03)
    inset.set_ylim(-0.03, 1.03)
    inset.set_title("linear", fontsize=7)
    inset.tick_params(labelsize=6)
    ax.plot([floor, 1.0], [floor, 1.0], linestyle="--", color="grey", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(floor / 2, 1.5)  # margins: a perfect curve runs along the edges
    ax.set_ylim(floor / 2, 1.5)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title)
    if curves:
        ax.legend(loc="center left", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def epsilon_png(labels: list[str], empirical: list[float], claimed: list[float],
                dpi: int = 100) -> bytes:
    """Grouped bars of empirical lower bound vs claimed epsilon (infinite claims not drawn)."""
    fig = Figure(figsize=(max(4.0, 0.9 * len(labels) + 2.0), 3.2), dpi=dpi)
    ax = fig.add_subplot(1, 1, 1)
    xs = list(range(len(labels)))
    finite = [c if c != float("inf") else 0.0 for c in claimed]
    ax.bar([x - 0.2 for x in xs], empirical, width=0.4, label="empirical lower bound")
    ax.bar([x + 0.2 for x in xs], finite, width=0.4, label="claimed")
    ax.set_xticks(xs)
    ax.set_xticklabels(labels, rotation=20, fontsize=8)
    ax.set_ylabel("epsilon")
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
