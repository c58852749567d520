"""Grad-Transformer: input dependence, beats the mean update, save/load, layout refusal."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from peft import PeftModel

from gt_secure.errors import LayoutMismatchError
from gt_secure.provider.adapter import adapted_model, export_adapter, load_adapter
from gt_secure.provider.build import compare_on_pairs
from gt_secure.provider.service import SHIPPED_TRANSLATOR
from gt_secure.provider.shadow import ShadowPairs, generate_shadow_pairs
from gt_secure.provider.training import TrainConfig, Translator, train_translator
from gt_secure.update import UpdateVector

from .conftest import SMALL

FAST = TrainConfig(epochs=150, batch_size=16)


@pytest.fixture(scope="module")
def translator(small_pairs: ShadowPairs) -> Translator:
    return train_translator(small_pairs, FAST)[0]


def _tiny_update(pairs: ShadowPairs, i: int) -> UpdateVector:
    return UpdateVector.from_layer_tokens(pairs.tiny_layout, pairs.tiny[i].astype(np.float32))


def test_shadow_pairs_have_expected_shapes_and_differ(small_pairs: ShadowPairs) -> None:
    per_subset = len(SMALL.checkpoints())
    assert small_pairs.tiny.shape[0] == SMALL.subsets * per_subset
    assert small_pairs.tiny.shape[1:] == (
        small_pairs.tiny_layout.n_layers,
        small_pairs.tiny_layout.token_dim,
    )
    # Different subsets give different LLM updates (the trap: one checkpoint for all files).
    first = small_pairs.llm[small_pairs.subset == 0][-1]
    second = small_pairs.llm[small_pairs.subset == 1][-1]
    assert np.linalg.norm(first - second) > 0.1 * np.linalg.norm(first)


def test_generation_resumes_from_cache(small_pairs: ShadowPairs, shadow_cache) -> None:
    cache = shadow_cache / SMALL.config_hash()
    stamps = {p.name: p.stat().st_mtime_ns for p in cache.glob("subset-*.safetensors")}
    again = generate_shadow_pairs(SMALL, shadow_cache)
    assert {p.name: p.stat().st_mtime_ns for p in cache.glob("subset-*.safetensors")} == stamps
    np.testing.assert_array_equal(again.llm, small_pairs.llm)
    assert (cache / "manifest.json").exists()


def test_output_depends_on_input(translator: Translator, small_pairs: ShadowPairs) -> None:
    a = translator.translate(_tiny_update(small_pairs, 0)).flat
    b = translator.translate(_tiny_update(small_pairs, len(small_pairs.tiny) - 1)).flat
    assert np.linalg.norm(a - b) > 0.05 * np.linalg.norm(a)


def test_beats_mean_update_on_held_out_subsets() -> None:
    """On the shipped shadow pairs (24 subsets), held-out subsets are predicted better than by
    the input-blind mean shadow update."""
    pairs = ShadowPairs.load(SHIPPED_TRANSLATOR / "shadow_pairs.safetensors")
    errors = compare_on_pairs(pairs, TrainConfig(), validation_fraction=0.25)
    gt, mean = errors["grad_transformer"], errors["mean_update"]
    assert gt["val_relative_error"] < mean["val_relative_error"], errors
    assert gt["val_cosine"] > mean["val_cosine"], errors


def test_save_load_round_trip(translator: Translator, small_pairs: ShadowPairs, tmp_path) -> None:
    translator.save(tmp_path / "t")
    loaded = Translator.load(tmp_path / "t", expected_tiny=small_pairs.tiny_layout)
    update = _tiny_update(small_pairs, 3)
    np.testing.assert_allclose(
        loaded.translate(update).flat, translator.translate(update).flat, rtol=1e-5, atol=1e-7
    )


def test_mismatched_layout_is_refused(
    translator: Translator, small_pairs: ShadowPairs, tmp_path
) -> None:
    foreign = small_pairs.tiny_layout.model_copy(update={"base_model_hash": "0" * 64})
    update = UpdateVector(foreign, _tiny_update(small_pairs, 0).flat.copy())
    with pytest.raises(LayoutMismatchError, match="layout.base_model_hash"):
        translator.translate(update)
    translator.save(tmp_path / "t")
    with pytest.raises(LayoutMismatchError, match="base_model_hash"):
        Translator.load(tmp_path / "t", expected_tiny=foreign)


def test_translate_apply_and_export_peft_adapter(
    translator: Translator, small_pairs: ShadowPairs, tmp_path
) -> None:
    llm_update = translator.translate(_tiny_update(small_pairs, 5))
    model = adapted_model(llm_update)
    export_adapter(llm_update, tmp_path / "adapter")
    assert os.path.exists(tmp_path / "adapter" / "adapter_config.json")
    loaded = load_adapter(tmp_path / "adapter")
    assert isinstance(loaded, PeftModel)
    ids = torch.tensor([[1, 50, 60, 70, 80]])
    with torch.no_grad():
        np.testing.assert_allclose(
            loaded(input_ids=ids).logits.numpy(),
            model(input_ids=ids).logits.numpy(),
            rtol=1e-4,
            atol=1e-5,
        )
