"""After the federation: verify and report every ledger, evaluate and audit the released models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from gt_secure.data.organizations import ORGANIZATIONS, org_texts
from gt_secure.demo.verdict import change_vs_base, fmt_change, verdict

MEMBERS = 64  # audited members per organization: its first training texts (all were trained on)


def verify_ledgers(out: Path, console: Console) -> dict[str, dict[str, Any]]:
    """Verify each organization's ledger against its public key and, when the aggregator
    returned one, its latest receipt (nothing dropped since); write an HTML report each."""
    from gt_secure.ledger.report import LedgerView, view_of
    from gt_secure.ledger.report_html import html_report
    from gt_secure.ledger.signing import load_trusted_keys
    from gt_secure.ledger.store import Ledger
    from gt_secure.ledger.verify import verify_ledger

    results: dict[str, dict[str, Any]] = {}
    reports = out / "reports"
    reports.mkdir(exist_ok=True)
    for org in ORGANIZATIONS:
        state = out / "organizations" / org
        path = state / "ledger.jsonl"
        if not path.exists():
            results[org] = {"ok": False, "entries": 0, "detail": "no ledger written"}
            continue
        trusted = load_trusted_keys([state])
        receipt_file = state / "ledger.jsonl.receipts" / "aggregator.txt"
        witness = out / "provider" / "witness"  # the aggregator's cosigning key
        receipt = None
        if receipt_file.exists() and witness.is_dir():
            trusted = load_trusted_keys([state, witness])
            receipt = receipt_file.read_text(encoding="utf-8")
        check = verify_ledger(path, trusted, receipt=receipt)
        entries = Ledger(path).entries()
        signers = {k: t.owner for k, t in trusted.items()}
        view = (view_of(path, check, signers) if entries  # a ledger with its header only
                else LedgerView(path, entries, check, signers))
        (reports / f"ledger-{org}.html").write_text(
            html_report([view], f"Privacy ledger: {org}"), encoding="utf-8"
        )
        results[org] = {
            "ok": check.ok,
            "entries": len(entries),
            "detail": check.summary(),
            "epsilon": {e.mechanisms[0].unit: e.epsilon_total for e in entries
                        if e.kind == "release"},
            "unprotected_releases": sum(e.kind == "unprotected_release" for e in entries),
        }
    return results


def _last_round(summary: dict[str, Any], out: Path) -> Path:
    return out / "provider" / f"round{len(summary['rounds'])}"


def _last_update(summary: dict[str, Any], out: Path) -> Any:
    """The cumulative TinyLM update after the last round (an ``UpdateVector``)."""
    from gt_secure.update import UpdateVector

    return UpdateVector.load(_last_round(summary, out) / "tinylm_update.safetensors")


def released_models(summary: dict[str, Any], out: Path) -> dict[str, Any]:
    """Base models and the last round's aggregated TinyLM and generated LLM."""
    from gt_secure.provider.adapter import adapted_model, fresh_lora, load_adapter

    last = _last_round(summary, out)
    models: dict[str, Any] = {
        "base_tinylm": fresh_lora("tinylm")[0],
        "tinylm_aggregated": adapted_model(_last_update(summary, out)),
        "base_llm": fresh_lora("llm")[0],
    }
    if (last / "adapter" / "adapter_config.json").exists():
        models["generated_llm"] = load_adapter(last / "adapter")
    return models


def membership_audit(models: dict[str, Any], trained: int) -> dict[str, dict[str, float]]:
    """Loss attack: each organization's first ``min(64, trained)`` training texts (members, all
    trained on) vs as many held-out texts."""
    from gt_secure.audit.attacks import LossAttack
    from gt_secure.audit.metrics import attack_metrics
    from gt_secure.models.loading import load_tokenizer

    attack = LossAttack(load_tokenizer())
    out: dict[str, dict[str, float]] = {}
    for name in ("tinylm_aggregated", "generated_llm"):
        if name not in models:
            continue
        scores, labels = [], []
        for org in ORGANIZATIONS:
            n = min(MEMBERS, trained)
            members, others = org_texts(org, "train", n), org_texts(org, "test", n)
            scores.append(attack.score(models[name], members + others))
            labels.append(np.r_[np.ones(len(members)), np.zeros(len(others))])
        m = attack_metrics(np.concatenate(scores), np.concatenate(labels))
        out[name] = {
            "auc": m.auc,
            "auc_low": m.auc_ci[0],
            "auc_high": m.auc_ci[1],
            "tpr_at_1pct_fpr": next(t.tpr for t in m.tpr_at_fpr if t.target_fpr == 0.01),
        }
    return out


def summarise(summary: dict[str, Any], out: Path, console: Console) -> dict[str, Any]:
    from gt_secure.provider.service import evaluate_models

    ledgers = verify_ledgers(out, console)
    table = Table(title="Privacy ledgers (verified: hash chain, signatures, recomputed epsilon)")
    for col in ("organization", "entries", "epsilon per unit", "verified"):
        table.add_column(col)
    for org, r in ledgers.items():
        eps = ", ".join(f"{u}={e:.2f}" for u, e in r.get("epsilon", {}).items())
        if r.get("unprotected_releases"):
            eps = ", ".join(filter(None, [eps, f"{r['unprotected_releases']} UNPROTECTED (no DP)"]))
        table.add_row(org, str(r["entries"]), eps, "yes" if r["ok"] else f"NO: {r['detail']}")
    console.print(table)
    models = released_models(summary, out)
    trained = int(summary.get("config", {}).get("num_texts") or MEMBERS)
    with console.status("membership-inference audit"):
        audit = membership_audit(models, trained)
    audit_table = Table(title="Membership inference (loss attack; AUC 0.5 = no leakage)")
    for col in ("model", "AUC [95% CI]", "TPR @ 1% FPR"):
        audit_table.add_column(col)
    for name, m in audit.items():
        audit_table.add_row(
            name,
            f"{m['auc']:.3f} [{m['auc_low']:.3f}, {m['auc_high']:.3f}]",
            f"{m['tpr_at_1pct_fpr']:.3f}",
        )
    console.print(audit_table)
    with console.status("evaluating base, aggregated and generated models"):
        ppl, acc = evaluate_models(models)
    change = change_vs_base(ppl)
    result_table = Table(title="Held-out perplexity (accuracy) per organization; lower is better")
    result_table.add_column("model", no_wrap=True)
    for org in ORGANIZATIONS:
        result_table.add_column(org, justify="right")
    result_table.add_column("vs base (mean)", justify="right")
    for name in models:
        shown = fmt_change(change[name]) if name in change else "-"
        result_table.add_row(
            name, *[f"{ppl[name][o]:.1f} ({acc[name][o]:.2f})" for o in ORGANIZATIONS], shown
        )
    console.print(result_table)
    lines = verdict(summary, ledgers, ppl, _last_update(summary, out).flat.size)
    for line in lines:
        console.print(line)
    return {
        "ledgers": ledgers,
        "ledgers_ok": all(r["ok"] for r in ledgers.values()),
        "perplexity": ppl,
        "accuracy": acc,
        "audit": audit,
        "change_vs_base": change,
        "verdict": lines,
        "federation": summary,
    }
