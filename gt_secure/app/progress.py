"""The ServerApp's progress lines, through Flower's logger so that ``flwr run --stream`` (and
``flwr log``) shows them: where the results go, then one line per round (organizations heard,
accepted and refused, round time), then where the results are.

An organization is *heard* when its node replied in the round (accepted, or refused for what it
sent or for an error it reported); one that did not reply in time is not.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from flwr.common.logger import log

NO_REPLY = "no reply within"


def short_reason(message: str, limit: int = 300) -> str:
    """One line of a refusal for the console: the line naming what ``must be``, else the last
    line (a reply's error carries the organization's whole traceback; summary.json keeps it)."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    text = next((line for line in reversed(lines) if " must be " in line),
                lines[-1] if lines else message)
    text = text.split("Message: ", 1)[-1].removesuffix("'>")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _refusals(rejections: Sequence[Mapping[str, Any]]) -> str:
    """``org: field`` per refusal, by organization, unnamed ones last (replies arrive in any
    order, the line should not)."""
    ordered = sorted(rejections, key=lambda r: (r["org_id"] == "?", str(r["org_id"]),
                                                str(r["field"])))
    return ", ".join(f"{r['org_id']}: {r['field']}" for r in ordered)


def round_line(record: Mapping[str, Any], num_rounds: int) -> str:
    """One line for a round record of ``summary.json``."""
    rejections = record["rejections"]
    silent = sum(1 for r in rejections if str(r["message"]).startswith(NO_REPLY))
    heard = record["num_nodes"] - silent
    accepted = record["accepted"]
    seconds = record["seconds"]
    refused = (f"refused {len(rejections)} ({_refusals(rejections)})" if rejections
               else "refused 0")
    return (f"round {record['round']}/{num_rounds}: heard {heard} of {record['num_nodes']} "
            f"organizations, accepted {len(accepted)} ({', '.join(accepted) or 'none'}), "
            f"{refused}; round {seconds['round']:.1f} s, provider {seconds['provider']:.1f} s")


def started(run_id: int, protocol: str, aggregation: str, num_rounds: int,
            summary: Path) -> None:
    """Announce the run and where its results go."""
    log(logging.INFO, "gt-secure run %s: protocol %s (%s aggregation), %d round(s); results "
        "in %s", run_id, protocol, aggregation, num_rounds, summary)


def round_done(record: Mapping[str, Any], num_rounds: int) -> None:
    """Report one finished round (a round with no accepted update is a warning)."""
    level = logging.INFO if record["accepted"] else logging.WARNING
    log(level, "%s", round_line(record, num_rounds))


def finished(summary: Mapping[str, Any], path: Path) -> None:
    """Say where the results are: summary.json and the last adapter delivered, if any."""
    rounds = summary["rounds"]
    adapter = next((r["provider"]["adapter_dir"] for r in reversed(rounds)
                    if (r["provider"] or {}).get("adapter_dir")), None)
    log(logging.INFO, "gt-secure run %s finished: %d round(s); results in %s%s",
        summary["run_id"], len(rounds), path,
        f"; LLM adapter in {adapter}" if adapter else "; no LLM adapter (no translator)")
