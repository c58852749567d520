"""Frozen pydantic base whose constructor raises :class:`InvalidFieldError`, not pydantic's error.

Pydantic wraps every ``ValueError`` raised by a validator into a ``ValidationError``. Callers of
the ledger API expect the project's hierarchy, so direct construction unwraps it: the first
problem is raised as an ``InvalidFieldError`` naming its field and value, and every problem found
is attached as a note (validators collect all problems before raising). Parsing stored JSON with
``model_validate_json`` keeps pydantic's ``ValidationError`` (a ``ValueError`` too), which the
verifier reports as a schema error.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from gt_secure.errors import InvalidFieldError


def as_invalid_field(err: ValidationError) -> InvalidFieldError:
    """Convert a pydantic ``ValidationError`` into the project's ``InvalidFieldError``."""
    problems = err.errors()
    first = problems[0]
    original = first.get("ctx", {}).get("error")
    if isinstance(original, InvalidFieldError):
        converted = original
    else:
        field = ".".join(str(part) for part in first["loc"]) or "value"
        converted = InvalidFieldError(field, first.get("input"), f"valid ({first['msg']})")
    if len(problems) > 1:
        converted.add_note(str(err))
    return converted


class FrozenModel(BaseModel):
    """Immutable model, unknown fields forbidden, project errors on construction."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as err:
            raise as_invalid_field(err) from err
