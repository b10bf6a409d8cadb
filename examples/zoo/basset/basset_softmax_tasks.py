"""Broken DeepSEA: the tasks are treated as mutually exclusive classes (softmax over tasks).

Multi-label chromatin features become one multi-class label: a sequence can no longer be open
in several cell types at once, and each task's probability depends on every other task's logit.
"""

import torch

from basset import DeepSEA, example_batch, loss_terms  # noqa: F401


class SoftmaxTasks(DeepSEA):
    def forward(self, x):
        outputs = super().forward(x)
        outputs["probs"] = torch.softmax(outputs["logits"], dim=-1)
        return outputs


def build_model():
    return SoftmaxTasks()
