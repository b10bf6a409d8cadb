"""Model-file contract around the miniature CMDN (see structural_zoo.py)."""

import torch.nn.functional as F
from structural_zoo import MiniCMDN, example_batch  # noqa: F401  (contract entry point)


def build_model():
    return MiniCMDN()


def loss_terms(model, batch, outputs, step):
    return {"bce": F.binary_cross_entropy_with_logits(outputs["logit"], batch["y"])}
