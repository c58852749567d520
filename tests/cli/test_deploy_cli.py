"""``gt-secure deploy tls | node-key`` through the real CLI; docs/deployment.md's deploy
commands parse with the current CLI."""

from __future__ import annotations

import ipaddress
import re
import shlex
import stat
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gt_secure.cli.main import build_parser
from tests.cli.conftest import ROOT, cli
from tests.cli.test_exit_codes import one_line


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_tls_files_chain_and_sans(tmp_path: Path) -> None:
    out = tmp_path / "tls"
    run = cli("deploy", "tls", "--out", str(out), "--host", "link.example", "--host",
              "203.0.113.7")
    assert run.code == 0, run.err
    assert "give to every organization" in run.out and str(out / "ca.crt") in run.out
    ca = x509.load_pem_x509_certificate((out / "ca.crt").read_bytes())
    server = x509.load_pem_x509_certificate((out / "server.pem").read_bytes())
    server.verify_directly_issued_by(ca)
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["link.example"]
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("203.0.113.7")]
    assert mode(out / "ca.key") == 0o600 and mode(out / "server.key") == 0o600
    again = cli("deploy", "tls", "--out", str(out), "--host", "link.example")
    assert again.code == 2 and "never overwritten" in one_line(again.err)


def test_node_key_pair(tmp_path: Path) -> None:
    run = cli("deploy", "node-key", "--org", "hospital", "--out", str(tmp_path))
    assert run.code == 0, run.err
    private = serialization.load_ssh_private_key((tmp_path / "hospital").read_bytes(), None)
    public = (tmp_path / "hospital.pub").read_text()
    assert public.startswith("ecdsa-sha2-nistp384 ") and public.strip().endswith(" hospital")
    derived = private.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                serialization.PublicFormat.OpenSSH).decode()
    assert public.startswith(derived)
    assert mode(tmp_path / "hospital") == 0o600
    assert cli("deploy", "node-key", "--org", "hospital", "--out", str(tmp_path)).code == 2
    assert cli("deploy", "node-key", "--org", "../x", "--out", str(tmp_path)).code == 2


def test_deployment_doc_commands_parse() -> None:
    text = (ROOT / "docs" / "deployment.md").read_text()
    blocks = "\n".join(re.findall(r"^```bash\n(.*?)^```", text, re.M | re.S))
    commands = [line.split("#")[0] for line in re.findall(r"^gt-secure deploy .*$", blocks, re.M)]
    assert len(commands) == 2
    parser = build_parser()
    for command in commands:
        parser.parse_args(shlex.split(command)[1:])
    assert "generate_tls(" not in text and "generate_node_key(" not in text
    assert "not wired" not in text and "dp-sgd-secagg" in text
