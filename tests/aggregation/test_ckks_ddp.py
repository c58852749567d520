"""ddp-ckks: discrete Gaussian shares on the CKKS grid. Closed forms: the share size, the
epsilon (the continuous Gaussian's, by dp-accounting), the summed noise's variance (chi-square
bounds), and the exact sum through real pairwise masks and TenSEAL encryption."""

from __future__ import annotations

import math
import tomllib
import warnings
from importlib import resources
from typing import Any

import dp_accounting
import numpy as np
import pytest
from scipy.stats import chi2

from gt_secure.aggregation.ckks import (
    CkksKeyPair,
    add_ciphertexts,
    decrypt_sum,
    encrypt_values,
    load_public_context,
)
from gt_secure.aggregation.ckks_ddp import ckks_ddp_params
from gt_secure.aggregation.ckks_masks import mask_key_bytes as public_bytes
from gt_secure.aggregation.ckks_masks import new_mask_key, organization_mask, pair_seed
from gt_secure.errors import InvalidFieldError
from gt_secure.ledger.accountant import compute_epsilon
from gt_secure.ledger.ddp_mechanism import DistributedGaussianMechanism
from gt_secure.organization.ddp_share import noise_share
from gt_secure.organization.secure_rng import InsecureRandomnessWarning
from gt_secure.protocols import ProtocolSpecError, load_protocol, parse_protocol

DIM = 2048


def _shares(p: Any, n: int, seed: int) -> list[Any]:
    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureRandomnessWarning)
        return [noise_share(rng.normal(0, 1, DIM), p, rng, secure_mode=False) for _ in range(n)]


def test_share_is_sized_on_the_ckks_grid_for_the_fewest_honest_organizations() -> None:
    spec = load_protocol("ddp-ckks")
    assert spec.ckks is not None
    p = ckks_ddp_params(spec, DIM)
    encoding = spec.ckks.encoding(spec.max_organizations)
    assert (p.scale, p.bits, p.organizations) == (encoding.step, spec.ckks.mask_bits, 100)
    assert p.scale == 2.0**-15
    assert p.sigma == pytest.approx(1.0 * 1.0 / (2.0**-15 * math.sqrt(2 - 0)), rel=1e-12)
    mech = p.mechanism()
    assert mech.condition.startswith("sum only: the CKKS key holder is honest for decryption")
    assert "at most 0 of 100 organizations collude" in mech.condition


def test_epsilon_is_the_continuous_gaussians_by_dp_accounting() -> None:
    # KLS21's tau underflows at sigma ~ 2**14.5 grid units; the rounding inflates Delta2 by
    # ~1.6e-5 relative: the epsilon is the Gaussian mechanism's with z = 1 (dp-accounting RDP).
    for z in (0.7, 1.0, 2.0):
        mech = ckks_ddp_params(load_protocol("ddp-ckks"), DIM, noise_multiplier=z).mechanism()
        reference = dp_accounting.rdp.RdpAccountant()
        reference.compose(dp_accounting.GaussianDpEvent(z))
        eps_ref = reference.get_epsilon(1e-5)
        assert compute_epsilon([mech], 1e-5, "rdp") == pytest.approx(eps_ref, rel=2e-3)
        assert mech.zcdp_epsilon() == pytest.approx(1 / z, rel=1e-4)
        # Positive control: shares sized for 1 honest organization would be worse (sqrt 2).
        assert mech.zcdp_epsilon() > 1 / z


def test_summed_noise_has_the_configured_variance_chi_square() -> None:
    # sum of 3 shares: variance 3 sigma^2 per coordinate, i.e. 1.5 (z C)^2 in update units.
    p = ckks_ddp_params(load_protocol("ddp-ckks"), DIM)
    shares = _shares(p, 3, seed=7)
    noise = np.sum([s.noise for s in shares], axis=0).astype(np.float64) * p.scale
    stat = float(np.sum(noise**2)) / (3 * (p.sigma * p.scale) ** 2)  # ~ chi2(DIM)
    low, high = chi2.ppf(1e-6, DIM), chi2.ppf(1 - 1e-6, DIM)
    assert low <= stat <= high
    assert (3 * (p.sigma * p.scale) ** 2) == pytest.approx(1.5, rel=1e-12)
    # Positive control: full noise per organization (dp-ckks) would be twice this variance.
    assert not low <= stat / 2 <= high


def test_shares_sum_exactly_through_masks_and_tenseal() -> None:
    spec = load_protocol("ddp-ckks")
    assert spec.ckks is not None
    p = ckks_ddp_params(spec, DIM)
    encoding = spec.ckks.encoding(spec.max_organizations)
    keys = CkksKeyPair.generate(spec.ckks.to_params())
    public = load_public_context(keys.public_context_bytes())
    orgs = ["a", "b", "c"]
    shares = _shares(p, len(orgs), seed=3)
    mask_keys = {o: new_mask_key() for o in orgs}
    encrypted = []
    for org, share in zip(orgs, shares, strict=True):
        sent = (share.wire.astype(np.float32) * np.float32(p.scale))  # what the node keeps
        quantized = encoding.quantize(sent)
        assert np.array_equal(quantized, share.wire.astype(np.int64))  # exact on the grid
        seeds = {peer: pair_seed(mask_keys[org], public_bytes(mask_keys[peer]), b"t")
                 for peer in orgs if peer != org}
        mask = organization_mask(org, seeds, DIM, encoding.modulus_bits)
        encrypted.append(encrypt_values(encoding.masked(quantized, mask), public))
    decrypted = decrypt_sum(add_ciphertexts(encrypted, public), keys, DIM)
    total = encoding.decode_sum(decrypted, keys.params.error_bound(len(orgs)))
    expected = np.sum([s.rounded + s.noise for s in shares], axis=0) * p.scale
    assert np.array_equal(total, expected)


def test_spec_and_params_refusals_name_the_field() -> None:
    text = resources.files("gt_secure").joinpath("protocol_specs", "ddp-ckks.toml").read_text()
    data = tomllib.loads(text)
    data["dp"]["organization"]["distributed"]["bits"] = 16
    with pytest.raises(ProtocolSpecError) as err:
        parse_protocol(data)
    assert [q.field for q in err.value.problems] == ["dp.organization.distributed.bits"]
    with pytest.raises(InvalidFieldError) as too_loud:  # the share's tail would pass max_abs
        ckks_ddp_params(load_protocol("ddp-ckks"), DIM, noise_multiplier=20.0)
    assert too_loud.value.field == "noise_multiplier"
    with pytest.raises(InvalidFieldError) as plain:
        ckks_ddp_params(load_protocol("dp-ckks"), DIM)
    assert plain.value.field == "dp.organization.distributed"
    mech = ckks_ddp_params(load_protocol("ddp-ckks"), DIM).mechanism()
    forged = mech.model_dump() | {"condition": mech.condition.replace("at most 0", "at most 1")}
    with pytest.raises(InvalidFieldError) as bad:
        DistributedGaussianMechanism(**forged)
    assert bad.value.field == "condition"
