"""After the last round: the provider sends the LLM adapter to every organization.

Provider: :func:`deliver_adapter` sends the exported LLM update vector (safetensors bytes, with
its layout) and its content hash in an ``EVALUATE`` message. Organization:
:func:`receive_adapter` checks the hash and the layout (base-model hash of its own copy of the
shipped LLM), writes the PEFT adapter to ``<state-dir>/adapters/<run>-round<k>/`` and reports
the perplexity of its own validation texts under the base LLM and the adapted LLM; only these
two numbers (and the text count) go back to the provider.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any, cast

from flwr.app import ConfigRecord, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid

from gt_secure.app.messages import KEY_ORG, META
from gt_secure.app.rounds import RoundResult, collect_replies
from gt_secure.errors import InvalidFieldError
from gt_secure.update import UpdateVector

ADAPTER = "gt.adapter"
EVALUATION = "gt.evaluation"
KEY_VECTOR = "llm-update"
KEY_HASH = "llm-update-hash"
KEY_ROUND = "round"
EVAL_TEXTS = 32  # default node-config "eval-texts"


def adapter_message(round_idx: int, adapter_dir: Path) -> RecordDict:
    """Content of the delivery: the LLM update vector file and its content hash."""
    update_file = adapter_dir / "update_vector.safetensors"
    digest = UpdateVector.load(update_file).content_hash()
    return RecordDict({ADAPTER: ConfigRecord({
        KEY_VECTOR: update_file.read_bytes(), KEY_HASH: digest, KEY_ROUND: round_idx})})


def deliver_adapter(grid: Grid, node_ids: list[int], round_idx: int, adapter_dir: Path,
                    timeout: float) -> dict[str, Any]:
    """Send the adapter of ``round_idx`` to every node; collect their own evaluations."""
    content = adapter_message(round_idx, adapter_dir)
    result = RoundResult(round_idx, "delivery", None)
    evaluations: dict[str, dict[str, float]] = {}

    def accept(org: str, reply: RecordDict) -> None:
        metrics = reply.metric_records[EVALUATION]
        evaluations[org] = {k: float(cast(float, v)) for k, v in metrics.items()}

    collect_replies(grid, node_ids, result, lambda: content, timeout, accept,
                    MessageType.EVALUATE)
    return {"round": round_idx, "llm_update_hash": content[ADAPTER][KEY_HASH],
            "evaluations": evaluations, "failures": [asdict(r) for r in result.rejections]}


def receive_adapter(content: RecordDict, state_dir: Path, run_id: int,
                    eval_texts: list[str]) -> tuple[Path, dict[str, float]]:
    """Organization side: verify, save and evaluate a delivered adapter.

    Returns the adapter directory and ``{"base_llm_ppl", "generated_llm_ppl", "texts"}``.
    """
    from gt_secure.models.loading import base_model_hash, load_base
    from gt_secure.models.scoring import perplexity
    from gt_secure.provider.adapter import export_adapter, load_adapter

    record = content.config_records[ADAPTER]
    round_idx = int(cast(int, record[KEY_ROUND]))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "update_vector.safetensors"
        path.write_bytes(bytes(cast(bytes, record[KEY_VECTOR])))
        update = UpdateVector.load(path)
    if update.content_hash() != record[KEY_HASH]:
        raise InvalidFieldError("adapter.llm_update_hash", record[KEY_HASH],
                                f"the received vector's content hash {update.content_hash()}")
    local_hash = base_model_hash(update.layout.base_model)
    if update.layout.base_model_hash != local_hash:
        raise InvalidFieldError("adapter.layout.base_model_hash", update.layout.base_model_hash,
                                f"this node's {update.layout.base_model} hash {local_hash}")
    adapter_dir = export_adapter(update, state_dir / "adapters" / f"{run_id}-round{round_idx}")
    base, tokenizer = load_base(update.layout.base_model)
    metrics = {"base_llm_ppl": perplexity(base, tokenizer, eval_texts),
               "generated_llm_ppl": perplexity(load_adapter(adapter_dir), tokenizer, eval_texts),
               "texts": float(len(eval_texts))}
    return adapter_dir, metrics


def evaluation_reply(org_id: str, metrics: dict[str, float]) -> RecordDict:
    """The organization's answer: its id and its two perplexities."""
    return RecordDict({EVALUATION: MetricRecord(dict(metrics)),
                       META: ConfigRecord({KEY_ORG: org_id})})
