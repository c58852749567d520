"""The DP-training hook contract and the byte tokenizer."""

from __future__ import annotations

import sys
import types

import pytest
import torch

from gt_secure.audit.hooks import DPTrainingHook, load_hook
from gt_secure.audit.tokens import ByteTokenizer, encode, sample_bytes
from gt_secure.errors import InvalidFieldError


def _hook() -> DPTrainingHook:
    return DPTrainingHook(make_train=lambda noise: (lambda texts: torch.nn.Linear(1, 1)),
                          noise_multiplier=1.1, claimed_epsilon=2.0, delta=1e-5)


def test_load_hook_from_spec(monkeypatch):
    module = types.ModuleType("fake_dp_pipeline")
    module.hook = _hook  # type: ignore[attr-defined]
    module.bad = lambda: 3  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_dp_pipeline", module)
    assert load_hook("fake_dp_pipeline:hook").claimed_epsilon == 2.0
    with pytest.raises(InvalidFieldError, match="hook must be a DPTrainingHook"):
        load_hook("fake_dp_pipeline:bad")
    with pytest.raises(InvalidFieldError, match="hook spec"):
        load_hook("no_colon")


def test_hook_validates_fields():
    with pytest.raises(InvalidFieldError, match="noise_multiplier must be > 0"):
        DPTrainingHook(make_train=_hook().make_train, noise_multiplier=0.0,
                       claimed_epsilon=1.0, delta=1e-5)


def test_byte_tokenizer_round_trip_and_encode_forms():
    tok = ByteTokenizer()
    ids = tok("Patient é")
    assert ids[0] == tok.bos_id and tok.decode(ids) == "Patient é"
    assert encode("Patient é", tok).tolist() == ids
    assert encode(ids, None).tolist() == ids
    assert encode("ab", lambda t: {"input_ids": [5, 6, 7]}).tolist() == [5, 6, 7]
    assert sample_bytes(ids, tok) == "Patient é".encode()
    with pytest.raises(InvalidFieldError, match="sample length"):
        encode([1], None)
