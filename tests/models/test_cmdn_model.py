"""CMDN reference model: the structure the spec binds, its noise, modulator and loss terms."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

EXPECTED_OUTPUTS = {"logit", "z_I", "mu", "logvar", "U_I", "M", "B", "T"}


@pytest.fixture
def model(cmdn):
    torch.manual_seed(0)
    return cmdn.build_model()


@pytest.fixture(scope="module")
def batch(cmdn):
    return cmdn.example_batch(64, seed=11)


def forward(model, batch):
    return model(x=batch["x"], c=batch["c"])


def test_submodules_the_spec_binds(model, cmdn):
    names = dict(model.named_children())
    assert set(names) == {"encoder", "bottleneck", "energy", "modulator"}
    assert isinstance(model.bottleneck.mu_head, torch.nn.Linear)
    assert isinstance(model.bottleneck.logvar_head, torch.nn.Linear)
    assert callable(model.bottleneck.kl_divergence)


def test_forward_outputs_shapes_and_dtypes(model, batch):
    outputs = forward(model, batch)
    assert EXPECTED_OUTPUTS <= set(outputs)
    size = batch["y"].shape[0]
    for key in ("logit", "U_I", "M", "B", "T"):
        assert outputs[key].shape == (size,), key
    for key in ("z_I", "mu", "logvar"):
        assert outputs[key].shape == (size, 16), key
    assert all(value.dtype == torch.float32 for value in outputs.values())
    expected = (outputs["M"] * outputs["U_I"] + outputs["B"]) / outputs["T"]
    torch.testing.assert_close(outputs["logit"], expected)


def test_modulator_returns_m_b_t_per_example(model, batch):
    M, B, T = model.modulator(batch["c"])
    assert M.shape == B.shape == T.shape == (64,)


@pytest.mark.parametrize("scale", [0.0, 1.0, 1e3, -1e3])
def test_m_and_t_positive_for_extreme_contexts(model, scale):
    torch.manual_seed(1)
    c = scale * torch.randn(256, 9).sign() if scale else torch.zeros(256, 9)
    M, B, T = model.modulator(c)
    assert torch.isfinite(M).all() and torch.isfinite(B).all() and torch.isfinite(T).all()
    assert (M > 0).all()
    assert (T >= model.modulator.t_min).all()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=9, max_size=9))
def test_m_and_t_positive_for_arbitrary_contexts(cmdn, values):
    torch.manual_seed(0)
    modulator = cmdn.build_model().modulator
    M, _, T = modulator(torch.tensor([values]))
    assert M.item() > 0 and T.item() >= modulator.t_min


def test_m_and_t_stay_positive_with_extreme_weights(model):
    with torch.no_grad():
        for parameter in model.modulator.parameters():
            parameter.copy_(torch.randn_like(parameter) * 50)
    M, _, T = model.modulator(1e3 * torch.randn(512, 9))
    assert (M > 0).all() and (T > 0).all()


def test_accessibility_reaches_temperature(model, batch):
    c = batch["c"].clone().requires_grad_(True)
    _, _, T = model.modulator(c)
    (grad,) = torch.autograd.grad(T.sum(), c)
    assert grad[:, -1].abs().sum() > 0  # T can learn to fall as accessibility rises


def test_training_noise_is_fresh_on_every_pass(model, batch):
    model.train()
    first, second = forward(model, batch), forward(model, batch)
    torch.testing.assert_close(first["mu"], second["mu"])
    assert not torch.allclose(first["z_I"], second["z_I"])
    assert not torch.allclose(first["z_I"], first["mu"])


def test_eval_is_deterministic_and_uses_the_mean(model, batch):
    model.eval()
    with torch.no_grad():
        first, second = forward(model, batch), forward(model, batch)
    assert torch.equal(first["z_I"], first["mu"])
    assert torch.equal(first["logit"], second["logit"])


def test_z_i_never_sees_the_context(model, batch):
    model.eval()
    c = batch["c"].clone().requires_grad_(True)
    outputs = model(batch["x"], c)
    shuffled = model(batch["x"], c[torch.randperm(c.shape[0])])
    assert torch.equal(outputs["z_I"], shuffled["z_I"])
    assert torch.autograd.grad(outputs["mu"].sum(), c, allow_unused=True)[0] is None


def test_slope_in_energy_depends_on_context(model, batch):
    """Multiplicative modulation: d logit / d U_I = M / T varies with c (the additive head's does not)."""
    outputs = forward(model, batch)
    slope = outputs["M"] / outputs["T"]
    assert slope.std() > 0


def test_beta_schedule(cmdn):
    schedule = cmdn.BETA_SCHEDULE
    assert schedule(0) == 0.0 and schedule(schedule.start_step) == 0.0
    assert schedule(schedule.start_step + 1) > 0.0
    assert schedule(schedule.end_step) == schedule.beta_max == schedule(10 * schedule.end_step)
    values = [schedule(step) for step in range(0, 1200, 50)]
    assert values == sorted(values)


def test_kl_term_is_exactly_zero_at_step_zero_and_positive_after_warm_up(model, batch, cmdn):
    outputs = forward(model, batch)
    assert cmdn.loss_terms(model, batch, outputs, step=0)["kl"].item() == 0.0
    late = cmdn.loss_terms(model, batch, outputs, step=cmdn.BETA_SCHEDULE.end_step)["kl"]
    kl = model.bottleneck.kl_divergence(outputs["mu"], outputs["logvar"])
    assert late.item() > 0
    torch.testing.assert_close(late, cmdn.BETA_SCHEDULE.beta_max * kl)


def test_kl_divergence_is_zero_only_at_the_prior(cmdn):
    kl = cmdn.InformationBottleneck.kl_divergence
    assert kl(torch.zeros(4, 3), torch.zeros(4, 3)).item() == 0.0
    assert kl(torch.ones(4, 3), torch.zeros(4, 3)).item() == pytest.approx(1.5)


def test_loss_terms_are_finite_and_each_has_gradient(model, batch, cmdn):
    outputs = forward(model, batch)
    terms = cmdn.loss_terms(model, batch, outputs, step=cmdn.BETA_SCHEDULE.end_step)
    assert set(terms) == {"bce", "kl", "rank", "decorr"}  # no "swap": invariance is structural
    parameters = [p for p in model.parameters() if p.requires_grad]
    for name, term in terms.items():
        assert term.dim() == 0 and torch.isfinite(term), name
        grads = torch.autograd.grad(term, parameters, retain_graph=True, allow_unused=True)
        assert any(g is not None and g.abs().sum() > 0 for g in grads), name
    total = sum(terms.values())
    grads = torch.autograd.grad(total, parameters, allow_unused=True)
    dead = [n for (n, _), g in zip(model.named_parameters(), grads) if g is None or g.abs().sum() == 0]
    assert not dead  # every parameter is shaped by the objective


def test_rank_loss_prefers_positives_above_negatives(cmdn):
    y = torch.tensor([1.0, 0.0, 0.0, 1.0])
    good, bad = torch.tensor([3.0, -1.0, -2.0, 2.0]), torch.tensor([-3.0, 1.0, 2.0, -2.0])
    assert cmdn.pairwise_rank_loss(good, y) < cmdn.pairwise_rank_loss(bad, y)
    logit = torch.randn(5, requires_grad=True)
    empty = cmdn.pairwise_rank_loss(logit, torch.zeros(5))  # no positive: no pair
    assert empty.item() == 0.0 and empty.requires_grad


def test_decorrelation_penalty(cmdn):
    a = torch.randn(200)
    assert cmdn.squared_correlation(a, 2 * a + 1).item() == pytest.approx(1.0, abs=0.02)
    assert cmdn.squared_correlation(a, torch.randn(200)).item() < 0.05


def test_decorrelation_gradient_stays_bounded_while_m_is_flat(cmdn):
    """A nearly constant M (the modulator's start) has nothing to decorrelate: no 1/std blow-up."""
    u = torch.randn(200)
    flat = (1.0 + 1e-4 * (u + 0.1 * torch.randn(200))).requires_grad_(True)
    penalty = cmdn.squared_correlation(flat, u)
    (grad,) = torch.autograd.grad(penalty, flat)
    assert penalty.item() < 1e-5 and grad.abs().max() < 1e-2


def test_a_few_optimiser_steps_decrease_the_loss(cmdn, batch):
    torch.manual_seed(0)
    model = cmdn.build_model()
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    step = cmdn.BETA_SCHEDULE.end_step  # every term active

    def objective():
        return sum(cmdn.loss_terms(model, batch, forward(model, batch), step).values())

    model.eval()
    with torch.no_grad():
        before = objective().item()
    model.train()
    for _ in range(30):
        optimiser.zero_grad()
        objective().backward()
        optimiser.step()
    model.eval()
    with torch.no_grad():
        after = objective().item()
    assert after < 0.8 * before, (before, after)


def test_curriculum_names_real_modules_and_covers_every_parameter(model, cmdn):
    stages = list(cmdn.CURRICULUM)
    assert stages == ["invariant", "modulator", "joint"]
    assert sum(stage["fraction"] for stage in cmdn.CURRICULUM.values()) == pytest.approx(1.0)
    modules = dict(model.named_modules())
    for stage in cmdn.CURRICULUM.values():
        assert all(prefix in modules for prefix in stage["train"])
    joint = cmdn.CURRICULUM["joint"]["train"]
    assert all(any(name.startswith(p + ".") for p in joint) for name, _ in model.named_parameters())
    assert "modulator" not in cmdn.CURRICULUM["invariant"]["train"]


def test_loads_through_alignguard_loader():
    from alignguard.modelfile.loader import load_model_file

    model_file = load_model_file(Path(__file__).resolve().parents[2] / "models" / "cmdn.py")
    model = model_file.build()
    batch = model_file.batch(model, 8, 0)
    assert set(model(batch["x"], batch["c"])) >= EXPECTED_OUTPUTS


@pytest.mark.slow
def test_the_cell_lines_own_shift_is_bounded_and_the_accessibility_effect_shared(model, batch):
    # B = b_access(a) + bounded b_cell(descriptor): however far an unseen descriptor lies from the training
    # cell lines, and however large the weights grow, its own shift stays within B_RANGE logit units
    shift = model.modulator.shift
    with torch.no_grad():
        for parameter in shift.cell.parameters():
            parameter.mul_(50.0)
        c = batch["c"].clone()
        c[:, :-1] = 1000.0 * torch.randn_like(c[:, :-1])
        _, B, _ = model.modulator(c)
        own = B - shift.access(c[:, -1:]).squeeze(-1)
    assert own.abs().max() <= shift.B_RANGE + 1e-5
    assert own.abs().max() > 0.5 * shift.B_RANGE  # the bound is reached, not a dead cell part
    # two cell lines with the same accessibility differ only by their bounded own shifts
    same = c.clone()
    same[:, -1] = 0.3
    with torch.no_grad():
        _, B, _ = model.modulator(same)
    assert (B.max() - B.min()) <= 2 * shift.B_RANGE + 1e-5
