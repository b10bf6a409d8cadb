"""`alignguard init` sizes its measurement batch from the model's counted forward FLOPs (issue 20):
a costly model is measured on a smaller batch, which the starter names in `entry_points`, so that
`alignguard check` on the starter measures what init measured; a cheap one keeps the defaults."""

from __future__ import annotations

import pytest
import torch

from alignguard.spec.loader import load_spec
from alignguard.spec.starter import FORWARD_FLOP_BUDGET, SMALLEST_BATCH, measurement_batch_size
from tests.reports.conftest import HERE

# 8 positions x Linear(256, 4096) per row: 2 * 8 * (256 * 4096 + 4096 * 8) = 17.3 MFLOP a row; 32 rows (0.55
# GFLOP) fit the 2 GFLOP budget, so the test lowers the budget and the file stays cheap for the fast suite
COSTLY = '''
import torch
import torch.nn.functional as F
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(256, 4096), nn.ReLU(), nn.Linear(4096, 8))
        self.head = nn.Linear(8, 1)

    def forward(self, x):
        h = self.encoder(x).mean(dim=1)
        return {"h": h, "logit": self.head(h).squeeze(-1)}


def build_model():
    return Net()


def example_batch(batch_size, seed):
    g = torch.Generator().manual_seed(seed)
    return {"x": torch.randn(batch_size, 8, 256, generator=g), "y": (torch.arange(batch_size) % 2).float()}


def loss_terms(model, batch, outputs, step):
    l2 = sum(p.pow(2).sum() for n, p in model.named_parameters() if n.endswith("weight"))
    return {"bce": F.binary_cross_entropy_with_logits(outputs["logit"], batch["y"]), "l2": 1e-4 * l2}
'''
COSTLY_FLOPS_PER_ROW = 2 * 8 * (256 * 4096 + 4096 * 8) + 2 * 8  # the two encoder products and the head


@pytest.mark.parametrize("flops, expected", [
    (1.21e9, 4), (6.7e8, 4), (1.1e9, 4),  # the 12-layer transformer, ResNet-50 layout at 64 px, DeepSEA
    (1.14e6, 32), (1e3, 32),  # CMDN, the zoo's largest is ~1 MFLOP a row
    (FORWARD_FLOP_BUDGET / 32, 32), (FORWARD_FLOP_BUDGET / 31, 16), (FORWARD_FLOP_BUDGET / 9, 8),
    (1e15, SMALLEST_BATCH), (None, 32), (0.0, 32)])
def test_the_batch_halves_while_one_forward_passes_the_budget(flops, expected):
    assert measurement_batch_size(flops, 32) == expected


def test_a_default_below_the_smallest_batch_is_kept():
    assert measurement_batch_size(1e12, 2) == 2


def test_the_forward_is_counted_and_the_model_left_as_it_was(tmp_path):
    from alignguard.modelfile.cost import forward_flops_per_row
    from alignguard.modelfile.loader import load_model_file

    (tmp_path / "costly.py").write_text(COSTLY)
    model_file = load_model_file(tmp_path / "costly.py")
    model = model_file.build()
    model.encoder.train(False)  # a mixed train/eval state must come back as it was
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    assert forward_flops_per_row(model_file, model) == COSTLY_FLOPS_PER_ROW
    assert model.training and not model.encoder.training and model.head.training
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_a_forward_that_cannot_run_two_rows_is_not_counted(tmp_path):
    from alignguard.modelfile.cost import forward_flops_per_row
    from alignguard.modelfile.loader import load_model_file

    (tmp_path / "picky.py").write_text(COSTLY.replace("def example_batch(batch_size, seed):",
                                                      "def example_batch(batch_size, seed):\n"
                                                      "    assert batch_size > 2, 'needs pairs of pairs'"))
    model_file = load_model_file(tmp_path / "picky.py")
    assert forward_flops_per_row(model_file, model_file.build()) is None


def test_a_costly_model_is_measured_on_the_batch_its_starter_names_and_check_agrees(tmp_path, monkeypatch):
    """The budget is lowered so that a model cheap enough for the fast suite counts as costly: 17.3
    MFLOP a row, 4x that per forward is over 40 MFLOP, so the batch halves from 32 down to 4."""
    from alignguard import api
    from alignguard.spec import starter

    monkeypatch.setattr(starter, "FORWARD_FLOP_BUDGET", 40e6)
    model = tmp_path / "costly.py"
    model.write_text(COSTLY)
    survey, text = api.infer_starter_spec(model)
    assert survey.batch_size == 4 and survey.flops_per_row == COSTLY_FLOPS_PER_ROW
    assert "entry_points: {batch_size: 4}" in text
    assert "One forward costs 0.0173 GFLOP a row (counted): batches of 32 would exceed 0.04 GFLOP a forward" in text
    assert "measured over 3 batches of 4" in text
    (tmp_path / "starter.yaml").write_text(text)
    spec = load_spec(tmp_path / "starter.yaml")
    assert spec.entry_points.batch_size == 4
    report = api.run_check(spec, model)
    assert report.exit_code() == 0, [r.found for r in report.findings()]
    shares = {r.element: r.details["terms"] for r in report.results if r.check_id == "loss.share"}
    measured = shares["loss bce"]
    for name, loss in survey.losses.items():  # the check's shares are init's: same batches, same rows
        assert measured[name]["share"] == pytest.approx(loss.share, rel=1e-6, abs=1e-9)


def test_a_cheap_model_keeps_the_defaults(cli, workspace):
    result = cli("init", "model.py", "-o", "starter.yaml")
    assert result.exit_code == 0, result.output
    text = (workspace / "starter.yaml").read_text()
    assert "entry_points" not in text and "batches of 32" in text
    assert load_spec(workspace / "starter.yaml").entry_points.batch_size == 32


@pytest.mark.slow
def test_the_large_transformer_gets_the_smallest_batch(tmp_path):
    import importlib.util

    path = HERE.parents[1] / "benchmarks" / "large_models.py"
    spec = importlib.util.spec_from_file_location("bench_large_for_init", path)
    large = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(large)
    _, model = large.write_case(tmp_path, "transformer", large.TRANSFORMER.format(tokens=64), 4)
    from alignguard import api

    survey, text = api.infer_starter_spec(model)
    assert survey.batch_size == SMALLEST_BATCH and "entry_points: {batch_size: 4}" in text
