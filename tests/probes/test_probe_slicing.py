"""SymbolRunner.plan: a read-only run executes the smallest submodule call that computes its symbols
from the varied inputs, validated against the whole model, or the whole model and why."""

import torch
import torch.nn.functional as F
from torch import nn

from alignguard.probes.runtime import SymbolRunner
from alignguard.spec.model import SymbolBinding


class Modulator(nn.Module):
    def __init__(self):
        super().__init__()
        self.trunk, self.heads = nn.Linear(2, 8), nn.Linear(8, 3)

    def forward(self, c):
        m, b, t = self.heads(torch.tanh(self.trunk(c))).unbind(-1)
        return F.softplus(m), b, F.softplus(t) + 0.05


class Net(nn.Module):
    """CMDN-shaped: a costly encoder on x, a small modulator on c; `leak` makes the modulator read
    state that forward sets from x (a side channel no argument shows)."""

    def __init__(self, leak: bool = False, scaled_c: bool = False):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
        self.modulator = Modulator()
        self.leak, self.scaled_c, self.encoder_calls = leak, scaled_c, 0

    def forward(self, x, c):
        self.encoder_calls += 1
        u = self.encoder(x).squeeze(-1)
        if self.leak:
            self.modulator.heads.bias.data = u.detach().mean().expand(3).clone()
        m, b, t = self.modulator(c * 2 if self.scaled_c else c)
        return {"logit": (m * u + b) / t, "M": m, "T": t, "U": u}


BINDINGS = {"M": SymbolBinding(output="M"), "T": SymbolBinding(output="T"), "U": SymbolBinding(output="U"),
            "logit": SymbolBinding(output="logit"), "hidden": SymbolBinding(module="modulator.trunk")}


def setup(**kw):
    torch.manual_seed(0)
    return SymbolRunner(Net(**kw), BINDINGS), {"x": torch.randn(6, 4), "c": torch.randn(6, 2)}


def test_symbols_of_the_context_run_on_the_modulator_alone():
    runner, inputs = setup()
    part = runner.plan(["M", "T"], inputs, train=False, seed=0, vary=["c"])
    assert part.module == "modulator" and "sliced" in part.describe()
    other = {"x": torch.randn(6, 4), "c": torch.randn(6, 2) * 100}
    whole = runner.run(other, observe=["M", "T"])
    calls = runner.model.encoder_calls
    sliced = runner.run(other, observe=["M", "T"], vary=["c"])
    assert runner.model.encoder_calls == calls  # the encoder did not run
    assert torch.equal(sliced["M"], whole["M"]) and torch.equal(sliced["T"], whole["T"])


def test_a_module_bound_symbol_inside_the_slice_is_read_by_its_hook():
    runner, inputs = setup()
    assert runner.plan(["hidden", "M"], inputs, train=False, seed=0, vary=["c"]).module == "modulator"
    assert runner.plan(["hidden"], inputs, train=False, seed=0, vary=["c"]).module == "modulator.trunk"
    assert torch.equal(runner.run(inputs, observe=["hidden"], vary=["c"])["hidden"],
                       runner.run(inputs, observe=["hidden"])["hidden"])


def test_gradients_flow_through_the_slice():
    runner, inputs = setup()
    leaf = inputs["c"].clone().requires_grad_(True)
    value = runner.run({**inputs, "c": leaf}, observe=["M"], vary=["c"])["M"]
    (grad,) = torch.autograd.grad(value.sum(), [leaf])
    assert grad.abs().sum() > 0


def test_the_whole_model_runs_where_no_slice_serves_and_says_why():
    runner, inputs = setup()
    assert "no submodule call" in runner.plan(["logit"], inputs, train=False, seed=0, vary=["c"]).describe()
    assert "train mode" in runner.plan(["M"], inputs, train=True, seed=0, vary=["c"]).describe()
    # the encoder's output U does not read c, the input this run varies: a swap probe must run everything
    assert runner.plan(["U"], inputs, train=False, seed=0, vary=["c"]).module == ""
    computed, inputs = setup(scaled_c=True)  # the modulator takes 2c, computed in forward
    assert computed.plan(["M"], inputs, train=False, seed=0, vary=["c"]).module == ""


def test_a_slice_that_reads_state_forward_sets_is_rejected():
    runner, inputs = setup(leak=True)
    part = runner.plan(["M"], inputs, train=False, seed=0, vary=["c"])
    assert part.module == "" and "does not reproduce" in part.describe()


class Rowwise(Net):
    """From 8 rows on, forward scales c before the modulator reads it: the slice found on fewer rows
    does not compute M at 8 rows."""

    def forward(self, x, c):
        self.scaled_c = len(c) >= 8
        return super().forward(x, c)


def test_a_slice_found_on_the_example_rows_is_confirmed_not_searched_again_at_another_batch_size():
    runner, inputs = setup()
    runner.plan(["M", "T"], inputs, train=False, seed=0, vary=["c"])
    large = {k: v.repeat(3, 1) for k, v in inputs.items()}
    calls = runner.model.encoder_calls
    part = runner.plan(["M", "T"], large, train=False, seed=0, vary=["c"])
    assert part.module == "modulator"
    assert runner.model.encoder_calls == calls + 1  # the confirming whole run; no discovery recording
    assert all(key[2][0][1] == id(inputs["x"]) for key in runner._recorded)


def test_a_slice_found_at_another_batch_size_that_no_longer_computes_the_symbols_is_dropped():
    torch.manual_seed(0)
    runner = SymbolRunner(Rowwise(), BINDINGS)
    small = {"x": torch.randn(4, 4), "c": torch.randn(4, 2)}
    assert runner.plan(["M"], small, train=False, seed=0, vary=["c"]).module == "modulator"
    large = {k: v.repeat(2, 1) for k, v in small.items()}
    assert not runner.plan(["M"], large, train=False, seed=0, vary=["c"]).module
    whole = runner.run(large, observe=["M"])
    assert torch.equal(runner.run(large, observe=["M"], vary=["c"])["M"], whole["M"])
