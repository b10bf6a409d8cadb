"""The runner's execution-cost mechanisms (issue 20): replaying the part of forward an eval
intervention does not touch, discovery recordings without an autograd graph, runs that
differentiate only their own leaves with the parameters frozen."""

import torch
from torch import nn

from alignguard.probes.runtime import SymbolRunner
from alignguard.spec.model import SymbolBinding


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.body(x)


class Net(nn.Module):
    """logit = U·m(c) + r(c): U from a costly encoder on x, its squeeze an op site (no module returns U).
    `stateful`: the encoder leaves x's mean on the model, which the head reads (state no argument shows).
    `counter`: the output depends on how often forward ran (a replay would not reproduce it)."""

    def __init__(self, stateful: bool = False, counter: bool = False):
        super().__init__()
        self.encoder, self.context = Encoder(), nn.Linear(2, 2)
        self.stateful, self.counter, self.runs, self.last = stateful, counter, 0, torch.zeros(())

    def forward(self, x, c):
        self.runs += 1
        u = self.encoder(x).squeeze(-1)
        if self.stateful:
            self.last = x.mean()
        m, r = self.context(c).unbind(-1)
        logit = u * torch.nn.functional.softplus(m) + r + (self.last if self.stateful else 0.0)
        if self.counter:
            logit = logit + self.runs
        return {"logit": logit, "U": u, "R": r}


BINDINGS = {"U": SymbolBinding(output="U"), "R": SymbolBinding(output="R"), "logit": SymbolBinding(output="logit")}


def setup(**kw):
    torch.manual_seed(0)
    return SymbolRunner(Net(**kw), BINDINGS), {"x": torch.randn(5, 4), "c": torch.randn(5, 2)}


def shifted(runner, inputs, delta):
    return runner.run(inputs, observe=["logit"], edits={"U": lambda t: t + delta, "R": lambda t: t - delta})["logit"]


def test_eval_interventions_reuse_the_encoder_call_and_match_the_whole_model():
    runner, inputs = setup()
    reference, _ = setup()
    with torch.no_grad():
        base = runner.run(inputs, observe=["U", "logit"])  # captures encoder(x), context(c), then confirms
        for name in ("U", "R"):  # locating the edit sites records one whole forward
            runner.site(name, inputs, train=False, seed=0)
        calls = runner.model.encoder.calls
        results = [shifted(runner, inputs, d) for d in (0.5, 1.0, -2.0)]
        assert runner.model.encoder.calls == calls  # the encoder did not run again
        expected = [shifted(reference, inputs, d) for d in (0.5, 1.0, -2.0)]
    for got, want in zip(results, expected):
        assert torch.equal(got, want)
    assert torch.equal(base["logit"], reference.run(inputs, observe=["logit"])["logit"])


def test_an_edit_inside_a_captured_call_runs_that_call():
    runner, inputs = setup()
    binding = {**BINDINGS, "hidden": SymbolBinding(module="encoder.body.1")}
    runner = SymbolRunner(runner.model, binding)
    with torch.no_grad():
        runner.run(inputs, observe=["logit"])
        runner.site("hidden", inputs, train=False, seed=0)
        calls = runner.model.encoder.calls
        edited = runner.run(inputs, observe=["logit"], edits={"hidden": lambda t: t * 0})["logit"]
        assert runner.model.encoder.calls == calls + 1
        _, r = runner.model.context(inputs["c"]).unbind(-1)
    head = runner.model.encoder.body[2].bias  # a zero hidden layer leaves the last bias
    m = torch.nn.functional.softplus(runner.model.context(inputs["c"]).unbind(-1)[0])
    assert torch.allclose(edited, head * m + r)


def test_another_forward_in_between_drops_the_capture_so_state_is_never_stale():
    runner, inputs = setup(stateful=True)
    reference, _ = setup(stateful=True)
    other = {"x": torch.randn(5, 4) + 3.0, "c": inputs["c"]}
    with torch.no_grad():
        runner.run(inputs, observe=["logit"])
        runner.model(**other)  # outside the runner: sets `last` from other x
        got = shifted(runner, inputs, 1.0)
        want = shifted(reference, inputs, 1.0)
    assert torch.equal(got, want)


def test_a_forward_whose_output_depends_on_history_is_never_replayed():
    runner, inputs = setup(counter=True)
    with torch.no_grad():
        runner.run(inputs, observe=["logit"])
        assert runner._replays.pending is not None and not runner._replays.valid  # confirmed when reused
        for name in ("U", "R"):
            runner.site(name, inputs, train=False, seed=0)
        calls = runner.model.encoder.calls
        shifted(runner, inputs, 1.0)
        assert not runner._replays.valid and runner._refused  # the replayed run did not reproduce it
    assert runner.model.encoder.calls == calls + 1


def test_inputs_that_run_once_run_the_model_once():
    """A capture is confirmed by the second run on its inputs, not by running the first one twice."""
    runner, inputs = setup()
    with torch.no_grad():
        for scale in (1.0, 2.0, 3.0):
            runner.run({k: v * scale for k, v in inputs.items()}, observe=["logit"])
        assert runner.model.encoder.calls == 3
        runner.run(inputs, observe=["logit"])
        runner.run(inputs, observe=["logit"])  # confirms: a replayed run, the encoder does not run
        runner.run(inputs, observe=["logit"])
    assert runner.model.encoder.calls == 4


def test_grad_mode_and_train_mode_runs_are_never_replayed():
    runner, inputs = setup()
    with torch.no_grad():
        runner.run(inputs, observe=["logit"])
    calls = runner.model.encoder.calls
    runner.run(inputs, observe=["logit"])  # grad enabled
    with torch.no_grad():
        runner.run(inputs, observe=["logit"], train=True)
    assert runner.model.encoder.calls == calls + 2


def test_discovery_recording_keeps_no_autograd_graph_and_only_the_latest_inputs():
    runner, inputs = setup()
    runner.site("U", inputs, train=False, seed=0)
    (events, ops, outputs), = [entry[:3] for entry in runner._recorded.values()]
    assert not any(out.requires_grad for _, _, out, *_ in events if isinstance(out, torch.Tensor))
    assert all(p.requires_grad for p in runner.model.parameters())  # restored
    runner.site("U", {k: v.clone() for k, v in inputs.items()}, train=True, seed=0)
    assert len(runner._recorded) == 1


def test_a_leaf_only_run_has_the_same_gradient_without_a_graph_through_the_parameters():
    runner, inputs = setup()
    grads = {}
    for param_grads in (True, False):
        leaf = inputs["c"].clone().requires_grad_(True)
        logit = runner.run({**inputs, "c": leaf}, observe=["logit"], param_grads=param_grads)["logit"]
        (grads[param_grads],) = torch.autograd.grad(logit.sum(), leaf)
        if not param_grads:  # the encoder's output carried no graph: only c's path was recorded
            u = runner.run({**inputs, "c": leaf}, observe=["U"], param_grads=False)["U"]
            assert not u.requires_grad
    assert torch.equal(grads[True], grads[False])
    assert all(p.requires_grad for p in runner.model.parameters())


def test_inputs_are_held_while_keyed_so_a_reused_id_never_answers_for_another_batch(monkeypatch):
    """The replay key names inputs by id(); CPython reuses a freed object's id, and a half batch made
    after the full one was freed was answered with the full batch's encoder output (batch_independence:
    'M has shape (16,) for 8 examples', flaky in CI). The keyed inputs are now held while the key lives,
    and the key carries shapes: even with every id equal, another batch is run, not replayed."""
    from alignguard.probes import replay

    runner, inputs = setup()
    with torch.no_grad():
        runner.run(inputs, observe=["U", "logit"])  # captures and confirms
        assert all(any(v is p for p in runner._replays.pinned.values()) for v in inputs.values())
        monkeypatch.setattr(replay, "id", lambda value: 0, raising=False)  # every object "reuses" one id
        half = {k: v[:2].clone() for k, v in inputs.items()}
        got = runner.run(half, observe=["U"])["U"]
    assert got.shape == (2,)
    reference, _ = setup()
    assert torch.equal(got, reference.run(half, observe=["U"])["U"])


class RowLoop(nn.Module):
    """Calls its head once per row: at another batch size the head's last call, and forward's torch
    calls, are numbered differently, so a site located on one batch size is wrong on another."""

    def __init__(self):
        super().__init__()
        self.head, self.scale = nn.Linear(3, 1), nn.Linear(3, 1)

    def forward(self, x):
        u = torch.cat([self.head(x[i:i + 1]) for i in range(len(x))]).squeeze(-1)
        return {"U": u, "logit": u * self.scale(x).squeeze(-1).exp()}


def test_a_site_located_at_another_batch_size_is_used_only_when_forward_has_the_same_calls():
    for binding in (SymbolBinding(module="head"), SymbolBinding(output="U")):
        bindings = {"U": binding, "logit": SymbolBinding(output="logit")}
        torch.manual_seed(0)
        model = RowLoop()
        small, large = {"x": torch.randn(2, 3)}, {"x": torch.randn(5, 3)}
        runner, fresh = SymbolRunner(model, bindings), SymbolRunner(model, bindings)
        with torch.no_grad():
            runner.site("U", small, train=False, seed=0)
            got = runner.run(large, observe=["logit"], edits={"U": lambda t: t + 1.0})["logit"]
            want = fresh.run(large, observe=["logit"], edits={"U": lambda t: t + 1.0})["logit"]
        assert torch.equal(got, want), binding


def test_a_site_found_on_the_example_rows_serves_a_larger_batch_without_recording_it():
    runner, inputs = setup()
    reference, _ = setup()
    large = {k: v.repeat(4, 1) for k, v in inputs.items()}
    with torch.no_grad():
        runner.site("U", inputs, train=False, seed=0)
        got = shifted(runner, large, 1.0)
        want = shifted(reference, large, 1.0)
    assert torch.equal(got, want)
    assert all(key[2][0][1] == id(inputs["x"]) for key in runner._recorded)  # only the example rows recorded


def test_the_first_capture_is_also_the_discovery_recording():
    runner, inputs = setup()
    reference, _ = setup()
    with torch.no_grad():
        runner.run(inputs, observe=["logit"])
        runs = runner.model.runs
        sites = [runner.site(name, inputs, train=False, seed=0) for name in ("U", "R", "logit")]
        assert runner.model.runs == runs  # located from the capture's recording
        assert sites == [reference.site(name, inputs, train=False, seed=0) for name in ("U", "R", "logit")]
        assert torch.equal(shifted(runner, inputs, 1.0), shifted(reference, inputs, 1.0))


class FrozenNorm(nn.Module):
    """A user's train() that keeps its BatchNorm in eval: the flags train(True) leaves are mixed."""

    def __init__(self):
        super().__init__()
        self.norm, self.head = nn.BatchNorm1d(4), nn.Linear(4, 1)
        self.register_module("absent", None)  # an optional submodule left out: the flag walk skips it
        self.switches = 0

    def train(self, mode: bool = True):
        self.switches += 1
        super().train(mode)
        self.norm.eval()
        return self

    def forward(self, x):
        return {"y": self.head(self.norm(x)).squeeze(-1)}


def test_consecutive_runs_in_one_mode_switch_once_and_settle_restores_the_users_flags():
    model = FrozenNorm()
    model.train()
    built = [m.training for m in model.modules()]
    runner, x = SymbolRunner(model, {"y": SymbolBinding(output="y")}), {"x": torch.randn(6, 4)}
    model.switches = 0
    with torch.no_grad():
        first = [runner.run(x, observe=["y"])["y"] for _ in range(5)]
    assert model.switches == 1 and not model.training  # the runs stay in eval until settled
    runner.settle()
    assert model.switches == 2 and [m.training for m in model.modules()] == built  # the norm stays frozen
    runner.run(x, train=True, observe=["y"])
    assert model.switches == 2  # train(True)'s flags (norm frozen) are already there: no switch
    model.norm.train()  # flags no train(True) left: switched again
    runner.run(x, train=True, observe=["y"])
    assert model.switches == 3 and not model.norm.training
    runner.settle()
    with torch.no_grad():
        assert all(torch.equal(f, runner.run(x, observe=["y"])["y"]) for f in first)


def test_each_check_finds_the_model_in_the_mode_it_was_built_in(tmp_path):
    from alignguard import api
    from alignguard.checks.base import Check
    from alignguard.checks.running import probe_inputs, runner
    from alignguard.results import passed

    seen = []

    class EvalRuns(Check):
        ids = ("probe.cost_eval_runs",)
        explanations = {}

        def applies(self, spec):
            return True

        def run(self, context):
            seen.append(context.model.training)
            with torch.no_grad():
                runner(context).run(probe_inputs(context), observe=list(context.spec.symbols)[:1])
            yield passed(self.ids[0], "model", "eval runs", "ran")

    spec, model_file = api.load("specs/cmdn.yaml", "models/cmdn.py")
    context = api.open_context(spec, model_file)
    api.run_checks(context, checks=(EvalRuns, EvalRuns))
    assert seen == [True, True] and context.model.training


def test_checks_run_in_the_execution_order_and_report_in_the_catalogues():
    from alignguard.checks.catalogue import CHECKS, EXECUTION

    assert sorted(EXECUTION, key=CHECKS.index) == list(CHECKS) and len(EXECUTION) == len(CHECKS)


def test_probes_after_identifiability_replay_its_encoder_call(monkeypatch):
    """translation_symmetry's runs on the example inputs come right after identifiability's, whose replay
    capture of the encoder serves them: no encoder forward of their own; the report keeps the catalogue's
    order."""
    from alignguard import api
    from alignguard.checks.catalogue import CHECKS
    from alignguard.checks.gradients.losses import LossCheck
    from alignguard.checks.probes.translation import TranslationProbeCheck
    from alignguard.checks.structure.identifiability import IdentifiabilityCheck

    spec, model_file = api.load("specs/cmdn.yaml", "models/cmdn.py")
    encoder = type(model_file.build().encoder)
    calls, current = [], [""]
    real = encoder.forward
    monkeypatch.setattr(encoder, "forward", lambda self, x: calls.append(current[0]) or real(self, x))
    run_one = api._run_one

    def tagged(check, context):
        current[0] = type(check).__name__
        return run_one(check, context)
    monkeypatch.setattr(api, "_run_one", tagged)
    # In the catalogue the gradient measurement (train-mode forwards: they drop the capture) comes between them.
    report = api.run_checks(api.open_context(spec, model_file),
                            checks=(IdentifiabilityCheck, LossCheck, TranslationProbeCheck))
    assert calls.count("IdentifiabilityCheck") >= 1 and calls.count("TranslationProbeCheck") == 0
    assert calls.count("LossCheck") >= 1
    ids = [r.check_id for r in report.results]
    positions = [next(i for i, c in enumerate(CHECKS) if i_d in c.ids) for i_d in ids]
    assert positions == sorted(positions)
