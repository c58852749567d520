"""Noise calibration shared by both organization mechanisms (DP-SGD, vector Gaussian)."""

from __future__ import annotations

import math

from pydantic import field_validator, model_validator

from gt_secure.errors import InvalidFieldError
from gt_secure.ledger._model import FrozenModel
from gt_secure.ledger.accountant import AccountantName, check_delta


class NoiseCalibration(FrozenModel):
    """Exactly one of ``noise_multiplier`` and ``target_epsilon``; delta; accountant; RNG mode."""

    noise_multiplier: float | None = None
    target_epsilon: float | None = None
    delta: float = 1e-5
    accountant: AccountantName = "rdp"
    secure_mode: bool = True

    @field_validator("noise_multiplier")
    @classmethod
    def _check_noise(cls, value: float | None) -> float | None:
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise InvalidFieldError("noise_multiplier", value, "finite and >= 0")
        return value

    @field_validator("target_epsilon")
    @classmethod
    def _check_target(cls, value: float | None) -> float | None:
        if value is not None and not (math.isfinite(value) and value > 0):
            raise InvalidFieldError("target_epsilon", value, "finite and > 0")
        return value

    @field_validator("delta")
    @classmethod
    def _check_delta(cls, value: float) -> float:
        return check_delta(value)

    @model_validator(mode="after")
    def _exactly_one(self) -> NoiseCalibration:
        if (self.noise_multiplier is None) == (self.target_epsilon is None):
            raise InvalidFieldError("noise_multiplier", self.noise_multiplier,
                                    "set exactly when target_epsilon is None")
        return self
