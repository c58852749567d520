"""Ledger receipts: after every round the aggregator witnesses each organization's ledger.

Two Flower ``query.ledger`` exchanges per round, independent of the aggregation protocol:

1. ``checkpoint``: each organization answers with its ledger's signed checkpoint, its public key
   and an RFC 9162 consistency proof from the size of the last receipt it holds from the
   aggregator (:func:`answer`). The aggregator's :class:`~gt_secure.ledger.witness.Witness`
   (state under ``<output-dir>/witness``) checks the owner's signature and that the ledger only
   grew since it last cosigned, then cosigns (``cosignature/v1``). A rollback, truncation or fork
   is refused and recorded in ``summary.json`` (``rounds[i].receipts[org].refused``).
2. ``receipt``: the cosigned checkpoint goes back to its organization, which checks it is of its
   own ledger, signed by itself and cosigned by the aggregator's key (pinned on first use in
   ``ledger.jsonl.receipts/aggregator.pub``), and keeps it as
   ``ledger.jsonl.receipts/aggregator.txt`` for ``gt-secure ledger verify --receipt``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from flwr.app import ConfigRecord, Message, RecordDict
from flwr.serverapp import Grid

from gt_secure.errors import GtSecureError, InvalidFieldError
from gt_secure.ledger.proof import decode_proof, encode_proof
from gt_secure.ledger.witness import Witness

log = logging.getLogger("gt_secure.app")
ACTION = "ledger"
MESSAGE_TYPE = f"query.{ACTION}"
RECORD = "gt.ledger"
WITNESS_NAME = "aggregator"


def aggregator_witness(out_dir: Path, org_keys_dir: str = "") -> Witness:
    """The aggregator's witness: key ``<out_dir>/witness/aggregator.key.pem`` (made on first use;
    ``aggregator.pub.pem`` is what auditors trust for receipts) and its memory beside it.

    ``org_keys_dir``: a directory of the organizations' ``<org>.pub.pem`` ledger keys, registered
    out of band; the witness then cosigns only ledgers signed by the key registered for their
    owner. Empty: each organization's key is trusted on first contact."""
    from gt_secure.ledger.signing import (
        generate_key,
        load_private_key,
        load_trusted_keys,
        save_keypair,
    )

    trusted = None
    if org_keys_dir:
        keys = Path(org_keys_dir).expanduser()
        if not keys.is_dir():
            raise InvalidFieldError("org_keys_dir", org_keys_dir,
                                    "an existing directory of <org>.pub.pem ledger keys")
        trusted = load_trusted_keys([keys])
    directory = out_dir / "witness"
    key_path = directory / f"{WITNESS_NAME}.key.pem"
    if not key_path.exists():
        save_keypair(generate_key(), directory, WITNESS_NAME)
    return Witness(WITNESS_NAME, load_private_key(key_path), directory / "seen", trusted)


def _raw_hex(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def _send(grid: Grid, contents: Mapping[int, dict[str, Any]], timeout: float
          ) -> dict[int, dict[str, str]]:
    messages = [Message(RecordDict({RECORD: ConfigRecord(content)}), dst_node_id=node,
                        message_type=MESSAGE_TYPE) for node, content in contents.items()]
    replies: dict[int, dict[str, str]] = {}
    for reply in grid.send_and_receive(messages, timeout=timeout):
        if reply.has_error() or RECORD not in reply.content.config_records:
            continue
        record = reply.content.config_records[RECORD]
        replies[reply.metadata.src_node_id] = {str(k): str(v) for k, v in record.items()}
    return replies


def exchange_receipts(grid: Grid, node_ids: list[int], witness: Witness, round_idx: int,
                      timeout: float, released: frozenset[str] = frozenset()
                      ) -> dict[str, dict[str, Any]]:
    """Witness every organization's checkpoint and return its receipt; the per-org record.

    ``released``: the organizations whose updates this round aggregated; each recorded a release,
    so a ledger that did not grow since the aggregator last cosigned it is refused."""
    asked = _send(grid, {n: {"action": "checkpoint", "round": round_idx} for n in node_ids},
                  timeout)
    records: dict[str, dict[str, Any]] = {}
    receipts: dict[int, dict[str, Any]] = {}
    for node, answer in sorted(asked.items()):
        org = answer.get("org-id", "?")
        if "error" in answer:
            records[org] = {"node": node, "error": answer["error"]}
            continue
        try:
            receipt = cosign_answer(witness, answer, must_grow=org in released)
        except (GtSecureError, ValueError) as err:
            log.warning("round %d: no receipt for %s: %s", round_idx, org, err)
            records[org] = {"node": node, "refused": str(err)}
            continue
        records[org] = {"node": node, "size": receipt.checkpoint.size}
        receipts[node] = {"action": "receipt", "receipt": receipt.text(),
                          "witness": witness.name,
                          "witness-key": _raw_hex(witness.key.public_key())}
    for node, answer in _send(grid, receipts, timeout).items():
        org = asked[node].get("org-id", "?")
        records[org]["stored"] = "error" not in answer
        if "error" in answer:
            records[org]["error"] = answer["error"]
    return records


def cosign_answer(witness: Witness, answer: Mapping[str, str], must_grow: bool = False) -> Any:
    """Cosign an organization's ``checkpoint`` answer (see the module docstring); with
    ``must_grow`` (it released in this round) only a ledger larger than the last cosigned one."""
    from gt_secure.ledger.note import SignedCheckpoint

    org = answer["org-id"]
    note = answer["checkpoint"]
    checkpoint = SignedCheckpoint.parse(note).checkpoint
    origin = checkpoint.origin
    seen = witness.last_seen(origin)
    if must_grow and seen is not None and checkpoint.size <= seen.size:
        raise InvalidFieldError("checkpoint.size", checkpoint.size,
                                f"> {seen.size}, the size the aggregator last cosigned for "
                                f"{origin!r}: the organization released in this round, so its "
                                "ledger must have grown (a release left unrecorded)")
    old = int(answer["old-size"])
    if seen is not None and seen.size != old:
        raise InvalidFieldError("old_size", old, f"{seen.size}, the size the aggregator last "
                                f"cosigned for {origin!r} (the organization lost a receipt or "
                                "its ledger was replaced)")
    key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(answer["public-key"]))
    return witness.cosign(note, decode_proof(answer["proof"], "proof"), owner=org,
                          owner_key=key if seen is None else None)


def _ledger(state: Path) -> Any:
    from gt_secure.ledger.store import Ledger

    return Ledger(state / "ledger.jsonl")


def answer(content: RecordDict, org_id: str, state: Path) -> RecordDict:
    """The organization's side of both exchanges (the ClientApp's ``query.ledger`` handler)."""
    request = content.config_records[RECORD]
    reply: dict[str, Any] = {"org-id": org_id}
    try:
        if request["action"] == "checkpoint":
            reply |= _checkpoint(_ledger(state))
        else:
            reply |= _store(_ledger(state), cast(str, request["receipt"]),
                            cast(str, request["witness"]), cast(str, request["witness-key"]))
    except (GtSecureError, ValueError, OSError) as err:
        reply["error"] = str(err)
    return RecordDict({RECORD: ConfigRecord(reply)})


def _checkpoint(ledger: Any) -> dict[str, Any]:
    from gt_secure.ledger.note import SignedCheckpoint
    from gt_secure.ledger.witness import receipts_dir

    state = ledger.state()
    last = receipts_dir(ledger) / f"{WITNESS_NAME}.txt"
    old = SignedCheckpoint.parse(last.read_text()).checkpoint.size if last.exists() else 0
    proof = state.tree.consistency_proof(old) if old <= state.tree.size else []
    return {"checkpoint": ledger.checkpoint().text(), "old-size": old,
            "proof": encode_proof(proof), "public-key": state.header.public_key}


def _store(ledger: Any, receipt: str, witness: str, key_hex: str) -> dict[str, Any]:
    from gt_secure.ledger.witness import receipts_dir, store_receipt

    if witness != WITNESS_NAME:
        raise InvalidFieldError("witness", witness, repr(WITNESS_NAME))
    pinned = receipts_dir(ledger) / f"{WITNESS_NAME}.pub"
    if pinned.exists() and pinned.read_text().strip() != key_hex:
        raise InvalidFieldError("witness-key", key_hex[:16], f"the pinned key in {pinned}")
    key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(key_hex))
    path = store_receipt(ledger, receipt, witness, key)
    if not pinned.exists():
        pinned.write_text(key_hex + "\n")
    return {"stored": str(path)}
