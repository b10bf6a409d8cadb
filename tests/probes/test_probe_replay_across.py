"""Replaying an x-only call across runs that change only other inputs (issue 20: modulation's contexts,
swap's shuffled c): confirmed once against a real run, refused for good when state flows from c into it."""

import torch
from torch import nn

from alignguard.checks.context import CheckContext
from alignguard.checks.probes.modulation import MAX_CONTEXTS, MAX_EXAMPLES, ModulationProbeCheck
from alignguard.checks.probes.support import probe_inputs, probe_seed, runner
from alignguard.checks.probes.swap import SwapProbeCheck
from alignguard.modelfile.loader import load_model_file
from alignguard.probes.contexts import draw_contexts
from alignguard.probes.runtime import SymbolRunner
from alignguard.spec.model import SymbolBinding
from probe_helpers import PROBE_MODEL, spec_with


class Net(nn.Module):
    """logit = u(x)·softplus(m(c)) + r(c). `film`: the context's gain is left on the model before the encoder
    runs and the encoder reads it (state, not an argument). `sets`: the encoder's output is x's alone, but it
    leaves a value scaled by that gain, which forward adds to the logit."""

    def __init__(self, film: bool = False, sets: bool = False):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))
        self.context = nn.Linear(2, 2)
        self.film, self.sets, self.gain, self.left, self.encoder_runs = film, sets, torch.ones(()), 0.0, 0
        plain = self.encoder.forward

        def counted(*args):
            self.encoder_runs += 1
            out = plain(*args)
            self.left = out.mean() * self.gain
            return out * (self.gain if self.film else 1.0)
        self.encoder.forward = counted  # an instance forward: a replayed call does not reach it

    def forward(self, x, c):
        m, r = self.context(c).unbind(-1)
        self.gain = torch.sigmoid(m).mean()
        u = self.encoder(x).squeeze(-1)
        return {"logit": u * nn.functional.softplus(m) + r + (self.left if self.sets else 0.0), "U": u}


BINDINGS = {"U": SymbolBinding(output="U"), "logit": SymbolBinding(output="logit")}


def fresh(film=False, sets=False):
    torch.manual_seed(0)
    return SymbolRunner(Net(film, sets), BINDINGS)


def contexts():
    g = torch.Generator().manual_seed(1)
    return [torch.randn(5, 2, generator=g) for _ in range(4)]


def across_contexts(**kind):
    """A runner that captured encoder(x) with c, its logits over other contexts, and a fresh runner's for each
    (runner, x, c, got, want); called under no_grad."""
    runner, x, c = fresh(**kind), torch.randn(5, 4), torch.randn(5, 2)
    runner.run({"x": x, "c": c}, observe=["logit"])  # captures encoder(x)
    got = [runner.run({"x": x, "c": other}, observe=["logit"])["logit"] for other in contexts()]
    want = [fresh(**kind).run({"x": x, "c": other}, observe=["logit"])["logit"] for other in contexts()]
    return runner, x, c, got, want


def test_a_plain_encoder_runs_twice_across_contexts_and_matches_whole_runs():
    with torch.no_grad():
        runner, _, _, got, want = across_contexts()
    assert runner.model.encoder_runs == 2  # the capture, and the real run that confirmed the crossing
    assert runner._replays.crossed and not runner._replays.cross_refused
    assert all(torch.equal(a, b) for a, b in zip(got, want))


def test_an_encoder_reading_state_set_from_c_is_never_replayed_across_contexts():
    with torch.no_grad():
        runner, x, c, got, want = across_contexts(film=True)
        runner.run({"x": x, "c": c}, observe=["logit"])  # a new capture: still not replayed across
        runs = runner.model.encoder_runs
        runner.run({"x": x, "c": contexts()[0]}, observe=["logit"])
    assert runner._replays.cross_refused and runner.model.encoder_runs == runs + 1
    assert all(torch.equal(a, b) for a, b in zip(got, want))


def test_an_encoder_leaving_state_that_depends_on_c_is_never_replayed_across_contexts():
    with torch.no_grad():
        runner, _, _, got, want = across_contexts(sets=True)
    assert runner._replays.cross_refused
    assert all(torch.equal(a, b) for a, b in zip(got, want))


def test_equal_contexts_in_new_tensors_confirm_nothing():
    runner, x, c = fresh(film=True), torch.randn(5, 4), torch.randn(5, 2)
    with torch.no_grad():
        runner.run({"x": x, "c": c}, observe=["logit"])
        runner.run({"x": x, "c": c.clone()}, observe=["logit"])
    assert not runner._replays.crossed and not runner._replays.cross_refused


def test_a_grad_run_differentiating_its_own_leaf_replays_the_encoder_and_gets_the_same_gradient():
    def slope(runner, x, c, param_grads=False):
        leaves = []
        edit = lambda t: leaves.append(t.detach().clone().requires_grad_(True)) or leaves[-1]  # noqa: E731
        out = runner.run({"x": x, "c": c}, observe=["logit"], edits={"U": edit}, param_grads=param_grads)["logit"]
        return torch.autograd.grad(out.sum(), leaves[-1])[0]

    runner, x, c = fresh(), torch.randn(5, 4), torch.randn(5, 2)
    with torch.no_grad():
        runner.run({"x": x, "c": c}, observe=["logit"])
    got = [slope(runner, x, other) for other in contexts()]
    assert runner.model.encoder_runs == 2
    want = [slope(fresh(), x, other) for other in contexts()]
    assert all(torch.equal(a, b) for a, b in zip(got, want))
    slope(runner, x, contexts()[0], param_grads=True)  # gradients reach the parameters: the encoder runs
    assert runner.model.encoder_runs == 3


def _context(builder: str) -> CheckContext:
    spec = spec_with(**{"entry_points.build_model": builder})
    model_file = load_model_file(PROBE_MODEL, spec.entry_points)
    return CheckContext(spec=spec, model_file=model_file, model=model_file.build())


def _one_run_slopes(context) -> torch.Tensor:
    """The slopes as one run of all n·k (example, context) pairs (the probe before it ran per context)."""
    probe, inputs = context.spec.probes.modulation, probe_inputs(context)
    c = inputs[probe.context]
    n, k = min(MAX_EXAMPLES, len(c)), MAX_CONTEXTS
    contexts = draw_contexts(c, k, 3.0, torch.Generator().manual_seed(probe_seed(context)))
    pairs = {key: contexts.repeat(n, 1) if key == probe.context else value[:n].repeat_interleave(k, dim=0)
             for key, value in inputs.items()}
    leaves = []
    edit = lambda t: leaves.append(t.detach().clone().requires_grad_(True)) or leaves[-1]  # noqa: E731
    out = runner(context).run(pairs, seed=probe_seed(context), observe=[probe.output],
                              edits={probe.energy: edit}, param_grads=False)[probe.output]
    (grad,) = torch.autograd.grad(out.sum(), leaves[-1])
    return grad.reshape(n, k).double()


def _counting(context) -> list[int]:
    """Counts the encoder's real runs from now on (the example batch's sites located first, as the checks
    before a probe leave them: locating records a whole forward)."""
    runner(context).site("U_I", probe_inputs(context), train=False, seed=probe_seed(context))
    runs, encoder = [0], context.model.encoder
    plain = encoder.forward

    def counted(*args):
        runs[0] += 1
        return plain(*args)
    encoder.forward = counted
    return runs


def test_modulation_per_context_runs_give_the_one_run_slopes_with_the_encoder_run_twice():
    for builder, encoder_runs in (("build_model", 2), ("build_state_film", 1 + 1 + MAX_CONTEXTS)):
        context = _context(builder)
        runs = _counting(context)
        (result,) = ModulationProbeCheck().run(context)
        want = _one_run_slopes(_context(builder))
        assert result.status.value == "pass", result.found
        assert torch.allclose(torch.tensor(result.details["slopes"], dtype=torch.float64), want, rtol=1e-6, atol=1e-7)
        assert runs[0] == encoder_runs, builder


def test_swap_still_sees_c_reach_z_through_state_set_from_c():
    context = _context("build_state_film")
    value, gradient = SwapProbeCheck().run(context)
    assert value.failed and min(value.details["max_abs_diff"].values()) > 1e-3
    assert gradient.failed
    plain = _context("build_model")
    runs = _counting(plain)
    value, gradient = SwapProbeCheck().run(plain)
    assert value.status.value == "pass" and gradient.status.value == "pass"
    assert runs[0] == 3  # base (captured), the permuted run's real confirmation, the train-mode gradient run
    # (the eval-mode gradient run replays the encoder: c is not its argument and the crossing was confirmed)
