"""Broken ChromBPNet: the bias profile is computed but never added to the profile logits.

Only the counts are factorised; the accessibility model must learn the enzyme bias itself.
"""

import torch

from chrombpnet import ChromBPNet, example_batch, loss_terms  # noqa: F401


class NoBiasProfile(ChromBPNet):
    def forward(self, x):
        bias_profile, bias_counts = self.bias_model(x)
        acc_profile, acc_counts = self.accessibility_model(x)
        log_counts = torch.logsumexp(torch.stack([acc_counts, bias_counts], dim=-1), dim=-1)
        return {"profile_logits": acc_profile, "log_counts": log_counts, "bias_profile": bias_profile,
                "bias_counts": bias_counts, "acc_profile": acc_profile, "acc_counts": acc_counts}


def build_model():
    return NoBiasProfile()
