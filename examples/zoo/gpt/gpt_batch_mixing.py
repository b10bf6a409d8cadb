"""Broken GPT block: the attention softmax is taken over dim 0 (batch) after a transpose mix-up.

Tokens then attend across sequences in the batch: examples leak into each other.
"""

import math

import torch

from gpt import D_MODEL, N_HEADS, CausalSelfAttention, TinyGPT, example_batch, loss_terms  # noqa: F401


class BatchSoftmax(CausalSelfAttention):
    def forward(self, h):
        batch, length, _ = h.shape
        q, k, v = self.qkv(h).split(D_MODEL, dim=-1)
        q, k, v = (t.view(batch, length, N_HEADS, -1).transpose(1, 2) for t in (q, k, v))
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        scores = scores.masked_fill(~self.allowed(length), -1e4)
        mixed = (scores.softmax(dim=0) @ v).transpose(1, 2).reshape(batch, length, D_MODEL)
        return self.out(mixed)


def build_model():
    model = TinyGPT()
    model.block.attn.__class__ = BatchSoftmax
    return model
