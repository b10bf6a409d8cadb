"""The base of every spec model (spec/model.py and the rules it embeds, spec/rules.py)."""

from __future__ import annotations

from pydantic import ConfigDict

from alignguard.strict import StrictModel


class SpecModel(StrictModel):
    # allow_inf_nan=False: `tolerance: .inf` would make a probe that can never fail.
    # defer_build: each model's validator is built when it first validates, not at import: the CLI
    # validates the spec before the model worker starts, and the worker, which receives the Spec
    # pickled, then never pays for building them (~0.05 s of its start-up, docs/benchmarks.md §1).
    model_config = ConfigDict(frozen=True, populate_by_name=True, allow_inf_nan=False, defer_build=True)
