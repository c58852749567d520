"""The contract a DP training pipeline satisfies to be audited with canaries.

The organization's DP-SGD pipeline plugs in as a :class:`DPTrainingHook`: ``make_train`` turns a
noise multiplier into a ``train(texts) -> model`` callable, and the hook states the epsilon its
accountant claims for the nominal noise. The audit then checks the claim, including with the
noise switched off (``make_train(0.0)``: a planted bug the audit must catch).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from gt_secure.audit.finetune import TrainFn
from gt_secure.errors import InvalidFieldError


@dataclass(frozen=True)
class DPTrainingHook:
    """A DP trainer under audit and the privacy claim for its nominal configuration."""

    make_train: Callable[[float], TrainFn]
    noise_multiplier: float
    claimed_epsilon: float
    delta: float

    def __post_init__(self) -> None:
        if self.noise_multiplier <= 0:
            raise InvalidFieldError("noise_multiplier", self.noise_multiplier, "> 0")
        if not self.claimed_epsilon >= 0:
            raise InvalidFieldError("claimed_epsilon", self.claimed_epsilon, ">= 0")
        if not 0 <= self.delta < 1:
            raise InvalidFieldError("delta", self.delta, "in [0, 1)")


def load_hook(spec: str) -> DPTrainingHook:
    """Import ``"package.module:function"`` and call it to get a :class:`DPTrainingHook`."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise InvalidFieldError("hook spec", spec, "of the form 'package.module:function'")
    hook = getattr(importlib.import_module(module_name), attr)()
    if not isinstance(hook, DPTrainingHook):
        raise InvalidFieldError("hook", type(hook).__name__, "a DPTrainingHook")
    return hook
