"""Broken ChromBPNet: log counts combined by plain addition (log a + log b = log(a*b)).

The counts of the two models multiply instead of adding; the total is wrong by orders of
magnitude wherever the bias model predicts many cuts.
"""

from chrombpnet import ChromBPNet, example_batch, loss_terms  # noqa: F401


class AddedCounts(ChromBPNet):
    def forward(self, x):
        bias_profile, bias_counts = self.bias_model(x)
        acc_profile, acc_counts = self.accessibility_model(x)
        return {"profile_logits": acc_profile + bias_profile, "log_counts": acc_counts + bias_counts,
                "bias_profile": bias_profile, "bias_counts": bias_counts, "acc_profile": acc_profile,
                "acc_counts": acc_counts}


def build_model():
    return AddedCounts()
