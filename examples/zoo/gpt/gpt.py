"""A GPT-style decoder block (Radford et al. 2018, on Vaswani et al. 2017): causal self-attention.

    h      = tok_emb(ids) + pos_emb(positions)
    h      = h + attn(ln1(h))     scores masked to -inf above the diagonal: position t attends
                                  to positions <= t only
    h      = h + mlp(ln2(h))
    logits = lm_head(ln_f(h))     next-token prediction, L = CE(logits[:, :-1], ids[:, 1:])

Because of the mask, logits at position t depend on ids[:, :t+1] only: that is what makes the
next-token loss honest.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

VOCAB, SEQ, D_MODEL, N_HEADS = 17, 12, 16, 2


class CausalSelfAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.qkv = nn.Linear(D_MODEL, 3 * D_MODEL)
        self.out = nn.Linear(D_MODEL, D_MODEL)
        self.register_buffer("mask", torch.ones(SEQ, SEQ).tril().bool(), persistent=False)

    def allowed(self, length: int) -> torch.Tensor:
        return self.mask[:length, :length]

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        batch, length, _ = h.shape
        q, k, v = self.qkv(h).split(D_MODEL, dim=-1)
        q, k, v = (t.view(batch, length, N_HEADS, -1).transpose(1, 2) for t in (q, k, v))
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        scores = scores.masked_fill(~self.allowed(length), float("-inf"))
        mixed = (scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(batch, length, D_MODEL)
        return self.out(mixed)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(D_MODEL), nn.LayerNorm(D_MODEL)
        self.attn = CausalSelfAttention()
        self.mlp = nn.Sequential(nn.Linear(D_MODEL, 4 * D_MODEL), nn.GELU(), nn.Linear(4 * D_MODEL, D_MODEL))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = h + self.attn(self.ln1(h))
        return h + self.mlp(self.ln2(h))


class TinyGPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.tok_emb = nn.Embedding(VOCAB, D_MODEL)
        self.pos_emb = nn.Embedding(SEQ, D_MODEL)
        self.block = Block()
        self.ln_f = nn.LayerNorm(D_MODEL)
        self.lm_head = nn.Linear(D_MODEL, VOCAB)

    def forward(self, ids: torch.Tensor) -> dict[str, torch.Tensor]:
        positions = torch.arange(ids.shape[1], device=ids.device)
        h = self.block(self.tok_emb(ids) + self.pos_emb(positions))
        return {"logits": self.lm_head(self.ln_f(h))}


def build_model() -> nn.Module:
    return TinyGPT()


def example_batch(batch_size: int, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    start = torch.randint(0, VOCAB, (batch_size, 1), generator=generator)
    step = torch.randint(1, 4, (batch_size, 1), generator=generator)
    return {"ids": (start + step * torch.arange(SEQ)) % VOCAB}  # arithmetic sequences: predictable


def loss_terms(model, batch, outputs, step: int) -> dict[str, torch.Tensor]:
    logits, ids = outputs["logits"], batch["ids"]
    return {"next_token": F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), ids[:, 1:].reshape(-1))}
