"""SymbolRunner: reading and intervening on symbols by running the real model."""

import collections

import pytest
import torch
from torch import nn

from alignguard.probes.runtime import SymbolError, SymbolRunner
from alignguard.spec.model import SymbolBinding

Pair = collections.namedtuple("Pair", "mean scale")


class Head(nn.Module):
    def forward(self, h):
        return Pair(h.mean(-1), h.std(-1))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(3, 4), nn.Tanh())
        self.head = Head()

    def forward(self, x):
        h = self.body(x)  # the Sequential's output *is* its Tanh's output
        pair = self.head(h)
        z = pair.mean if not self.training else pair.mean + 0.1
        score = (z * 2).unsqueeze(-1).squeeze(-1)  # computed inline, by no submodule
        return {"h": h, "z": z, "score": score, "x": x, "logit": score + pair.scale}


def runner(**extra):
    bindings = {"h": SymbolBinding(output="h"), "z": SymbolBinding(output="z"), "score": SymbolBinding(output="score"),
                "x": SymbolBinding(output="x"), "logit": SymbolBinding(output="logit"),
                "scale": SymbolBinding(module="head", index=1), **extra}
    torch.manual_seed(0)
    return SymbolRunner(Net(), bindings), {"x": torch.randn(5, 3)}


def test_module_outputs_are_found_by_identity_at_the_outermost_module():
    r, inputs = runner()
    assert r.site("h", inputs, train=False, seed=0).module == "body"
    site = r.site("z", inputs, train=False, seed=0)
    assert (site.module, site.index) == ("head", 0)  # eval: z is the namedtuple's mean itself


def test_inline_results_are_edited_at_their_torch_call():
    r, inputs = runner()
    site = r.site("score", inputs, train=False, seed=0)
    assert site.module is None and site.op_name == "squeeze" and site.file.endswith("test_probe_runtime.py")
    base = r.run(inputs, observe=["logit", "score"])
    shifted = r.run(inputs, observe=["logit"], edits={"score": lambda t: t + 1.0})
    assert torch.allclose(shifted["logit"], base["logit"] + 1.0)


def test_namedtuple_element_edit_and_module_binding_observe():
    r, inputs = runner()
    base = r.run(inputs, observe=["scale", "logit"])
    shifted = r.run(inputs, observe=["scale", "logit"], edits={"scale": lambda t: t + 2.0})
    assert torch.allclose(shifted["logit"], base["logit"] + 2.0)
    assert torch.allclose(shifted["scale"], base["scale"] + 2.0)


def test_train_and_eval_sites_are_located_separately():
    r, inputs = runner()
    assert r.site("z", inputs, train=True, seed=0).op_name == "add"  # pair.mean + 0.1 in train mode
    assert r.site("z", inputs, train=False, seed=0).module == "head"


def test_an_input_returned_as_is_cannot_be_intervened_on():
    r, inputs = runner()
    with pytest.raises(SymbolError, match="not produced by any torch call or submodule"):
        r.site("x", inputs, train=False, seed=0)


def test_unknown_names_and_modules_match_nothing():
    r, inputs = runner(ghost=SymbolBinding(module="nowhere"), key=SymbolBinding(output="nokey"))
    with pytest.raises(SymbolError, match="no module 'nowhere'"):
        r.run(inputs, edits={"ghost": lambda t: t})
    with pytest.raises(SymbolError, match="no key 'nokey'"):
        r.run(inputs, observe=["key"])


def test_runs_restore_mode_and_rng():
    r, inputs = runner()
    r.model.train()
    state = torch.get_rng_state()
    r.run(inputs, train=False, seed=3, observe=["z"])
    assert torch.equal(torch.get_rng_state(), state)
    assert not r.model.training  # a run leaves its mode (the next eval run switches nothing) until settled
    r.settle()
    assert r.model.training
