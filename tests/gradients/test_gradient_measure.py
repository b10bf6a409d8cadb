"""The measurement primitives: per-term statuses, shares/cosines/cancellation, one forward per batch."""

import pytest
import torch

from alignguard.gradients import (
    LossTermTypeError,
    gradient_stats,
    measure_steps,
    term_gradients,
    trainable_parameters,
)


@pytest.fixture
def linear():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    return model, model(torch.randn(8, 3)).squeeze(-1), [p for _, p in trainable_parameters(model)]


def test_each_dead_term_gets_its_own_status(linear):
    model, out, params = linear
    frozen = torch.nn.Parameter(torch.ones(()), requires_grad=True)
    terms = {
        "alive": out.pow(2).mean(),
        "detached": out.detach().mean(),
        "fresh": torch.tensor(out.mean().item()),
        "unreached": frozen * 2.0,  # has a grad_fn, but on no parameter we measure
        "zero_weight": 0.0 * out.mean(),
        "zero_gradient": 1.0 + 0.0 * out.mean(),
        "nan_value": out.mean() * float("nan"),
        "inf_gradient": torch.sqrt(out * 0.0).sum(),  # finite value 0, gradient inf at 0
    }
    got = term_gradients(terms, params).status
    assert got == {"alive": "alive", "detached": "detached", "fresh": "detached", "unreached": "unreached",
                   "zero_weight": "zero_value", "zero_gradient": "zero_gradient", "nan_value": "nonfinite",
                   "inf_gradient": "nonfinite"}


def test_non_scalar_term_is_rejected_by_name(linear):
    _, out, params = linear
    with pytest.raises(LossTermTypeError, match="'per_example'.*shape \\(8,\\)"):
        term_gradients({"per_example": out.pow(2)}, params)
    with pytest.raises(LossTermTypeError, match="a float"):
        term_gradients({"logged": 0.5}, params)


def test_opposite_terms_have_cosine_minus_one_and_cancel(linear):
    _, out, params = linear
    energy = out.pow(2).mean()
    stats = term_gradients({"orth": energy, "domain": -0.98 * energy}, params).stats()
    assert stats.cosine("orth", "domain") == pytest.approx(-1.0, abs=1e-6)
    assert stats.net_ratio == pytest.approx(0.02 / 1.98, rel=1e-4)
    assert stats.shares["orth"] == pytest.approx(1 / 0.02, rel=1e-3)  # pushes 50x the net step
    assert stats.shares["domain"] < 0  # pushes against the total


def test_shares_sum_to_one_and_match_the_definition():
    grads = torch.randn(4, 50, generator=torch.Generator().manual_seed(1))
    stats = gradient_stats(list("abcd"), grads)
    total = grads.double().sum(0)
    assert sum(stats.shares.values()) == pytest.approx(1.0)
    for i, name in enumerate("abcd"):
        assert stats.shares[name] == pytest.approx(float(grads[i].double() @ total / total.dot(total)))
        assert stats.norm_ratios[name] == pytest.approx(float(grads[i].double().norm() / total.norm()))
    assert stats.net_ratio == pytest.approx(float(total.norm() / grads.double().norm(dim=1).sum()))
    table = stats.table()
    assert "share" in table and "cos a" in table and "net/sum" in table
    assert set(stats.as_dict()["terms"]) == set("abcd")


def test_zero_gradients_leave_shares_and_cosines_undefined():
    stats = gradient_stats(["a", "b"], torch.zeros(2, 5))
    assert stats.shares == {"a": None, "b": None}
    assert stats.cosine("a", "b") is None and stats.net_ratio is None


def test_one_forward_per_batch_for_any_number_of_steps_and_state_restored():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Dropout(0.5), torch.nn.Linear(4, 1))
    model.eval()
    forwards = []
    batches = [{"x": torch.randn(6, 3)} for _ in range(3)]

    def run_forward(batch):
        forwards.append(model.training)
        return model(batch["x"]).squeeze(-1)

    def terms_at(batch, out, step):
        return {"a": out.pow(2).mean(), "b": (0.0 if step == 0 else 1.0) * out.mean()}

    rng = torch.get_rng_state()
    steps = measure_steps(model, batches, run_forward, terms_at, [0, 5, 9], seeds=[1, 2, 3])
    assert forwards == [True, True, True]  # train mode, once per batch
    assert not model.training and torch.equal(torch.get_rng_state(), rng)
    assert steps[0].status("b") == "zero_value" and steps[5].status("b") == "alive"
    assert steps[5].batches == 3
    again = measure_steps(model, batches, run_forward, terms_at, [5], seeds=[1, 2, 3])
    assert torch.equal(again[5].mean_grad("a"), steps[5].mean_grad("a"))  # seeded: dropout reproducible
    norms = steps[5].param_norms("a")
    assert list(norms) == [n for n, _ in model.named_parameters()] and all(v > 0 for v in norms.values())


def test_nonfinite_in_one_batch_wins_and_is_left_out_of_the_stats():
    model = torch.nn.Linear(2, 1)
    batches = [{"x": torch.ones(2, 2)}, {"x": torch.full((2, 2), float("nan"))}]
    steps = measure_steps(model, batches, lambda b: model(b["x"]), lambda b, o, s: {"a": o.mean(), "b": 2 * model.bias.sum()}, [0])
    assert steps[0].status("a") == "nonfinite" and steps[0].batches_with("a", "nonfinite") == [1]
    assert steps[0].stats().names == ["b"]


class _Reverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -grad


def test_batched_and_one_by_one_gradients_agree_through_a_custom_backward():
    torch.manual_seed(0)
    encoder, head = torch.nn.Linear(4, 3), torch.nn.Linear(3, 2)
    params = [*encoder.parameters(), *head.parameters()]
    z = encoder(torch.randn(6, 4))
    terms = {"task": z.pow(2).mean(), "domain": head(_Reverse.apply(z)).pow(2).mean(), "zero": 0.0 * z.sum()}
    batched, single = term_gradients(terms, params, batched=True), term_gradients(terms, params, batched=False)
    assert batched.status == single.status == {"task": "alive", "domain": "alive", "zero": "zero_value"}
    assert torch.allclose(batched.grads, single.grads, atol=1e-6)
    # the reversal is seen: the domain term pushes the encoder against a plain (unreversed) copy
    plain = term_gradients({"domain": head(z).pow(2).mean()}, params, batched=False)
    assert torch.allclose(single.grads[1, :15], -plain.grads[0, :15], atol=1e-6)


def test_gradients_summed_into_running_sums_equal_the_rows_and_keep_no_row():
    """measure_steps adds each term's gradient into its sum piece by piece (issue 20: no K flat rows
    per batch); the sums, statuses and values are those of the per-row path."""
    import torch

    from alignguard.gradients.measure import term_gradients

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    frozen = torch.nn.Linear(3, 1)
    params = list(net.parameters())
    sums: dict = {}
    expected: dict = {}
    for seed in (1, 2):
        x = torch.randn(8, 3, generator=torch.Generator().manual_seed(seed))
        out = net(x)
        terms = {"fit": out.pow(2).mean(), "reg": 1e-3 * net[0].weight.pow(2).sum(),
                 "dead": frozen(x).sum().detach(), "zero": 0.0 * out.sum(), "inf": out.sum() * float("inf")}
        rows = term_gradients(terms, params)
        for name, row in rows.rows.items():
            expected[name] = expected.get(name, 0) + row
        streamed = term_gradients(terms, params, into=sums)
        assert streamed.status == rows.status and streamed.values == rows.values and not streamed.rows
    assert sums.pop("inf") is None  # a non-finite term keeps no sum (it is judged non-finite)
    assert set(sums) == {"fit", "reg"} and set(expected) == {"fit", "reg"}
    for name in sums:  # one sum per parameter, streamed as the backward pass produced it
        assert len(sums[name]) == len(params)
        flat = torch.cat([s.reshape(-1) if s is not None else torch.zeros(p.numel()) for s, p in zip(sums[name], params)])
        assert torch.equal(flat, expected[name])
    assert sums["reg"][1:] == [None, None, None]  # reg reaches net[0].weight alone: no sum elsewhere
    assert all(p.grad is None for p in params)  # the stream leaves no .grad behind


def test_released_measurement_keeps_every_statistic_and_frees_the_sums():
    """The checks' measurement frees its per-term sums once the per-parameter dot-product blocks are
    computed (issue 20: K model-sized vectors less through loss.descent and the probes); every
    statistic it answers afterwards is the one the sums gave."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2))
    batches = [{"x": torch.randn(7, 3)} for _ in range(3)]

    def terms_at(batch, out, step):
        return {"fit": out.pow(2).mean(), "pull": -0.5 * out[:, 0].mean(), "reg": 1e-2 * model[0].weight.pow(2).sum()}

    def run(release):
        return measure_steps(model, batches, lambda b: model(b["x"]), terms_at, [0], seeds=[0, 1, 2], release=release)[0]

    kept, released = run(False), run(True)
    assert released.released and all(v is None for v in released.grad_sum.values())
    for name in kept.names:
        mean = kept.mean_grad(name)
        assert released.grad_norm(name) == pytest.approx(float(mean.norm()), rel=1e-12)
        pieces = torch.split(mean, kept.param_sizes)
        expected = {p: float(g.norm()) for p, g in zip(kept.param_names, pieces)}
        assert released.param_norms(name) == pytest.approx(expected, rel=1e-12)
    means = torch.stack([kept.mean_grad(n) for n in kept.names])
    gram = means @ means.T
    stats = released.stats()
    total = means.sum(dim=0)
    for i, name in enumerate(kept.names):
        assert stats.shares[name] == pytest.approx(float(means[i] @ total / (total @ total)), rel=1e-10)
    assert stats.cosine("fit", "pull") == pytest.approx(float(gram[0, 1] / (gram[0, 0] * gram[1, 1]).sqrt()), rel=1e-10)
    with pytest.raises(RuntimeError, match="released"):
        released.mean_grad("fit")


def test_streamed_measurement_restores_grads_and_buffers_and_never_aliases():
    """The stream clears and restores `.grad` around each backward; a gradient that autograd routes
    to two parameters through one tensor (an addition) is summed for each separately; BatchNorm
    statistics are as before the measurement."""
    torch.manual_seed(0)
    a, b = torch.nn.Parameter(torch.randn(4)), torch.nn.Parameter(torch.randn(4))
    norm = torch.nn.BatchNorm1d(4)
    model = torch.nn.Module()
    model.a, model.b, model.norm = a, b, norm
    a.grad = torch.full((4,), 7.0)
    buffers = {k: v.clone() for k, v in norm.state_dict().items()}
    batches = [{"x": torch.randn(6, 4)} for _ in range(2)]

    def terms_at(batch, out, step):
        return {"sum": ((a + b) * out.pow(2)).mean(), "a": a.pow(2).sum()}

    steps = measure_steps(model, batches, lambda batch: norm(batch["x"]), terms_at, [0], seeds=[0, 1])
    assert torch.equal(a.grad, torch.full((4,), 7.0)) and b.grad is None
    assert all(torch.equal(v, norm.state_dict()[k]) for k, v in buffers.items())
    with torch.no_grad():  # d sum / da_j = d sum / db_j = mean over rows of out_j² / 4, summed over the batches
        expected = sum(torch.nn.functional.batch_norm(batch["x"], None, None, training=True).pow(2).mean(dim=0) / 4
                       for batch in batches)
    into_a, into_b = steps[0].grad_sum["sum"][:2]
    assert into_a.data_ptr() != into_b.data_ptr()
    assert torch.allclose(into_a, expected, atol=1e-6) and torch.allclose(into_b, expected, atol=1e-6)


def test_a_term_non_finite_in_a_later_batch_keeps_no_sum():
    """A finite value whose gradient is not finite in batch 1 only (sqrt at 0): the term is judged
    non-finite and keeps no sum (its batch-0 gradient is not reported as its reach either)."""
    model = torch.nn.Linear(2, 1)
    batches = [{"x": torch.ones(2, 2), "bad": False}, {"x": torch.ones(2, 2), "bad": True}]

    def terms_at(batch, out, step):
        kink = (out.mean() - out.mean().detach()).abs().sqrt() if batch["bad"] else 0.0
        return {"a": out.mean() + kink, "b": 2 * model.bias.sum()}

    step = measure_steps(model, batches, lambda b: model(b["x"]), terms_at, [0])[0]
    assert step.statuses["a"] == ["alive", "nonfinite"] and step.status("a") == "nonfinite"
    assert step.grad_sum["a"] is None and step.param_norms("a") == {"weight": 0.0, "bias": 0.0}
    assert step.stats().names == ["b"]
