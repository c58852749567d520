"""Ed25519 signing keys for ledger entries (RFC 8032, via ``cryptography``).

Each organization and the provider hold one private key and publish ``<owner>.pub.pem``. A
verifier trusts a set of public keys; the file name binds a key to its owner, and an entry is
accepted only if it was signed by a trusted key whose owner is the entry's ``org_id``. The key id
is the first 16 hex digits of SHA-256 over the raw 32-byte public key.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gt_secure.errors import InvalidFieldError, LedgerIntegrityError
from gt_secure.ledger.entry import sha256_hex

PUBLIC_SUFFIX = ".pub.pem"
PRIVATE_SUFFIX = ".key.pem"


@dataclass(frozen=True)
class TrustedKey:
    """A public key trusted to sign entries of ``owner``."""

    owner: str
    public_key: Ed25519PublicKey

    @property
    def key_id(self) -> str:
        """Key id of the public key."""
        return key_id(self.public_key)


def generate_key() -> Ed25519PrivateKey:
    """A fresh Ed25519 private key (from the OS CSPRNG)."""
    return Ed25519PrivateKey.generate()


def key_id(public_key: Ed25519PublicKey) -> str:
    """First 16 hex digits of SHA-256 over the raw public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return sha256_hex(raw)[:16]


def save_keypair(key: Ed25519PrivateKey, directory: str | Path, owner: str) -> tuple[Path, Path]:
    """Write ``<owner>.key.pem`` (mode 0600, never overwritten) and ``<owner>.pub.pem``."""
    if not owner or "/" in owner or owner.startswith("."):
        raise InvalidFieldError("owner", owner, "a non-empty file-name-safe id")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    private_path = directory / f"{owner}{PRIVATE_SUFFIX}"
    public_path = directory / f"{owner}{PUBLIC_SUFFIX}"
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    public_path.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return private_path, public_path


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    """Load an unencrypted PEM Ed25519 private key."""
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidFieldError("private_key", str(path), "an Ed25519 key")
    return key


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    """Load a PEM Ed25519 public key."""
    key = serialization.load_pem_public_key(Path(path).read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidFieldError("public_key", str(path), "an Ed25519 key")
    return key


def _owner_of(path: Path) -> str:
    name = path.name
    for suffix in (PUBLIC_SUFFIX, ".pem", ".pub"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def load_trusted_keys(paths: Iterable[str | Path]) -> dict[str, TrustedKey]:
    """Trusted keys by key id, from ``<owner>.pub.pem`` files or directories holding them."""
    trusted: dict[str, TrustedKey] = {}
    for item in map(Path, paths):
        files = sorted(item.glob(f"*{PUBLIC_SUFFIX}")) if item.is_dir() else [item]
        for file in files:
            entry = TrustedKey(_owner_of(file), load_public_key(file))
            trusted[entry.key_id] = entry
    if not trusted:
        raise InvalidFieldError("trusted_keys", [str(p) for p in paths],
                                f"at least one *{PUBLIC_SUFFIX} public key")
    return trusted


def sign(key: Ed25519PrivateKey, payload: bytes) -> str:
    """Hex Ed25519 signature of ``payload``."""
    return key.sign(payload).hex()


def verify_signature(trusted: dict[str, TrustedKey], signer: str, org_id: str, payload: bytes,
                     signature: str, line: int) -> None:
    """Raise ``LedgerIntegrityError`` unless a trusted key of ``org_id`` signed ``payload``."""
    entry = trusted.get(signer)
    if entry is None:
        raise LedgerIntegrityError(line, f"signer {signer!r} is not a trusted key")
    if entry.owner != org_id:
        raise LedgerIntegrityError(
            line, f"signer {signer!r} belongs to {entry.owner!r}, not org_id={org_id!r}")
    try:
        entry.public_key.verify(bytes.fromhex(signature), payload)
    except (InvalidSignature, ValueError) as err:
        raise LedgerIntegrityError(line, "signature does not verify") from err
