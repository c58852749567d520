"""Configurations of the two base models: TinyLM (organizations) and LLM (provider).

Both are Llama-style decoders sharing one byte-level BPE tokenizer, so the paper's LoRA target
modules (``q_proj``, ``v_proj``) exist in both.
"""

from __future__ import annotations

from typing import Literal

from transformers import LlamaConfig

BaseName = Literal["tinylm", "llm"]
BASE_NAMES: tuple[BaseName, ...] = ("tinylm", "llm")
VOCAB_SIZE = 4096
MAX_POSITIONS = 256

_SHAPES: dict[str, dict[str, int]] = {
    # ~0.46M parameters: 4 layers x d=64.
    "tinylm": {
        "hidden_size": 64,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "intermediate_size": 176,
    },
    # ~3.1M parameters: 8 layers x d=160.
    "llm": {
        "hidden_size": 160,
        "num_hidden_layers": 8,
        "num_attention_heads": 5,
        "intermediate_size": 432,
    },
}


def model_config(name: str) -> LlamaConfig:
    """Return the architecture of base model ``name`` ("tinylm" or "llm")."""
    if name not in _SHAPES:
        from gt_secure.errors import InvalidFieldError

        raise InvalidFieldError("base_model", name, f"one of {list(_SHAPES)}")
    shape = _SHAPES[name]
    return LlamaConfig(
        vocab_size=VOCAB_SIZE,
        max_position_embeddings=MAX_POSITIONS,
        num_key_value_heads=shape["num_attention_heads"],
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        hidden_size=shape["hidden_size"],
        num_hidden_layers=shape["num_hidden_layers"],
        num_attention_heads=shape["num_attention_heads"],
        intermediate_size=shape["intermediate_size"],
    )
