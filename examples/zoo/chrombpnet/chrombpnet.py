"""A ChromBPNet-style bias-factorised model (Pampari et al., bioRxiv 2023).

A *bias model*, trained beforehand on background regions to capture the assay's enzyme
sequence preference (Tn5 / DNase), is frozen; an *accessibility model* learns the rest:

    bias_profile, bias_counts = bias_model(x)           frozen: requires_grad=False, eval mode
    acc_profile,  acc_counts  = accessibility_model(x)
    profile_logits = acc_profile + bias_profile         per-position logits (a multinomial)
    log_counts     = logsumexp(acc_counts, bias_counts) total counts add: exp(a) + exp(b)

Losses: multinomial NLL of the observed per-position counts under softmax(profile_logits), and
MSE of log(1 + total counts) against log_counts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LENGTH, PROFILE, CHANNELS = 40, 20, 8


class BPNetLike(nn.Module):
    """Dilated convolutions -> (per-position profile logits, a scalar log count)."""

    def __init__(self, channels: int = CHANNELS, layers: int = 2):
        super().__init__()
        self.stem = nn.Conv1d(4, channels, 7, padding=3)
        self.dilated = nn.ModuleList(nn.Conv1d(channels, channels, 3, padding=2 ** i, dilation=2 ** i)
                                     for i in range(1, layers + 1))
        self.profile_head = nn.Conv1d(channels, 1, 5, padding=2)
        self.count_head = nn.Linear(channels, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.relu(self.stem(x))
        for conv in self.dilated:
            h = h + F.relu(conv(h))
        crop = (LENGTH - PROFILE) // 2
        profile = self.profile_head(h).squeeze(1)[:, crop:crop + PROFILE]
        counts = self.count_head(h.mean(-1)).squeeze(-1)
        return profile, counts


class ChromBPNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.bias_model = BPNetLike(channels=4, layers=1)
        self.bias_model.requires_grad_(False)  # pre-trained on background regions, then frozen
        self.accessibility_model = BPNetLike()

    def train(self, mode: bool = True):
        super().train(mode)
        self.bias_model.eval()  # frozen: no dropout/batch-norm updates either
        return self

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        bias_profile, bias_counts = self.bias_model(x)
        acc_profile, acc_counts = self.accessibility_model(x)
        profile_logits = acc_profile + bias_profile
        log_counts = torch.logsumexp(torch.stack([acc_counts, bias_counts], dim=-1), dim=-1)
        return {"profile_logits": profile_logits, "log_counts": log_counts, "bias_profile": bias_profile,
                "bias_counts": bias_counts, "acc_profile": acc_profile, "acc_counts": acc_counts}


def build_model() -> nn.Module:
    return ChromBPNet()


def example_batch(batch_size: int, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = F.one_hot(torch.randint(0, 4, (batch_size, LENGTH), generator=generator), 4).float().transpose(1, 2)
    rate = 1.0 + 3.0 * x[:, 2, 10:10 + PROFILE]  # G-rich positions are cut more often
    counts = torch.poisson(rate, generator=generator)
    return {"x": x, "counts": counts}


def loss_terms(model, batch, outputs, step: int) -> dict[str, torch.Tensor]:
    counts = batch["counts"]
    log_probs = F.log_softmax(outputs["profile_logits"], dim=-1)
    return {
        "profile": -(counts * log_probs).sum(-1).mean() / PROFILE,
        "counts": F.mse_loss(outputs["log_counts"], torch.log1p(counts.sum(-1))),
    }
