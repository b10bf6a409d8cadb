"""Two counts heads combined three ways, chosen by COMBINE (logsumexp, log(exp + exp), or a plain sum)."""

import torch
from torch import nn

COMBINE = "logsumexp"


class Counts(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 1), nn.Linear(4, 1)

    def forward(self, x):
        a, b = self.a(x).squeeze(-1), self.b(x).squeeze(-1)
        if COMBINE == "logsumexp":
            total = torch.logsumexp(torch.stack([a, b], dim=-1), dim=-1)
        elif COMBINE == "written_out":
            total = torch.log(torch.exp(b) + torch.exp(a))
        else:
            total = a + b
        return {"a": a, "b": b, "total": total}


def build_model():
    return Counts()


def example_batch(batch_size, seed):
    return {"x": torch.randn(batch_size, 4, generator=torch.Generator().manual_seed(seed))}


def loss_terms(model, batch, outputs, step):
    return {"fit": outputs["total"].pow(2).mean()}
