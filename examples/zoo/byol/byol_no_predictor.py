"""Broken BYOL: the predictor is built but skipped (online projection compared to the target directly).

The paper shows this collapses; the module still exists, so a parameter count looks right.
"""

from byol import BYOL, example_batch, loss_terms  # noqa: F401


class NoPredictorBYOL(BYOL):
    def online(self, view):
        return self.projector(self.encoder(view))


def build_model():
    return NoPredictorBYOL()
