"""The federation's roster: the Ed25519 public key of every organization, as each organization
keeps it locally (``<org>.pub.pem`` files, the same keys that sign its ledger).

An organization trusts a signed statement only if the roster key of the organization it names
signed it; the server relays statements but cannot forge one, nor add an organization that is
not on the roster. How keys reach the roster is out of band (an operator copies peers'
``.pub.pem`` files); :func:`publish_key` adds an organization's own key and refuses to replace a
different key under its name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gt_secure.errors import InvalidFieldError
from gt_secure.ledger.signing import PUBLIC_SUFFIX, load_public_key

__all__ = ["Roster", "publish_key"]


def _pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def publish_key(directory: str | Path, org_id: str, key: Ed25519PublicKey) -> Path:
    """Write ``<org_id>.pub.pem`` into the roster ``directory`` unless it already holds it."""
    if not org_id or "/" in org_id or org_id.startswith("."):
        raise InvalidFieldError("org_id", org_id, "a non-empty file-name-safe id")
    path = Path(directory) / f"{org_id}{PUBLIC_SUFFIX}"
    if path.exists():
        if load_public_key(path) != key:
            raise InvalidFieldError(f"roster[{org_id}]", str(path),
                                    "this organization's own public key")
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_pem(key))
    return path


@dataclass(frozen=True)
class Roster:
    """Public keys by organization id."""

    keys: dict[str, Ed25519PublicKey]
    source: str = "roster"

    @classmethod
    def load(cls, directory: str | Path) -> Roster:
        """Every ``<org>.pub.pem`` in ``directory``."""
        root = Path(directory)
        files = sorted(root.glob(f"*{PUBLIC_SUFFIX}")) if root.is_dir() else []
        keys = {f.name[: -len(PUBLIC_SUFFIX)]: load_public_key(f) for f in files}
        return cls(keys, str(root))

    def verify(self, org_id: str, payload: bytes, signature: str, field: str) -> None:
        """Raise :class:`InvalidFieldError` naming ``field`` unless ``org_id``'s key signed it."""
        key = self.keys.get(org_id)
        if key is None:
            raise InvalidFieldError(f"{field}.org_id", org_id,
                                    f"an organization of the roster {self.source}")
        try:
            key.verify(bytes.fromhex(signature), payload)
        except (InvalidSignature, ValueError) as err:
            raise InvalidFieldError(f"{field}.signature", signature[:16] + "...",
                                    f"an Ed25519 signature by {org_id}'s roster key") from err
