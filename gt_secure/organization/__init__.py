"""The organization node: DP-SGD LoRA fine-tune, clip + noise on the update, budgeted release.

:func:`prepare_release` is the node's single entry point (the Flower ClientApp calls it);
:func:`dp_trainer` gives the audit a ``train(texts) -> model`` callable of the same DP-SGD.
Names load lazily so that importing a light module (e.g. ``secure_rng``) does not import Opacus.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DEMO_DP_SGD": "release",
    "DpSgdConfig": "dp_sgd",
    "DpSgdResult": "dp_sgd",
    "InsecureRandomnessWarning": "secure_rng",
    "PrivacyBudget": "release",
    "Release": "release",
    "ReleaseConfig": "release",
    "VectorDpConfig": "vector_dp",
    "VectorDpResult": "vector_dp",
    "clip_l2": "vector_dp",
    "dp_trainer": "dp_sgd",
    "plan_dp_sgd": "dp_sgd",
    "plan_release": "release",
    "prepare_release": "release",
    "privatize_update": "vector_dp",
    "train_dp_sgd": "dp_sgd",
    "train_dp_sgd_texts": "dp_sgd",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
