"""Broken DANN: the reversal is applied to the domain classifier's *output* instead of its input.

Then the domain classifier's own parameters receive the reversed gradient too: it is trained to
be as wrong as possible about the domain, and the features get the plain gradient. Nothing
adversarial remains.
"""

from dann import DANN, example_batch, loss_terms, reverse_gradient  # noqa: F401


class LateReversalDANN(DANN):
    def forward(self, x, alpha):
        f = self.features(x)
        domain_logit = reverse_gradient(self.domain_head(f), alpha).squeeze(-1)
        return {"class_logits": self.label_head(f), "domain_logit": domain_logit, "f": f}


def build_model():
    return LateReversalDANN()
