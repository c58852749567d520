"""``gt-secure deploy tls | node-key``: the files a Flower deployment needs (docs/deployment.md).

``tls`` (provider): a private CA and the SuperLink's server certificate for its host names.
``node-key`` (organization): the SuperNode's EC P-384 authentication key pair (OpenSSH).
Neither overwrites an existing private key.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gt_secure.errors import InvalidFieldError


def register(subparsers: Any) -> None:
    """Add the ``deploy`` command and its ``tls`` and ``node-key`` actions."""
    parser = subparsers.add_parser("deploy", help="TLS certificates and SuperNode keys for a "
                                   "Flower deployment")
    actions = parser.add_subparsers(dest="deploy_action", required=True, metavar="ACTION")
    tls = actions.add_parser("tls", help="provider: CA + SuperLink server certificate",
                             description="Write ca.crt (give it to every organization), ca.key "
                             "(0600, keep offline), server.pem and server.key (0600, SuperLink "
                             "host only).")
    tls.add_argument("--out", type=Path, required=True, help="directory for the four files")
    tls.add_argument("--host", action="append", required=True, metavar="NAME_OR_IP",
                     help="DNS name or IP the SuperLink is reached at (repeatable; SANs)")
    tls.add_argument("--days", type=int, default=30, help="validity in days (default: 30)")
    tls.set_defaults(func=_tls, needs_torch=False)
    key = actions.add_parser("node-key", help="organization: SuperNode authentication key pair",
                             description="Write <org> (private, 0600, stays with the "
                             "organization) and <org>.pub (OpenSSH; give it to the provider, "
                             "who runs `flwr supernode register <org>.pub <connection>`).")
    key.add_argument("--org", required=True, help="organization id, e.g. hospital")
    key.add_argument("--out", type=Path, required=True, help="directory for the key pair")
    key.set_defaults(func=_node_key, needs_torch=False)


def _refuse_existing(*paths: Path) -> None:
    for path in paths:
        if path.exists():
            raise InvalidFieldError("--out", str(path.parent), f"a directory without {path.name} "
                                    "(an existing private key is never overwritten)")


def _tls(args: argparse.Namespace) -> int:
    from gt_secure.deploy.certs import generate_tls

    if args.days < 1:
        raise InvalidFieldError("--days", args.days, ">= 1")
    _refuse_existing(args.out / "ca.key", args.out / "server.key")
    files = generate_tls(args.out, tuple(args.host), args.days)
    print(f"give to every organization: {files.ca_cert}")
    print(f"SuperLink host only: {files.server_cert}, {files.server_key} (0600)")
    print(f"keep offline: {args.out / 'ca.key'} (0600)")
    return 0


def _node_key(args: argparse.Namespace) -> int:
    from gt_secure.deploy.keys import generate_node_key

    if not args.org or "/" in args.org or args.org.startswith("."):
        raise InvalidFieldError("--org", args.org, "a non-empty file-name-safe id")
    _refuse_existing(args.out / args.org)
    key = generate_node_key(args.out, args.org)
    print(f"private (0600, stays with {args.org}): {key.private_key}")
    print(f"public (give to the provider): {key.public_key}")
    return 0
