"""Aggregation cost: plain vs SecAgg+ (Flower's own primitives, in process) vs CKKS (TenSEAL).

For each update size and number of organizations, one run measures side by side: the time each
organization spends (serialize / quantize + mask / encrypt), the server's time (sum / unmask /
add ciphertexts), the provider's time (CKKS decryption), the bytes each organization uploads,
and the max error of the mean against the float64 mean. Times are CPU time of this process
(``time.process_time``), which a shared machine's load does not inflate the way it inflates wall
time. "critical path" assumes organizations run in parallel and ignores the network; the full
round time comes from the Flower app. SecAgg+ excludes Flower's messaging but includes key
agreement, Shamir sharing and share encryption.

    python -m bench.aggregation               # sizes 1e4 1e5 1e6, 3/5/10 orgs, writes docs
    python -m bench.aggregation --quick       # sizes 1e4 1e5, 3/5 orgs
    python -m bench.aggregation --sizes 1e4,3e4 --orgs 3 --no-write
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import asdict, dataclass

import numpy as np
from flwr.common import bytes_to_ndarray, ndarray_to_bytes
from rich.console import Console
from rich.table import Table

from bench.docs import DOC, table_records, write_results, write_section
from gt_secure.aggregation.ckks import CkksKeyPair, add_ciphertexts, decrypt_sum, encrypt
from gt_secure.aggregation.masking_sim import flower_masked_mean
from gt_secure.aggregation.quantization import choose_secagg_params

HEADING = "## Aggregation"


@dataclass(frozen=True)
class Row:
    size: int
    orgs: int
    mode: str
    org_s: float  # per organization
    server_s: float
    provider_s: float
    upload: int  # bytes per organization
    error: float  # max abs error of the mean vs the float64 mean

    @property
    def critical_s(self) -> float:
        return self.org_s + self.server_s + self.provider_s


def _plain(vecs: list[np.ndarray]) -> Row:
    t0 = time.process_time()
    blobs = [ndarray_to_bytes(v) for v in vecs]
    t1 = time.process_time()
    total = np.zeros(vecs[0].shape, dtype=np.float64)
    for blob in blobs:
        total += bytes_to_ndarray(blob)
    mean = total / len(vecs)
    t2 = time.process_time()
    n = len(vecs)
    return Row(
        vecs[0].size, n, "plain", (t1 - t0) / n, t2 - t1, 0.0, len(blobs[0]), _err(mean, vecs)
    )


def _secagg(vecs: list[np.ndarray]) -> Row:
    n = len(vecs)
    params = choose_secagg_params(clip_norm=1.0, num_clients=n, target_error=1e-3)
    res = flower_masked_mean(vecs, params)
    err = _err(res.mean, vecs)
    return Row(
        vecs[0].size,
        n,
        "secagg+",
        res.client_seconds / n,
        res.server_seconds,
        0.0,
        res.upload_bytes_per_client,
        err,
    )


def _ckks(vecs: list[np.ndarray], keys: CkksKeyPair) -> Row:
    n, size = len(vecs), vecs[0].size
    public = keys.public_context()
    t0 = time.process_time()
    encrypted = [encrypt(v, public, org_id=f"org-{i}") for i, v in enumerate(vecs)]
    t1 = time.process_time()
    total = add_ciphertexts(encrypted, public)
    t2 = time.process_time()
    mean = decrypt_sum(total, keys, size) / n
    t3 = time.process_time()
    upload = sum(len(b) for b in encrypted[0])
    return Row(size, n, "ckks", (t1 - t0) / n, t2 - t1, t3 - t2, upload, _err(mean, vecs))


def _err(mean: np.ndarray, vecs: list[np.ndarray]) -> float:
    exact = np.mean(np.stack(vecs).astype(np.float64), axis=0)
    return float(np.max(np.abs(np.asarray(mean, dtype=np.float64) - exact)))


def run(sizes: list[int], orgs: list[int], repeat: int = 1) -> tuple[list[Row], float]:
    """Measure every (size, orgs, mode), keeping the fastest of ``repeat`` runs of each.

    Returns the rows and the CKKS key-generation time.
    """
    rng = np.random.default_rng(0)
    t0 = time.process_time()
    keys = CkksKeyPair.generate()
    keygen = time.process_time() - t0
    rows: list[Row] = []
    for size in sizes:
        for n in orgs:
            vecs = [np.clip(rng.normal(0, 0.05, size), -1, 1).astype(np.float32) for _ in range(n)]
            for measure in (_plain, _secagg, lambda v: _ckks(v, keys)):
                runs = [measure(vecs) for _ in range(repeat)]
                rows.append(min(runs, key=lambda r: r.critical_s))
    return rows, keygen


def _fmt_ms(seconds: float) -> str:
    return "-" if seconds == 0 else f"{seconds * 1e3:,.1f}"


def table_rows(rows: list[Row]) -> list[list[str]]:
    """Formatted cells, with ratios against the plain row of the same size and orgs."""
    base = {(r.size, r.orgs): r for r in rows if r.mode == "plain"}
    out = []
    for r in rows:
        p = base[(r.size, r.orgs)]
        out.append(
            [
                f"{r.size:.0e}",
                str(r.orgs),
                r.mode,
                _fmt_ms(r.org_s),
                _fmt_ms(r.server_s),
                _fmt_ms(r.provider_s),
                _fmt_ms(r.critical_s),
                f"{r.critical_s / p.critical_s:,.0f}x",
                f"{r.upload / 1e6:,.2f}",
                f"{r.upload / p.upload:.2f}x",
                f"{r.error:.1e}",
            ]
        )
    return out


COLUMNS = [
    "size",
    "orgs",
    "mode",
    "org CPU ms (each)",
    "server CPU ms",
    "provider CPU ms",
    "critical path CPU ms",
    "x plain",
    "MB/org up",
    "bytes x plain",
    "max err (mean)",
]


def throughput(rows: list[Row]) -> str:
    """CKKS floats/s for encrypt, add and decrypt at the largest size measured."""
    biggest = max(r.size for r in rows)
    ck = [r for r in rows if r.mode == "ckks" and r.size == biggest]
    enc = np.median([r.size / r.org_s for r in ck])
    add = np.median([(r.orgs - 1) * r.size / r.server_s for r in ck])
    dec = np.median([r.size / r.provider_s for r in ck])
    return (
        f"CKKS throughput at {biggest:.0e} floats: encrypt {enc:.3g} floats/s, "
        f"add {add:.3g} floats/s (incl. deserialization), decrypt {dec:.3g} floats/s"
    )


def markdown(rows: list[Row], keygen: float, command: str) -> str:
    """The ``## Aggregation`` section of docs/benchmarks.md."""
    lines = [
        HEADING,
        "",
        f"- Command: `{command}`, {time.strftime('%Y-%m-%d')}, {platform.machine()} with "
        f"{os.cpu_count()} CPU cores shared with other jobs; times are CPU time of the process.",
        "- CKKS: N=4096, coeff bits [47, 60], scale 2^32 (`DEFAULT_CKKS_PARAMS`); key "
        f"generation {keygen * 1e3:.0f} ms, once per provider key.",
        f"- {throughput(rows)}.",
        "- SecAgg+: `choose_secagg_params(clip_norm=1, num_clients=n)`, num_shares = n, "
        "Flower 1.42 primitives in process (key agreement, Shamir, masks; no messaging, no "
        "dropouts). Full Flower round times: `## Flower app rounds`.",
        "- Critical path = one organization + server + provider (organizations in parallel, no "
        "network). Bytes: plain and SecAgg+ use Flower's `ndarray_to_bytes` (SecAgg+ sends "
        "int64, 2x); CKKS sends serialized ciphertexts (6.8x; [60, 40, 60] at N=8192 gives "
        "14.4x). Max error of the mean vs the float64 mean; documented bounds: "
        "`secagg_error_bound / n`, `CkksParams.error_bound(n) / n`.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    lines += ["| " + " | ".join(cells) + " |" for cells in table_rows(rows)]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="sizes 1e4,1e5 and 3/5 orgs")
    parser.add_argument("--sizes", help="comma-separated sizes, e.g. 1e4,1e5")
    parser.add_argument("--orgs", help="comma-separated organization counts, e.g. 3,5,10")
    parser.add_argument("--repeat", type=int, default=1, help="keep the fastest of N runs")
    parser.add_argument("--no-write", action="store_true", help="do not edit docs/benchmarks.md")
    args = parser.parse_args()
    sizes = [10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000]
    orgs = [3, 5] if args.quick else [3, 5, 10]
    if args.sizes:
        sizes = [int(float(s)) for s in args.sizes.split(",")]
    if args.orgs:
        orgs = [int(s) for s in args.orgs.split(",")]
    rows, keygen = run(sizes, orgs, args.repeat)
    table = Table(title="Aggregation: plain vs SecAgg+ vs CKKS")
    for col in COLUMNS:
        table.add_column(col, justify="right")
    for cells in table_rows(rows):
        table.add_row(*cells)
    console = Console(width=180)
    console.print(table)
    console.print(throughput(rows))
    if not args.no_write:
        flags = " ".join(
            a
            for a in (
                "--quick" if args.quick else "",
                f"--sizes {args.sizes}" if args.sizes else "",
                f"--orgs {args.orgs}" if args.orgs else "",
                f"--repeat {args.repeat}" if args.repeat > 1 else "",
            )
            if a
        )
        command = f"python -m bench.aggregation {flags}".strip()
        write_section(markdown(rows, keygen, command))
        path = write_results("aggregation", {
            "command": command, "ckks_keygen_s": keygen,
            "rows": [asdict(r) | {"critical_s": r.critical_s} for r in rows],
            "table": table_records(COLUMNS, table_rows(rows))})
        console.print(f"wrote {HEADING!r} in {DOC} and {path}")


if __name__ == "__main__":
    main()
