"""Replaying a captured call at another seed (issue 20: the noise checks' eval pair at seeds s and s+1):
only calls that drew no randomness, confirmed once against a real run at the new seed, refused for good
on a mismatch; a call that drew from numpy's or Python's stream is never replayed."""

import random

import numpy as np
import torch
from torch import nn

from alignguard.probes.runtime import SymbolRunner
from alignguard.spec.model import SymbolBinding


class Net(nn.Module):
    """logit = u(x) * softplus(m(c)); the encoder's eval draw is `draw`: None (deterministic), "torch"
    (torch.randn_like), "numpy", "python" or "own" (a generator of the model's own, no global stream)."""

    def __init__(self, draw=None):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))
        self.context = nn.Linear(2, 1)
        self.draw, self.encoder_runs, self.own = draw, 0, torch.Generator().manual_seed(5)
        plain = self.encoder.forward

        def counted(x):
            self.encoder_runs += 1
            out = plain(x)
            if self.draw == "torch":
                out = out + torch.randn_like(out)
            elif self.draw == "numpy":
                out = out + torch.from_numpy(np.random.randn(*out.shape).astype("float32"))
            elif self.draw == "python":
                out = out + random.random()
            elif self.draw == "own":
                out = out + torch.randn(out.shape, generator=self.own)
            return out
        self.encoder.forward = counted  # an instance forward: a replayed call does not reach it

    def forward(self, x, c):
        u = self.encoder(x).squeeze(-1)
        return {"logit": u * nn.functional.softplus(self.context(c).squeeze(-1)), "U": u}


BINDINGS = {"U": SymbolBinding(output="U"), "logit": SymbolBinding(output="logit")}
X, C = torch.randn(5, 4, generator=torch.Generator().manual_seed(1)), torch.randn(5, 2)


def runs(draw, seeds=(0, 1, 2, 3)):
    torch.manual_seed(0)
    runner = SymbolRunner(Net(draw).eval(), BINDINGS)
    with torch.no_grad():
        values = [runner.run({"x": X, "c": C}, seed=s, observe=["U"])["U"] for s in seeds]
    return runner, values


def whole(draw, seed):
    """The run at `seed` of a fresh model with nothing to replay."""
    return runs(draw, (seed,))[1][0]


def test_a_deterministic_encoder_is_replayed_across_seeds_once_confirmed():
    runner, values = runs(None)
    assert runner.model.encoder_runs == 2  # the capture at seed 0, the real run confirming seed 1
    assert runner._replays.seeds_crossed and not runner._replays.seeds_refused
    assert all(torch.equal(v, whole(None, s)) for s, v in enumerate(values))


def test_an_encoder_drawing_in_eval_is_never_replayed_across_seeds():
    runner, values = runs("torch")
    assert runner.model.encoder_runs >= 4  # every seed runs it (the context's call, which draws nothing, may cross)
    assert all(not torch.equal(values[0], v) for v in values[1:])  # stochastic eval stays stochastic
    assert all(torch.equal(v, whole("torch", s)) for s, v in enumerate(values))


def test_numpy_and_python_draws_are_never_replayed():
    for draw in ("numpy", "python"):
        runner, values = runs(draw, (0, 0, 1, 1))
        assert runner.model.encoder_runs >= 4, draw  # the runner seeds neither stream: every run draws afresh
        assert all(not torch.equal(values[0], v) for v in values[1:]), draw
        assert all(call.foreign for call in runner._replays.calls if call.path == "encoder"), draw


def test_a_draw_from_the_models_own_generator_is_refused_across_seeds_for_good():
    runner, values = runs("own")
    assert runner._replays.seeds_refused and not runner._replays.seeds_crossed
    assert all(not torch.equal(values[0], v) for v in values[1:])  # fresh draws, never a captured one
