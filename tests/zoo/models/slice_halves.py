"""One Linear whose output is (mu, s) as column halves, taken by slicing (not chunk): mu = h[:, :3],
std = softplus(s) from h[:, 3:]; z = mu + std * eps in train mode. Variants change one half."""
import torch
import torch.nn.functional as F
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stats = nn.Linear(5, 6)
        self.head = nn.Linear(3, 1)

    def halves(self, h):
        return h[:, :3], F.softplus(h[:, 3:])

    def forward(self, x):
        mu, std = self.halves(self.stats(x))
        z = mu + std * torch.randn_like(std) if self.training else mu
        return {"z": z, "mu": mu, "std": std, "logit": self.head(z).squeeze(-1)}


def build_model():
    return Net()


def example_batch(batch_size, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch_size, 5, generator=g)
    return {"x": x, "y": (x[:, 0] > 0).float()}


def loss_terms(model, batch, outputs, step):
    return {"bce": F.binary_cross_entropy_with_logits(outputs["logit"], batch["y"])}
