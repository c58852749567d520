"""UpdateVector: round trips, hashing, per-layer tokens and named errors on bad input."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gt_secure.errors import LayoutMismatchError, UpdateVectorError
from gt_secure.update import LoraSpec, TensorSpec, UpdateLayout, UpdateVector


def make_layout(n_layers: int, d: int, r: int = 2, base_hash: str = "ab" * 32) -> UpdateLayout:
    entries = []
    for layer in range(n_layers):
        for module in ("q_proj", "v_proj"):
            entries.append(
                TensorSpec(name=f"layers.{layer}.self_attn.{module}.lora_A", shape=(r, d))
            )
            entries.append(
                TensorSpec(name=f"layers.{layer}.self_attn.{module}.lora_B", shape=(d, r))
            )
    return UpdateLayout(
        base_model="tinylm", base_model_hash=base_hash, lora=LoraSpec(r=r), entries=tuple(entries)
    )


layouts = st.builds(make_layout, st.integers(1, 4), st.integers(1, 8), st.integers(1, 3))


@st.composite
def vectors(draw: st.DrawFn) -> UpdateVector:
    layout = draw(layouts)
    values = draw(
        st.lists(st.floats(-1e6, 1e6, width=32), min_size=layout.size, max_size=layout.size)
    )
    return UpdateVector(layout, np.array(values, dtype=np.float32))


@settings(max_examples=50, deadline=None)
@given(vectors())
def test_bytes_round_trip_preserves_values_layout_and_hash(vec: UpdateVector) -> None:
    back = UpdateVector.from_bytes(vec.to_bytes())
    assert back.layout == vec.layout
    np.testing.assert_array_equal(back.flat, vec.flat)
    assert back.content_hash() == vec.content_hash()


@settings(max_examples=50, deadline=None)
@given(vectors())
def test_layer_tokens_round_trip(vec: UpdateVector) -> None:
    tokens = vec.layer_tokens()
    assert tokens.shape == (vec.layout.n_layers, vec.layout.token_dim)
    back = UpdateVector.from_layer_tokens(vec.layout, tokens)
    np.testing.assert_array_equal(back.flat, vec.flat)


def test_file_round_trip_and_tensors(tmp_path) -> None:
    layout = make_layout(2, 4)
    vec = UpdateVector(layout, np.arange(layout.size, dtype=np.float32))
    vec.save(tmp_path / "u.safetensors")
    back = UpdateVector.load(tmp_path / "u.safetensors")
    assert back.content_hash() == vec.content_hash()
    tensors = back.to_tensors()
    assert tensors["layers.1.self_attn.v_proj.lora_B"].shape == (4, 2)
    assert back.l2_norm() == pytest.approx(float(np.linalg.norm(np.arange(layout.size))))


def test_content_hash_changes_with_one_value() -> None:
    layout = make_layout(1, 2)
    flat = np.zeros(layout.size, dtype=np.float32)
    other = flat.copy()
    other[3] = 1e-7
    assert UpdateVector(layout, flat).content_hash() != UpdateVector(layout, other).content_hash()


@pytest.mark.parametrize(
    ("flat", "field"),
    [
        (np.zeros(5, dtype=np.float32), "flat.shape"),
        (np.zeros((2, 16), dtype=np.float32), "flat.shape"),
        (np.zeros(32, dtype=np.float64), "flat.dtype"),
        (np.array([0.0] * 7 + [np.nan] + [0.0] * 24, dtype=np.float32), "flat[7]"),
        (np.array([np.inf] + [0.0] * 31, dtype=np.float32), "flat[0]"),
    ],
)
def test_bad_values_name_the_field(flat: np.ndarray, field: str) -> None:
    layout = make_layout(1, 4)  # 32 values
    with pytest.raises(UpdateVectorError, match=f"got {re.escape(field)}="):
        UpdateVector(layout, flat)


def test_unknown_layout_version_is_refused() -> None:
    layout = make_layout(1, 2)
    vec = UpdateVector(layout, np.zeros(layout.size, dtype=np.float32))
    data = vec.to_bytes()
    header_len = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + header_len])
    meta = json.loads(header["__metadata__"]["layout"])
    meta["version"] = 99
    from safetensors.numpy import save

    forged = save({"flat": vec.flat}, metadata={"layout": json.dumps(meta)})
    with pytest.raises(UpdateVectorError, match="layout.version must be 1, got layout.version=99"):
        UpdateVector.from_bytes(forged)


def test_wrong_base_model_is_refused() -> None:
    mine = make_layout(1, 2, base_hash="00" * 32)
    expected = make_layout(1, 2, base_hash="ff" * 32)
    vec = UpdateVector(mine, np.zeros(mine.size, dtype=np.float32))
    with pytest.raises(LayoutMismatchError, match="layout.base_model_hash"):
        vec.check_compatible(expected)
    vec.check_compatible(mine)
