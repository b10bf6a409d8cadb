"""The legacy additive energy model: faithful structure, a real gradient-reversal layer, and it trains."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

EXPECTED_OUTPUTS = {"logit", "z_I", "z_E", "U_I", "R_E", "T", "domain_pred"}


@pytest.fixture
def model(legacy):
    torch.manual_seed(0)
    return legacy.build_model()


@pytest.fixture(scope="module")
def batch(legacy):
    return legacy.example_batch(64, seed=4)


def test_submodules(model, legacy):
    assert {name for name, _ in model.named_children()} == {
        "encoder", "env_encoder", "energy_head", "resistance_head", "domain_head"
    }
    assert isinstance(model.log_temperature, torch.nn.Parameter) and model.log_temperature.dim() == 0
    assert isinstance(model.domain_head.grl, legacy.GradientReversal)


def test_forward_outputs(model, batch):
    outputs = model(x=batch["x"], c=batch["c"])
    assert set(outputs) == EXPECTED_OUTPUTS
    size = batch["y"].shape[0]
    for key in ("logit", "U_I", "R_E", "T"):
        assert outputs[key].shape == (size,) and outputs[key].dtype == torch.float32, key
    assert outputs["domain_pred"].shape == (size, 8)
    assert (outputs["R_E"] >= 0).all()
    assert torch.equal(outputs["T"], model.log_temperature.exp().expand(size))  # one shared T
    torch.testing.assert_close(outputs["logit"], (outputs["U_I"] - outputs["R_E"]) / outputs["T"])


def test_deterministic_even_in_training_mode(model, batch):
    model.train()
    first, second = model(batch["x"], batch["c"]), model(batch["x"], batch["c"])
    assert torch.equal(first["z_I"], second["z_I"])  # no bottleneck noise, as in the seed


def test_loss_terms(model, batch, legacy):
    outputs = model(batch["x"], batch["c"])
    terms = legacy.loss_terms(model, batch, outputs, step=0)
    assert set(terms) == {"ep", "orth", "domain", "sparse"}
    parameters = list(model.parameters())
    for name, term in terms.items():
        assert term.dim() == 0 and torch.isfinite(term) and term.item() > 0, name
        grads = torch.autograd.grad(term, parameters, retain_graph=True, allow_unused=True)
        assert any(g is not None and g.abs().sum() > 0 for g in grads), name


def test_orthogonality_loss(legacy):
    z = torch.randn(128, 8)
    assert legacy.orthogonality_loss(z, z) > 10 * legacy.orthogonality_loss(z, torch.randn(128, 8))


def _encoder_grad(model, loss):
    model.zero_grad()
    loss.backward()
    return torch.cat([p.grad.flatten() for p in model.encoder.parameters()])


@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_gradient_reversal_really_reverses_the_encoder_gradient(model, batch, legacy, alpha):
    model.domain_head.grl.alpha = alpha
    descriptor = batch["c"][:, :8]
    reversed_loss = legacy.loss_terms(model, batch, model(batch["x"], batch["c"]), step=0)["domain"]
    through_grl = _encoder_grad(model, reversed_loss)
    adversary_through_grl = [p.grad.clone() for p in model.domain_head.classifier.parameters()]

    plain_prediction = model.domain_head.classifier(model.encoder(batch["x"]))  # GRL skipped
    plain_loss = legacy.LAMBDAS["domain"] * torch.nn.functional.mse_loss(plain_prediction, descriptor)
    plain = _encoder_grad(model, plain_loss)

    assert plain.abs().sum() > 0
    torch.testing.assert_close(through_grl, -alpha * plain)
    # the adversary itself still descends its loss: only the encoder's gradient is flipped
    for flipped, straight in zip(adversary_through_grl, model.domain_head.classifier.parameters()):
        torch.testing.assert_close(flipped, straight.grad)


def test_a_few_optimiser_steps_decrease_the_loss(legacy, batch):
    torch.manual_seed(0)
    model = legacy.build_model()
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)

    def objective():
        terms = legacy.loss_terms(model, batch, model(batch["x"], batch["c"]), step=0)
        return terms["ep"], sum(terms.values())

    with torch.no_grad():
        ep_before, total_before = (t.item() for t in objective())
    for _ in range(30):
        optimiser.zero_grad()
        objective()[1].backward()
        optimiser.step()
    with torch.no_grad():
        ep_after, total_after = (t.item() for t in objective())
    assert total_after < 0.8 * total_before, (total_before, total_after)
    assert ep_after < 0.8 * ep_before, (ep_before, ep_after)


def test_loads_through_alignguard_loader():
    from alignguard.modelfile.loader import load_model_file

    model_file = load_model_file(Path(__file__).resolve().parents[2] / "models" / "legacy_energy.py")
    model = model_file.build()
    batch = model_file.batch(model, 8, 0)
    assert set(model(batch["x"], batch["c"])) == EXPECTED_OUTPUTS
