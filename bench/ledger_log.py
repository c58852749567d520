"""Ledger as a transparency log: verify time and proof sizes at 10^3 .. 10^6 entries.

Synthetic ledgers of one organization: a signed header, one DP-SGD release, then
post-processing entries (all Ed25519-signed, hash-chained, canonical JSON), the owner's signed
checkpoint and a witness's receipt. Per size:

- ``log verify``: what ``ledger verify --receipt`` checks for the log itself — every line parsed
  (schema, canonical form), the hash chain, every entry's and the header's Ed25519 signature,
  the Merkle root against the owner's checkpoint and the cosigned receipt (signatures
  verified). Epsilon recomputation and lineage rules are not included (they are per release;
  see ``bench/ledger_cli.py``). ``tree only`` rows hash the lines, build the tree and check the
  signed checkpoint, without parsing or verifying per-entry signatures (the 10^6 row: signing
  and parsing 10^6 entries does not fit a 2-core budget; its lines are generated, not signed).
- proofs: RFC 9162 inclusion proof of the middle entry and consistency proof from half the size
  (bytes = hashes x 32; base64 as carried in a bundle), the proof bundle's JSON size and the
  time to check it offline (``check_bundle``; the entry is a post-processing entry).

    python -m bench.ledger_log                 # writes docs/results/ledger_log.json + docs
    python -m bench.ledger_log --sizes 1000 --no-write
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from bench.docs import write_section
from gt_secure.ledger import (
    DpSgdMechanism,
    Ledger,
    LedgerEntry,
    LedgerHeader,
    ProofBundle,
    Witness,
    check_bundle,
    generate_key,
    load_trusted_keys,
    make_bundle,
    save_keypair,
)
from gt_secure.ledger.entry import sha256_hex
from gt_secure.ledger.log import checkpoint_path, parse_header
from gt_secure.ledger.logcheck import checkpoint_problems
from gt_secure.ledger.merkle import MerkleTree, leaf_hash, verify_consistency
from gt_secure.ledger.note import Checkpoint, sign_checkpoint
from gt_secure.ledger.proof import encode_proof
from gt_secure.ledger.signing import key_id, sign, verify_signature

HEADING = "## Ledger transparency log"
ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "results" / "ledger_log.json"
FULL_LIMIT = 100_000
MECH = DpSgdMechanism(sample_rate=0.01, noise_multiplier=1.5, steps=50, clip_norm=1.0)


def _lines(header_line: bytes, n: int, key: Any, signed: set[int] | None) -> Any:
    """``n`` entry lines after the header: one release, then post-processing entries.

    Lines whose index is in ``signed`` (all when ``signed`` is None) are built and Ed25519-signed
    for real; the others are the previous post-processing line with its id, round and
    ``prev_hash`` rewritten (valid chain and JSON, invalid signature: tree-only rows)."""
    signer, prev = key_id(key.public_key()), sha256_hex(header_line)
    base = dict(org_id="org-a", base_model_hash="a" * 64, timestamp="2026-11-26T00:00:00+00:00",
                signer=signer, signature="0" * 128)
    template: bytes = b""
    for i in range(n):
        if i == 0:
            entry = LedgerEntry(kind="release", release_id="r0", unit="example",
                                mechanisms=[MECH], accountant="rdp", delta=1e-5,
                                epsilon_spent=0.5, epsilon_total=0.5, budget_epsilon=8.0,
                                update_vector_hash="b" * 64, data_fingerprint="c" * 64,
                                prev_hash=prev, **base)
        elif signed is None or i in signed or not template:
            entry = LedgerEntry(kind="post_processing", release_id=f"p{i}", parents=["r0"],
                                epsilon_spent=0.0, update_vector_hash="d" * 64, prev_hash=prev,
                                round=i, **base)
        else:
            k = template.index(b'"prev_hash":"') + len(b'"prev_hash":"')
            line = template[:k] + prev.encode() + template[k + 64:]
            line = line.replace(b'"release_id":"p"', b'"release_id":"p%d"' % i, 1)
            line = line.replace(b'"round":0', b'"round":%d' % i, 1)
            prev = sha256_hex(line)
            yield line
            continue
        signature = sign(key, entry.signing_payload())
        line = entry.model_copy(update={"signature": signature}).canonical_line()
        if i > 0:  # the template of unsigned lines: id "p", round 0
            template = line.replace(b'"release_id":"p%d"' % i, b'"release_id":"p"', 1) \
                .replace(b'"round":%d' % i, b'"round":0', 1)
        prev = sha256_hex(line)
        yield line


def build(directory: Path, n: int) -> dict[str, Any]:
    """Write a ledger of ``n`` entries, its checkpoint and a witness receipt; the parts."""
    start = time.perf_counter()
    owner, witness_key = generate_key(), generate_key()
    save_keypair(owner, directory / "keys", "org-a")
    save_keypair(witness_key, directory / "keys", "witness")
    header = LedgerHeader.create("org-a", {"example": 8.0}, owner).canonical_line()
    middle = (n + 1) // 2
    tree = MerkleTree([leaf_hash(header)])
    path = directory / "ledger.jsonl"
    signed = None if n <= FULL_LIMIT else {middle - 1, middle}
    middle_line = b""
    with open(path, "wb") as handle:
        handle.write(header + b"\n")
        for index, line in enumerate(_lines(header, n, owner, signed), start=1):
            handle.write(line + b"\n")
            tree.append(leaf_hash(line))
            middle_line = line if index == middle else middle_line
    note = sign_checkpoint(Checkpoint("gt-secure/ledger/org-a", tree.size, tree.root()),
                           "org-a", owner)
    checkpoint_path(path).write_text(note.text())
    witness = Witness("witness", witness_key, directory / "witness")
    receipt = witness.cosign(note.text(), [], owner="org-a", owner_key=owner.public_key())
    return {"path": path, "trusted": load_trusted_keys([directory / "keys"]), "tree": tree,
            "header": header, "middle": middle, "middle_line": middle_line,
            "receipt": receipt.text(), "build_s": time.perf_counter() - start}


def verify_log(path: Path, trusted: dict[str, Any], receipt: str, full: bool) -> float:
    """Seconds to check the log (see the module docstring); raises if anything fails."""
    start = time.perf_counter()
    with open(path, "rb") as handle:
        header_line = handle.readline().rstrip(b"\n")
        header = parse_header(header_line)
        leaves = [leaf_hash(header_line)]
        prev = sha256_hex(header_line)
        for number, line in enumerate(handle, start=2):
            raw = line.rstrip(b"\n")
            leaves.append(leaf_hash(raw))
            if full:
                entry = LedgerEntry.model_validate_json(raw)
                assert entry.canonical_line() == raw and entry.prev_hash == prev, number
                verify_signature(trusted, entry.signer, entry.org_id, entry.signing_payload(),
                                 entry.signature, number)
                prev = sha256_hex(raw)
    tree = MerkleTree(leaves)
    sizes = _Sized(tree.size)
    for text, cosigned in ((checkpoint_path(path).read_text(), False), (receipt, True)):
        _, problems = checkpoint_problems(sizes, tree, header, text, "checkpoint", trusted,
                                          cosigned)
        assert not problems, problems
    return time.perf_counter() - start


class _Sized(list):  # type: ignore[type-arg]
    """Stands in for the lines where only their number is read."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def __len__(self) -> int:
        return self.n


def measure(n: int) -> dict[str, Any]:
    """One row: build, verify, proofs."""
    with tempfile.TemporaryDirectory(prefix="gt-ledger-log-") as tmp:
        parts = build(Path(tmp), n)
        full = n <= FULL_LIMIT
        seconds = verify_log(parts["path"], parts["trusted"], parts["receipt"], full)
        tree_s = verify_log(parts["path"], parts["trusted"], parts["receipt"], False)
        tree, middle = parts["tree"], parts["middle"]
        size, half = tree.size, tree.size // 2
        start = time.perf_counter()
        inclusion = tree.inclusion_proof(middle)
        bundle = ProofBundle(index=middle, entry=parts["middle_line"].decode(),
                             header=parts["header"].decode(), checkpoint=parts["receipt"],
                             entry_proof=encode_proof(inclusion),
                             header_proof=encode_proof(tree.inclusion_proof(0)))
        prove = time.perf_counter() - start
        if full:  # the library's own bundle writer gives the same bundle
            assert make_bundle(Ledger(parts["path"]), middle, parts["receipt"]) == bundle
        consistency = tree.consistency_proof(half)
        assert verify_consistency(half, size, tree.root(half), tree.root(), consistency)
        start = time.perf_counter()
        check_bundle(bundle, parts["trusted"], require_cosigner=True)
        check = time.perf_counter() - start
        return {
            "entries": n, "lines": size, "file_mb": parts["path"].stat().st_size / 2**20,
            "build_s": parts["build_s"], "verify": "full" if full else "tree only",
            "verify_s": seconds, "tree_only_s": tree_s,
            "inclusion_hashes": len(inclusion), "inclusion_bytes": 32 * len(inclusion),
            "inclusion_b64": len(encode_proof(inclusion)),
            "consistency_hashes": len(consistency), "consistency_bytes": 32 * len(consistency),
            "consistency_b64": len(encode_proof(consistency)),
            "bundle_bytes": len(bundle.model_dump_json()), "prove_s": prove,
            "check_proof_s": check,
        }


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown table of the rows."""
    lines = ["| entries | file MB | log verify s | tree only s | inclusion proof B (b64) | "
             "consistency proof B (b64) | bundle B | check-proof ms |", "|" + "---|" * 8]
    for r in rows:
        verify = f"{r['verify_s']:.2f}" if r["verify"] == "full" else "-"
        lines.append(
            f"| {r['entries']:,} | {r['file_mb']:.1f} | {verify} | {r['tree_only_s']:.2f} | "
            f"{r['inclusion_bytes']} ({r['inclusion_b64']}) | {r['consistency_bytes']} "
            f"({r['consistency_b64']}) | {r['bundle_bytes']:,} | {1e3 * r['check_proof_s']:.1f} |")
    return "\n".join(lines)


def section(rows: list[dict[str, Any]]) -> str:
    """The docs/benchmarks.md section for ``rows``."""
    prose = ("`python -m bench.ledger_log` (shared 2-core machine). Synthetic ledgers: a signed "
             "header, one release, then signed post-processing entries, with the owner's "
             "checkpoint and a witness receipt. *Log verify* parses every line and checks "
             "schema, canonical form, chain, every Ed25519 signature, and the Merkle root "
             "against the owner's checkpoint and the receipt (epsilon recomputation and lineage "
             "are excluded: see Ledger CLI). *Tree only* hashes the lines and checks the signed "
             "checkpoints without per-entry parsing; above "
             f"{FULL_LIMIT:,} entries the lines are generated, not signed, and only this path "
             "runs. Proofs are for the middle entry; the consistency proof is from half the "
             "size. Proof bytes are 32 per hash; base64 is what a bundle carries.")
    return (f"{HEADING}\n\n{textwrap.fill(prose, 100)}\n\n{table(rows)}\n\n"
            "Raw: `docs/results/ledger_log.json`.\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+",
                        default=[1_000, 10_000, 100_000, 1_000_000])
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    rows = []
    for n in args.sizes:
        rows.append(measure(n))
        print(json.dumps(rows[-1]), flush=True)
    text = table(rows)
    print(text)
    if args.no_write:
        return
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"machine": platform.processor() or platform.machine(),
                                   "rows": rows}, indent=2) + "\n")
    write_section(section(rows))

if __name__ == "__main__":
    main()
