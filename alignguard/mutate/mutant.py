"""A mutant: the model file with a design-breaking change to the model and/or its losses."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

from alignguard.modelfile.loader import ModelFile

ModelEdit = Callable[[Any], None]  # changes a freshly built model in place
LossEdit = Callable[[dict, Any, dict, Any, int], dict]  # (terms, model, batch, outputs, step) -> terms


@dataclass
class Mutant:
    operator: str  # operator id, e.g. "noise.removed"
    target: str  # what it changes, e.g. "bottleneck.randn_like" or "loss kl"
    description: str  # one readable line: what the mutant does to the design
    suggestion: str  # the spec rule (and check) that catches it, shown when it survives
    edit_model: ModelEdit | None = None
    edit_losses: LossEdit | None = None

    @property
    def id(self) -> str:
        return f"{self.operator}:{self.target}"

    def model_file(self, original: ModelFile) -> ModelFile:
        """The original model file with this mutant's edits applied to what it builds and returns."""
        build, losses = original.build_model, original.loss_terms
        if self.edit_model is not None:
            edit_model = self.edit_model

            def build_mutant():
                model = original.build_model()
                edit_model(model)
                return model

            build_mutant.__name__ = original.build_model.__name__
            build = build_mutant
        if self.edit_losses is not None:
            edit_losses = self.edit_losses

            def loss_terms_mutant(model, batch, outputs, step):
                return edit_losses(dict(original.loss_terms(model, batch, outputs, step)), model, batch, outputs, step)

            loss_terms_mutant.__name__ = original.loss_terms.__name__
            losses = loss_terms_mutant
        return dataclasses.replace(original, build_model=build, loss_terms=losses)
