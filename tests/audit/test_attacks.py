"""One contract suite that every membership attack must pass, plus attack-specific checks."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from audit_helpers import torch_threads
from torch import nn

from gt_secure.audit.attacks import (
    LossAttack,
    MembershipAttack,
    MinKProbAttack,
    ReferenceAttack,
    ZlibAttack,
    make_attack,
)
from gt_secure.audit.canary import CanaryManifest
from gt_secure.audit.finetune import finetune_causal_lm
from gt_secure.audit.metrics import roc_auc
from gt_secure.audit.tokens import ByteTokenizer
from gt_secure.errors import InvalidFieldError


class AttackContract:
    """Invariants shared by all attacks; subclasses supply :meth:`make`."""

    def make(self, tokenizer: ByteTokenizer, random_model: nn.Module,
             batch_size: int = 16) -> MembershipAttack:
        raise NotImplementedError

    def test_shape_dtype_and_finite(self, tokenizer, random_model, memorised):
        _, manifest = memorised
        scores = self.make(tokenizer, random_model).score(random_model, manifest.canaries)
        assert scores.shape == (len(manifest.canaries),)
        assert scores.dtype == np.float64
        assert np.all(np.isfinite(scores))

    def test_deterministic(self, tokenizer, random_model, memorised):
        model, manifest = memorised
        attack = self.make(tokenizer, random_model)
        np.testing.assert_array_equal(attack.score(model, manifest.canaries),
                                      attack.score(model, manifest.canaries))

    def test_batching_and_padding_do_not_change_scores(self, tokenizer, random_model, memorised):
        model, manifest = memorised
        one = self.make(tokenizer, random_model, batch_size=1).score(model, manifest.canaries)
        many = self.make(tokenizer, random_model, batch_size=7).score(model, manifest.canaries)
        np.testing.assert_allclose(one, many, rtol=1e-4, atol=1e-5)

    def test_token_ids_match_texts(self, tokenizer, random_model, memorised):
        model, manifest = memorised
        attack = self.make(tokenizer, random_model)
        ids = [tokenizer(c) for c in manifest.canaries]
        np.testing.assert_allclose(attack.score(model, ids),
                                   attack.score(model, manifest.canaries))

    def test_empty_input_and_mode_restored(self, tokenizer, random_model):
        attack = self.make(tokenizer, random_model)
        assert attack.score(random_model, []).shape == (0,)
        random_model.train()
        attack.score(random_model, ["some text here"])
        assert random_model.training
        random_model.eval()

    def test_members_score_higher_after_memorisation(self, tokenizer, random_model, memorised):
        model, manifest = memorised
        scores = self.make(tokenizer, random_model).score(model, manifest.canaries)
        assert roc_auc(scores, manifest.is_member) >= 0.85


class TestLossAttack(AttackContract):
    def make(self, tokenizer, random_model, batch_size=16):
        return LossAttack(tokenizer, batch_size=batch_size)


class TestZlibAttack(AttackContract):
    def make(self, tokenizer, random_model, batch_size=16):
        return ZlibAttack(tokenizer, batch_size=batch_size)


class TestMinKProbAttack(AttackContract):
    def make(self, tokenizer, random_model, batch_size=16):
        return MinKProbAttack(tokenizer, k=0.2, batch_size=batch_size)


class TestReferenceAttack(AttackContract):
    @pytest.fixture(scope="class")
    def public_reference(self, random_model, tokenizer):
        texts = [f"Public note {i}: the clinic opens at {8 + i % 3} am." for i in range(12)]
        with torch_threads(1):
            return finetune_causal_lm(copy.deepcopy(random_model), texts, tokenizer, epochs=2,
                                      lr=5e-3, batch_size=4)

    @pytest.fixture(autouse=True)
    def _refs(self, random_model, public_reference):
        self.refs = [random_model, public_reference]

    def make(self, tokenizer, random_model, batch_size=16):
        return ReferenceAttack(self.refs, tokenizer, batch_size=batch_size)


def test_min_k_with_k_one_equals_loss(tokenizer, random_model, memorised):
    _, manifest = memorised
    np.testing.assert_allclose(MinKProbAttack(tokenizer, k=1.0).score(random_model,
                                                                       manifest.canaries),
                               LossAttack(tokenizer).score(random_model, manifest.canaries))


def test_reference_with_target_as_reference_scores_zero(tokenizer, random_model):
    scores = ReferenceAttack([random_model], tokenizer).score(random_model, ["abc def", "xyz"])
    np.testing.assert_allclose(scores, 0.0, atol=1e-12)


def test_invalid_arguments_raise(tokenizer, random_model):
    with pytest.raises(InvalidFieldError, match="k must be in"):
        MinKProbAttack(tokenizer, k=0.0)
    with pytest.raises(InvalidFieldError, match="reference_models"):
        ReferenceAttack([], tokenizer)
    with pytest.raises(InvalidFieldError, match="tokenizer"):
        LossAttack(None).score(random_model, ["text needs a tokenizer"])
    with pytest.raises(InvalidFieldError, match="attack must be one of"):
        make_attack("nope")
    assert isinstance(make_attack("zlib", tokenizer), ZlibAttack)


def test_memorised_fixture_has_both_classes(memorised: tuple[nn.Module, CanaryManifest]):
    _, manifest = memorised
    assert 0 < len(manifest.members) < len(manifest.canaries)
