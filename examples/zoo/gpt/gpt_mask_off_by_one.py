"""Broken GPT block: the mask is built with ``tril(diagonal=1)``, so position t also sees t+1.

Off-by-one in the mask construction: the loss looks excellent (the next token is visible).
"""

import torch

from gpt import SEQ, TinyGPT, example_batch, loss_terms  # noqa: F401


def build_model():
    model = TinyGPT()
    model.block.attn.mask = torch.ones(SEQ, SEQ).tril(diagonal=1).bool()
    return model
