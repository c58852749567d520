"""Wire format between the provider (ServerApp) and organizations (ClientApps).

Plain rounds use the Message API: the request carries ``ArrayRecord "gt.global"`` (the current
cumulative TinyLM update) and ``ConfigRecord "gt.request"``; the reply carries
``ArrayRecord "gt.update"`` and ``ConfigRecord "gt.meta"``. SecAgg+ rounds go through Flower's
legacy ``FitIns``/``FitRes`` records, which ``secaggplus_mod`` expects: the same update travels
as ``fitres.parameters`` (masked by the mod) and the same metadata as ``fitres.metrics``.
CKKS rounds mark the plain request with ``ConfigRecord "gt.ckks"`` (``stage = "train"``); the
organization's ``ckks_encrypt_mod`` keeps the vector on the node and replies with the metadata
only; the later stages (key agreement, encryption, decryption) are TRAIN messages whose
``"gt.ckks"`` record names the stage (:mod:`gt_secure.app.ckks_messages`), as Flower's SecAgg+
stages are. Metadata never contains the update values; under SecAgg+ and CKKS it also omits the
content hash.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS
from flwr.compat.common import recorddict_compat as compat

GLOBAL = "gt.global"
REQUEST = "gt.request"
UPDATE = "gt.update"
META = "gt.meta"
CKKS = "gt.ckks"
KEY_STAGE = "stage"
FLAT = "flat"
KEY_ROUND = "round"
KEY_ORG = "org-id"
KEY_LAYOUT = "layout"
KEY_LEDGER = "ledger-entry"
KEY_HASH = "content-hash"


@dataclass(frozen=True)
class UpdatePayload:
    """One organization's update as it leaves (or, for plain rounds, reaches) the wire."""

    org_id: str
    flat: np.ndarray
    layout_json: str
    ledger_json: str
    content_hash: str = ""

    def meta(self) -> dict[str, str]:
        """Metadata sent next to the vector (no values; no hash when empty)."""
        meta = {KEY_ORG: self.org_id, KEY_LAYOUT: self.layout_json, KEY_LEDGER: self.ledger_json}
        if self.content_hash:
            meta[KEY_HASH] = self.content_hash
        return meta


def is_secagg(content: RecordDict) -> bool:
    """Whether a message belongs to the SecAgg+ protocol (handled by ``secaggplus_mod``)."""
    return RECORD_KEY_CONFIGS in content.config_records


def make_request(round_idx: int, global_flat: np.ndarray) -> RecordDict:
    """Plain-round instruction: round number and the current cumulative update."""
    return RecordDict({
        GLOBAL: ArrayRecord({FLAT: Array(np.asarray(global_flat, dtype=np.float32))}),
        REQUEST: ConfigRecord({KEY_ROUND: round_idx}),
    })


def make_ckks_request(round_idx: int, global_flat: np.ndarray) -> RecordDict:
    """CKKS-round training instruction: the plain request marked ``stage = "train"``."""
    content = make_request(round_idx, global_flat)
    content[CKKS] = ConfigRecord({KEY_STAGE: "train", KEY_ROUND: round_idx})
    return content


def read_ckks_request(content: RecordDict) -> str | None:
    """The CKKS stage a message asks for (``train``, ``keys``, ``encrypt``, ``decrypt``);
    ``None`` for other requests."""
    record = content.config_records.get(CKKS)
    if record is None:
        return None
    return str(record.get(KEY_STAGE, ""))


def read_request(content: RecordDict) -> tuple[int, np.ndarray]:
    """Round number and cumulative update from a plain request or a SecAgg+ ``FitIns``."""
    if GLOBAL in content.array_records:
        flat = content.array_records[GLOBAL][FLAT].numpy()
        return int(cast(int, content.config_records[REQUEST][KEY_ROUND])), flat
    fitins = compat.recorddict_to_fitins(content, keep_input=True)
    (flat,) = parameters_to_ndarrays(fitins.parameters)
    return int(cast(int, fitins.config[KEY_ROUND])), flat


def write_reply(payload: UpdatePayload, secagg: bool) -> RecordDict:
    """Reply content; ``FitRes`` records (weight 1) when the round runs SecAgg+."""
    flat = np.asarray(payload.flat, dtype=np.float32)
    if secagg:
        meta: dict[str, Any] = {k: v for k, v in payload.meta().items() if k != KEY_HASH}
        # float64: Flower's quantizer then rounds in float64 (see gt_secure.aggregation.secagg)
        wide = [flat.astype(np.float64)]
        fitres = FitRes(Status(Code.OK, ""), ndarrays_to_parameters(wide), 1, meta)
        return compat.fitres_to_recorddict(fitres, keep_input=True)
    return RecordDict({
        UPDATE: ArrayRecord({FLAT: Array(flat)}),
        META: ConfigRecord(dict(payload.meta())),
    })


def read_meta(content: RecordDict) -> dict[str, str]:
    """Metadata of a reply in either format."""
    record = content.config_records.get(META) or content.config_records.get("fitres.metrics")
    if record is None:
        return {}
    return {str(k): str(v) for k, v in record.items()}


def read_reply(content: RecordDict) -> UpdatePayload:
    """Decode a reply (either format) into an :class:`UpdatePayload`."""
    meta = read_meta(content)
    if UPDATE in content.array_records:
        flat = content.array_records[UPDATE][FLAT].numpy()
    else:
        (wide,) = parameters_to_ndarrays(compat.recorddict_to_fitres(content, True).parameters)
        flat = np.asarray(wide).astype(np.float32)
    return UpdatePayload(meta.get(KEY_ORG, "?"), flat, meta.get(KEY_LAYOUT, ""),
                         meta.get(KEY_LEDGER, ""), meta.get(KEY_HASH, ""))

