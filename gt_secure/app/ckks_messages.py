"""Wire format of the dp-ckks stages after training (TRAIN messages, like Flower's SecAgg+).

Every request is one ``ConfigRecord "gt.ckks"`` naming its ``stage`` and ``round``:

- ``keys`` (to every participant): ``key-holder``. Reply: the signed announcement; the key
  holder's reply also carries the round's public context.
- ``encrypt`` (to every announcer): ``key-holder``, the announcements, the public context.
  Reply: the ciphertext chunks and the signed contribution.
- ``decrypt`` (to the key holder only): the summed chunks, the announcements and the
  contributions. Reply: the mean (float64 bytes), the organizations in it, its error bound.

Replies put these in ``ConfigRecord "gt.ckks-reply"`` next to ``"gt.meta"`` (the organization
id). Statements travel as JSON; a malformed one is refused naming its field.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar, cast

import numpy as np
from flwr.app import ConfigRecord, RecordDict
from pydantic import BaseModel, ValidationError

from gt_secure.app.messages import CKKS, KEY_ORG, KEY_ROUND, KEY_STAGE, META
from gt_secure.errors import InvalidFieldError
from gt_secure.organization.ckks_statements import Announcement, Contribution
from gt_secure.organization.key_holder import Decryption

REPLY = "gt.ckks-reply"
KEY_HOLDER = "key-holder"
KEY_CONTEXT = "public-context"
KEY_ANNOUNCEMENTS = "announcements"
KEY_CONTRIBUTIONS = "contributions"
KEY_CONTRIBUTION = "contribution"
KEY_ANNOUNCEMENT = "announcement"
KEY_CHUNKS = "chunks"
KEY_MEAN = "mean"
KEY_ORGS = "orgs"
KEY_ERROR = "error-bound"

M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], text: object, field: str) -> M:
    """A statement from its JSON, or an :class:`InvalidFieldError` naming ``field``."""
    try:
        return model.model_validate_json(str(text))
    except ValidationError as err:
        raise InvalidFieldError(field, str(text)[:60], f"a {model.__name__} as JSON") from err


def stage_of(content: RecordDict) -> dict[str, object]:
    """The ``"gt.ckks"`` record of a request (empty when absent)."""
    record = content.config_records.get(CKKS)
    return {} if record is None else dict(record.items())


def _request(stage: str, round_idx: int, **fields: object) -> RecordDict:
    body = {KEY_STAGE: stage, KEY_ROUND: round_idx} | fields
    return RecordDict({CKKS: ConfigRecord(body)})  # type: ignore[arg-type]


def _reply(org_id: str, **fields: object) -> RecordDict:
    return RecordDict({REPLY: ConfigRecord(dict(fields)),  # type: ignore[arg-type]
                       META: ConfigRecord({KEY_ORG: org_id})})


def _reply_of(content: RecordDict) -> dict[str, object]:
    record = content.config_records.get(REPLY)
    if record is None:
        raise InvalidFieldError(f"reply.{REPLY}", None, "present")
    return dict(record.items())


def _chunks(value: object) -> list[bytes]:
    return [bytes(c) for c in cast(list[bytes], value)]


def keys_request(round_idx: int, key_holder: str) -> RecordDict:
    """Ask every participant for its mask key; the key holder also makes the CKKS keys."""
    return _request("keys", round_idx, **{KEY_HOLDER: key_holder})


def keys_reply(org_id: str, announcement: Announcement, public_context: bytes) -> RecordDict:
    """A participant's signed announcement (and, from the key holder, the public context)."""
    return _reply(org_id, **{KEY_ANNOUNCEMENT: announcement.model_dump_json(),
                             KEY_CONTEXT: public_context})


def read_keys_reply(content: RecordDict, org_id: str) -> tuple[Announcement, bytes]:
    """Announcement and public context (empty unless from the key holder) of a keys reply."""
    body = _reply_of(content)
    ann = parse(Announcement, body.get(KEY_ANNOUNCEMENT, ""), f"announcement[{org_id}]")
    return ann, bytes(cast(bytes, body.get(KEY_CONTEXT, b"")))


def encrypt_request(round_idx: int, key_holder: str, announcements: Sequence[Announcement],
                    public_context: bytes) -> RecordDict:
    """Ask every announcer to mask, encrypt and sign its vector for exactly these participants."""
    return _request("encrypt", round_idx, **{
        KEY_HOLDER: key_holder, KEY_CONTEXT: public_context,
        KEY_ANNOUNCEMENTS: [a.model_dump_json() for a in announcements]})


def read_announcements(body: dict[str, object]) -> list[Announcement]:
    """The announcements of an encrypt or decrypt request."""
    raw = cast(list[str], body.get(KEY_ANNOUNCEMENTS, []))
    return [parse(Announcement, a, f"announcements[{i}]") for i, a in enumerate(raw)]


def encrypt_reply(org_id: str, chunks: Sequence[bytes], contribution: Contribution) -> RecordDict:
    """The organization's ciphertext chunks and signed contribution."""
    return _reply(org_id, **{KEY_CHUNKS: list(chunks),
                             KEY_CONTRIBUTION: contribution.model_dump_json()})


def read_encrypt_reply(content: RecordDict, org_id: str) -> tuple[list[bytes], Contribution]:
    """Chunks and contribution of an encrypt reply."""
    body = _reply_of(content)
    contribution = parse(Contribution, body.get(KEY_CONTRIBUTION, ""), f"contribution[{org_id}]")
    return _chunks(body.get(KEY_CHUNKS, [])), contribution


def decrypt_request(round_idx: int, encrypted_sum: Sequence[bytes],
                    announcements: Sequence[Announcement],
                    contributions: Sequence[Contribution]) -> RecordDict:
    """Ask the key holder to decrypt the sum of the contributions' ciphertexts."""
    return _request("decrypt", round_idx, **{
        KEY_CHUNKS: list(encrypted_sum),
        KEY_ANNOUNCEMENTS: [a.model_dump_json() for a in announcements],
        KEY_CONTRIBUTIONS: [c.model_dump_json() for c in contributions]})


def read_decrypt_request(body: dict[str, object]
                         ) -> tuple[list[bytes], list[Announcement], list[Contribution]]:
    """Chunks, announcements and contributions of a decrypt request."""
    raw = cast(list[str], body.get(KEY_CONTRIBUTIONS, []))
    contributions = [parse(Contribution, c, f"contributions[{i}]") for i, c in enumerate(raw)]
    return _chunks(body.get(KEY_CHUNKS, [])), read_announcements(body), contributions


def decrypt_reply(org_id: str, decryption: Decryption) -> RecordDict:
    """The released mean (float64 bytes: an aggregate, never an individual update)."""
    mean = np.ascontiguousarray(decryption.mean, dtype="<f8").tobytes()
    return _reply(org_id, **{KEY_MEAN: mean, KEY_ORGS: list(decryption.orgs),
                             KEY_ERROR: float(decryption.error_bound)})


def read_decrypt_reply(content: RecordDict) -> tuple[np.ndarray, list[str], float]:
    """Mean, organizations in it and its error bound, from the key holder's reply."""
    body = _reply_of(content)
    try:
        raw = bytes(cast(bytes, body[KEY_MEAN]))
        orgs = [str(o) for o in cast(list[str], body[KEY_ORGS])]
        error = float(cast(float, body[KEY_ERROR]))
        mean = np.frombuffer(raw, dtype="<f8").astype(np.float64)
    except (KeyError, TypeError, ValueError) as err:
        raise InvalidFieldError(f"reply.{REPLY}", sorted(body), "a mean, its organizations "
                                "and its error bound") from err
    return mean, orgs, error
