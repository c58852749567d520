"""Cross-table rules of a protocol spec (:class:`gt_secure.protocols.ProtocolSpec`).

Each rule yields ``(field, value, constraint)``; the spec collects them all into one
:class:`gt_secure.protocols.ProtocolSpecError`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from gt_secure.aggregation.ckks_masks import INTEGRALITY_MAX
from gt_secure.aggregation.ckks_params import ckks_problems
from gt_secure.aggregation.quantization import secagg_problems

if TYPE_CHECKING:
    from gt_secure.protocols import OrganizationDp, ProtocolSpec


class Shown:
    """A value shown verbatim in error messages (no quotes)."""

    def __init__(self, text: str = "<missing>") -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def cross_problems(spec: ProtocolSpec) -> list[tuple[str, object, str]]:
    """Every (field, value, constraint) that breaks a rule across the spec's tables."""
    out: list[tuple[str, object, str]] = []

    def check(ok: bool, field: str, value: object, constraint: str) -> None:
        if not ok:
            out.append((field, value, constraint))

    n_min, n_max = spec.min_organizations, spec.max_organizations
    check(n_min <= n_max, "min_organizations", n_min, f"<= max_organizations={n_max}")
    if spec.dp is not None:
        has_any = spec.dp.example is not None or spec.dp.organization is not None
        check(has_any, "dp", {}, "a table with [dp.example] and/or [dp.organization]")
    for section, wanted in (("secagg", "secagg+"), ("ckks", "ckks")):
        present, needed = getattr(spec, section) is not None, spec.aggregation == wanted
        verb = "present" if needed else "absent"
        shown = Shown(f"[{section}]" if present else "<missing>")
        check(present == needed, section, shown, f"{verb} when aggregation={spec.aggregation!r}")
    clip = spec.dp.organization.clip_norm if spec.dp and spec.dp.organization else 0.0
    if (s := spec.secagg) is not None:
        args = (s.num_shares, s.reconstruction_threshold, s.clipping_range)
        cross = secagg_problems(*args, s.quantization_range, s.modulus_range)
        out += [(f"secagg.{f}", v, c) for f, v, c in cross]
        check(n_min >= 3, "min_organizations", n_min, ">= 3 with secagg+ (2 reveal each other)")
        t = s.reconstruction_threshold
        check(t <= n_min, "secagg.reconstruction_threshold", t, f"<= min_organizations={n_min}")
        peak = n_max * s.quantization_range
        check(
            peak < s.modulus_range,
            "secagg.modulus_range",
            s.modulus_range,
            f"> {peak} = max_organizations * quantization_range",
        )
        check(
            s.clipping_range >= clip,
            "secagg.clipping_range",
            s.clipping_range,
            f">= dp.organization.clip_norm={clip}",
        )
    if spec.dp is not None and spec.dp.organization is not None:
        out += distributed_problems(spec, spec.dp.organization)
    if (k := spec.ckks) is not None:
        cross = ckks_problems(k.poly_modulus_degree, k.coeff_mod_bit_sizes, k.global_scale_bits)
        out += [(f"ckks.{f}", v, c) for f, v, c in cross]
        check(k.max_abs >= clip, "ckks.max_abs", k.max_abs, f">= dp.organization.clip_norm={clip}")
        if not cross:
            params = k.to_params()
            cap = params.capacity(n_max) / n_max
            check(
                2.0 ** (k.mask_bits - 1) <= cap,
                "ckks.mask_bits",
                k.mask_bits,
                f"<= {math.floor(math.log2(cap)) + 1} (2**(mask_bits-1) <= capacity / "
                "max_organizations, else the masked sum wraps)",
            )
            err = params.error_bound(n_max)
            check(
                err <= INTEGRALITY_MAX,
                "ckks.global_scale_bits",
                k.global_scale_bits,
                f"large enough that the sum's error bound ({err:.3g}) is <= {INTEGRALITY_MAX} "
                "(the key holder rounds it to integers)",
            )
    return out


def distributed_problems(spec: ProtocolSpec,
                         org: OrganizationDp) -> list[tuple[str, object, str]]:
    """The problems of ``[dp.organization.distributed]`` against the aggregation tables."""
    if (d := org.distributed) is None:
        return []
    where = "dp.organization.distributed"
    out: list[tuple[str, object, str]] = []
    if spec.aggregation == "ckks" and spec.ckks is not None:  # shares on the CKKS grid
        if d.bits != spec.ckks.mask_bits:
            out.append((f"{where}.bits", d.bits, f"ckks.mask_bits = {spec.ckks.mask_bits} "
                        "(the key holder decodes the sum modulo 2**mask_bits)"))
    elif spec.aggregation != "secagg+" or spec.secagg is None:
        return [(where, Shown("[table]"), "absent unless aggregation is 'secagg+' or 'ckks'")]
    if d.basis is not None and spec.aggregation != "secagg+":
        out.append((f"{where}.basis", d.basis, "absent unless aggregation is 'secagg+'"))
    if d.min_survivors > spec.min_organizations:
        out.append((f"{where}.min_survivors", d.min_survivors,
                    f"<= min_organizations={spec.min_organizations}"))
    if d.max_colluders >= d.min_survivors:
        out.append((f"{where}.max_colluders", d.max_colluders,
                    f"< min_survivors={d.min_survivors}"))
    if spec.secagg is None:
        return out
    if spec.secagg.quantization_range != 2**d.bits:
        out.append(("secagg.quantization_range", spec.secagg.quantization_range,
                    f"2**bits = {2**d.bits} (integer shares travel exactly)"))
    if spec.secagg.clipping_range != 2 ** (d.bits - 1):
        out.append(("secagg.clipping_range", spec.secagg.clipping_range,
                    f"2**(bits-1) = {2 ** (d.bits - 1)} (integer shares travel exactly)"))
    return out
