"""Shadow set and Grad-Transformer: shapes, cache, ridge path, held-out error, save/load, export."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from peft import PeftModel

from gt_secure.errors import InvalidFieldError, LayoutMismatchError
from gt_secure.provider.adapter import adapted_model, export_adapter, load_adapter
from gt_secure.provider.baselines import MeanUpdate, RidgeMap
from gt_secure.provider.build import compare_on_pairs
from gt_secure.provider.pairs import ShadowPairs
from gt_secure.provider.service import SHIPPED_TRANSLATOR
from gt_secure.provider.shadow import ShadowSet, generate_shadow_set
from gt_secure.provider.training import TrainConfig, Translator, train_translator
from gt_secure.update import UpdateVector

from .conftest import SMALL

FAST = TrainConfig(epochs=20, patience=5, batch_size=16)


@pytest.fixture(scope="module")
def translator(small_pairs: ShadowPairs) -> Translator:
    return train_translator(small_pairs, FAST)[0]


def _tiny_update(pairs: ShadowPairs, i: int) -> UpdateVector:
    return UpdateVector.from_layer_tokens(pairs.tiny_layout, pairs.tiny[i].astype(np.float32))


def test_shadow_set_shapes_groups_and_dp_copies(small_set: ShadowSet) -> None:
    k, c, g = SMALL.subsets, len(SMALL.checkpoints), len(small_set.groups)
    assert g >= 1 and small_set.llm.shape[:2] == (k + g, c)
    assert set(small_set.tiny) == {"inf", "8"}
    assert small_set.tiny["inf"].shape == (k, c, small_set.tiny_layout.size)
    assert small_set.tiny_layout.size == 1024  # FFA-LoRA: B factors only
    pairs = small_set.pairs()
    assert len(pairs.tiny) == (k + g) * c and (pairs.orgs == 3).sum() == g * c
    # A multi-organization pair's input is exactly the mean of its members' TinyLM updates.
    members = small_set.groups[0]
    np.testing.assert_allclose(pairs.tiny[pairs.orgs == 3][0].reshape(-1),
                               small_set.tiny["inf"][members, 0].mean(0), rtol=1e-6)
    # Different subsets give different LLM updates (the trap: one checkpoint for all files).
    assert np.linalg.norm(small_set.llm[0, -1] - small_set.llm[1, -1]) > 0.1 * np.linalg.norm(
        small_set.llm[0, -1])
    # The DP copy is another TinyLM update for the same LLM target.
    assert not np.allclose(small_set.tiny["8"], small_set.tiny["inf"])
    with pytest.raises(InvalidFieldError, match="epsilon"):
        small_set.pairs(1.0)


def test_cache_is_reused_and_a_tampered_file_is_refused(small_set: ShadowSet, shadow_cache) -> None:
    cache = shadow_cache / SMALL.cache_key()
    stamp = (cache / "shadow.safetensors").stat().st_mtime_ns
    again = generate_shadow_set(SMALL, shadow_cache)
    assert (cache / "shadow.safetensors").stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(again.llm, small_set.llm)
    copy = shadow_cache / "copy"
    (copy / SMALL.cache_key()).mkdir(parents=True)
    for name in ("shadow.safetensors", "manifest.json"):
        data = (cache / name).read_bytes()
        if name == "shadow.safetensors":
            data = data[:-1] + bytes([data[-1] ^ 1])
        (copy / SMALL.cache_key() / name).write_bytes(data)
    with pytest.raises(InvalidFieldError, match="sha256"):
        generate_shadow_set(SMALL, copy)


def test_output_depends_on_input(translator: Translator, small_pairs: ShadowPairs) -> None:
    a = translator.translate(_tiny_update(small_pairs, 0)).flat
    b = translator.translate(_tiny_update(small_pairs, len(small_pairs.tiny) - 1)).flat
    assert np.linalg.norm(a - b) > 0.05 * np.linalg.norm(a)


def test_untrained_residual_leaves_exactly_the_ridge_map(small_pairs: ShadowPairs) -> None:
    """With no residual epochs the Grad-Transformer is its ridge path: equal to RidgeMap."""
    cfg = TrainConfig(epochs=0, ridge_alphas=(10.0,))
    translator, _ = train_translator(small_pairs, cfg)
    ridge = RidgeMap(small_pairs.split()[0], alphas=(10.0,))
    for i in (0, 7, len(small_pairs.tiny) - 1):
        update = _tiny_update(small_pairs, i)
        got, want = translator.translate(update).flat, ridge.translate(update).flat
        assert np.linalg.norm(got - want) <= 1e-3 * np.linalg.norm(want)


def _regime_pairs() -> ShadowPairs:
    """Held-out pairs of the K=300 shadow set generated on an H200 (docs/benchmarks.md),
    re-split: 3 of their 15 subset pairs held out here."""
    pairs = ShadowPairs.load(str(SHIPPED_TRANSLATOR / "regime_pairs.safetensors"))
    held = np.isin(pairs.subset // 2, [9, 69, 129])
    return pairs.model_copy(update={"validation": held})


def test_beats_mean_update_and_matches_ridge_on_held_out_subsets() -> None:
    errors = compare_on_pairs(_regime_pairs(), TrainConfig(epochs=60, patience=20))
    gt, mean, ridge = errors["grad_transformer"], errors["mean_update"], errors["ridge"]
    assert gt["val_relative_error"] < 0.8 * mean["val_relative_error"], errors
    assert gt["val_cosine"] > mean["val_cosine"] + 0.05, errors
    assert gt["val_relative_error"] <= ridge["val_relative_error"] + 0.02, errors


def test_mean_update_ignores_its_input(small_pairs: ShadowPairs) -> None:
    mean = MeanUpdate(small_pairs)
    a, b = (mean.translate(_tiny_update(small_pairs, i)).flat for i in (0, 5))
    np.testing.assert_array_equal(a, b)


def test_save_load_round_trip(translator: Translator, small_pairs: ShadowPairs, tmp_path) -> None:
    translator.save(tmp_path / "t")
    loaded = Translator.load(tmp_path / "t", expected_tiny=small_pairs.tiny_layout)
    update = _tiny_update(small_pairs, 3)
    np.testing.assert_allclose(
        loaded.translate(update).flat, translator.translate(update).flat, rtol=1e-5, atol=1e-7
    )


def test_shipped_translator_loads_and_translates() -> None:
    shipped = Translator.load(SHIPPED_TRANSLATOR)
    pairs = ShadowPairs.load(str(SHIPPED_TRANSLATOR / "shadow_pairs.safetensors"))
    out = shipped.translate(_tiny_update(pairs, 0))
    assert out.layout == shipped.llm_layout and np.isfinite(out.flat).all()


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
