"""Broken outside the graph: M is scaled by the accessibility read back as Python numbers (`.tolist()`),
so no traced edge joins accessibility to M."""
import torch
import torch.nn.functional as F

from parts_clean import Net, example_batch, loss_terms  # noqa: F401


class OffGraph(Net):
    def m_of(self, c):
        scale = torch.tensor([1.0 + abs(a) for a in c[:, -1].tolist()])
        return F.softplus(self.concentration(c[:, :-1])).squeeze(-1) * scale


def build_model():
    return OffGraph()
