"""SuperNode authentication keys: one EC P-384 key pair per organization node.

``flower-supernode --auth-supernode-private-key`` reads the OpenSSH private key; the provider
registers the OpenSSH public key with ``flwr supernode register <key.pub> <connection>``. A
SuperNode whose key was never registered is refused by a SuperLink started with
``--enable-supernode-auth``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


@dataclass(frozen=True)
class NodeKey:
    """Paths of a node's key pair."""

    private_key: Path
    public_key: Path


def generate_node_key(out_dir: Path, name: str) -> NodeKey:
    """Write ``<name>`` (private, mode 600) and ``<name>.pub`` (OpenSSH) into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP384R1())
    private = out_dir / name
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.OpenSSH,
                                          serialization.NoEncryption()))
    private.chmod(0o600)
    public = out_dir / f"{name}.pub"
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                     serialization.PublicFormat.OpenSSH)
                       + f" {name}\n".encode())
    return NodeKey(private, public)
