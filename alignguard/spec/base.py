"""The base of every spec model (spec/model.py and the rules it embeds, spec/rules.py)."""

from __future__ import annotations

from pydantic import ConfigDict

from alignguard.strict import StrictModel


class SpecModel(StrictModel):
    # allow_inf_nan=False: `tolerance: .inf` would make a probe that can never fail
    model_config = ConfigDict(frozen=True, populate_by_name=True, allow_inf_nan=False)
