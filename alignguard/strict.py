"""The one strict pydantic base: every user-written file (spec, training config, dataset manifest)
is validated by models that reject unknown keys, so a misspelled key is an error, never ignored."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Unknown keys are errors. Subclasses add what their file needs (frozen, assignment checks)."""

    model_config = ConfigDict(extra="forbid")
