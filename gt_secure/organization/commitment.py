"""Salted commitment to a released update vector: what a masked or encrypted release discloses.

Under SecAgg+ and CKKS the server must not learn anything that confirms a guessed individual
vector, yet the organization's signed ledger entry travels with the update. A plain SHA-256 of
the vector would let the server test guesses offline, so in those modes the entry's
``update_vector_hash`` holds a commitment instead::

    k_r = HMAC-SHA256(s, "gt-secure/commit/v1" || release_id)      # per-release opening key
    c   = HMAC-SHA256(k_r, layout_hash || float32 little-endian vector bytes)

``s`` is a 32-byte secret the organization keeps in its state directory (``commit.key``, mode
0600). Without ``k_r``, ``c`` is a PRF output: it says nothing about the vector, and a guess
cannot be checked. To prove later which vector a release sent, the organization hands an
auditor ``k_r`` of that one release (never ``s``), and the auditor recomputes ``c``
(:func:`opens`). The plain SHA-256 (:meth:`UpdateVector.content_hash`) stays with the
organization, next to its copy of the released vector. HMAC-SHA256 from ``cryptography``.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, hmac

from gt_secure.errors import InvalidFieldError
from gt_secure.update.vector import UpdateVector

SECRET_FILE = "commit.key"
SECRET_BYTES = 32
_LABEL = b"gt-secure/commit/v1"


def _mac(key: bytes) -> hmac.HMAC:
    return hmac.HMAC(key, hashes.SHA256())


def load_or_create_secret(state: Path) -> bytes:
    """The organization's commitment secret in ``state`` (created once, mode 0600)."""
    path = state / SECRET_FILE
    if not path.exists():
        state.mkdir(parents=True, exist_ok=True)
        path.write_bytes(secrets.token_bytes(SECRET_BYTES))
        path.chmod(0o600)
    secret = path.read_bytes()
    if len(secret) != SECRET_BYTES:
        raise InvalidFieldError(str(path), f"<{len(secret)} bytes>", f"{SECRET_BYTES} bytes")
    return secret


def release_key(secret: bytes, release_id: str) -> bytes:
    """The opening key ``k_r`` of one release (reveals nothing about other releases)."""
    if len(secret) < 16:
        raise InvalidFieldError("secret", f"<{len(secret)} bytes>", "at least 16 bytes")
    mac = _mac(secret)
    mac.update(_LABEL + b"\x00" + release_id.encode("utf-8"))
    return mac.finalize()


def _vector_mac(key: bytes, update: UpdateVector) -> hmac.HMAC:
    if len(key) < 16:
        raise InvalidFieldError("key", f"<{len(key)} bytes>", "at least 16 bytes")
    mac = _mac(key)
    mac.update(update.layout.layout_hash().encode())
    mac.update(update.flat.astype("<f4").tobytes())
    return mac


def commit(key: bytes, update: UpdateVector) -> str:
    """Hex commitment ``c`` to ``update`` under the opening key ``key``."""
    return _vector_mac(key, update).finalize().hex()


def opens(commitment: str, update: UpdateVector, key: bytes) -> bool:
    """Whether ``key`` opens ``commitment`` to ``update`` (constant-time comparison)."""
    try:
        _vector_mac(key, update).verify(bytes.fromhex(commitment))
    except (InvalidSignature, ValueError):
        return False
    return True
