"""Broken DANN: the gradient-reversal layer was dropped ("it trains more stably without it").

The domain classifier and the feature extractor now cooperate: the features learn to make the
domains *more* separable, the opposite of the design. The losses still go down.
"""

from dann import DANN, example_batch, loss_terms  # noqa: F401


class NoReversalDANN(DANN):
    def forward(self, x, alpha):
        f = self.features(x)
        return {"class_logits": self.label_head(f), "domain_logit": self.domain_head(f).squeeze(-1), "f": f}


def build_model():
    return NoReversalDANN()
