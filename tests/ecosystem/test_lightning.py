"""The Lightning callback in real `trainer.fit` runs on CPU: the gate before the first step,
gradient shares logged while training."""

from __future__ import annotations

import warnings

import pytest

L = pytest.importorskip("lightning", reason="the [lightning] extra is not installed")

import torch  # noqa: E402
from torch import nn  # noqa: E402

from alignguard.gate import MisalignedError  # noqa: E402
from alignguard.integrations.lightning import AlignguardCallback  # noqa: E402
from alignguard.spec.model import Spec  # noqa: E402

SPEC = {
    "version": 1, "name": "tiny-lightning",
    "inputs": {"x": {"role": "invariant"}, "c": {"role": "context"}},
    "symbols": {"h": {"module": "encoder"}, "logit": "logit"},
    "components": {"encoder": {"module": "encoder", "reaches": ["logit"]}, "head": {"module": "head"}},
    "losses": {"bce": {"reaches": ["encoder", "head"]}, "l2": {"reaches": ["encoder"]}},
}


class Net(nn.Module):
    def __init__(self, use_head: bool = True) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(8, 4), nn.Tanh())
        self.head = nn.Linear(4, 1)
        self.use_head = use_head

    def forward(self, x, c):
        h = self.encoder(x)
        score = self.head(h).squeeze(-1) if self.use_head else h.sum(-1)
        return {"logit": score * c[:, 0]}


def example_batch(batch_size: int, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"x": torch.randn(batch_size, 2, 4, generator=g), "c": torch.rand(batch_size, 3, generator=g) + 0.5,
            "y": (torch.rand(batch_size, generator=g) < 0.5).float()}


def loss_terms(model, batch, outputs, step):
    return {"bce": nn.functional.binary_cross_entropy_with_logits(outputs["logit"], batch["y"]),
            "l2": 1e-2 * model.encoder[1].weight.pow(2).sum()}


class Module(L.LightningModule):
    def __init__(self, use_head: bool = True) -> None:
        super().__init__()
        self.net = Net(use_head)
        self.steps_trained = 0

    def training_step(self, batch, batch_idx):
        outputs = self.net(batch["x"], batch["c"])
        self.steps_trained += 1
        return sum(loss_terms(self.net, batch, outputs, self.global_step).values())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def loader():
    data = [example_batch(16, seed) for seed in range(6)]
    return torch.utils.data.DataLoader(data, batch_size=None)


class Recorder(L.pytorch.loggers.logger.Logger):
    """Keeps every logged metric (the callback's shares among them)."""

    def __init__(self) -> None:
        super().__init__()
        self.metrics: list[tuple[int, dict]] = []

    name, version = "recorder", 0

    @property
    def experiment(self):
        return None

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass

    def log_metrics(self, metrics, step=None) -> None:
        self.metrics.append((step, dict(metrics)))


def trainer(callback, logger=None, **kwargs):
    return L.Trainer(max_epochs=1, accelerator="cpu", devices=1, callbacks=[callback], logger=logger or False,
                     enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                     log_every_n_steps=1, **kwargs)


def test_an_aligned_model_trains_and_its_gradient_shares_are_logged():
    module, recorder = Module(), Recorder()
    callback = AlignguardCallback(SPEC, example_batch=example_batch, loss_terms=loss_terms,
                                  model=lambda m: m.net, every_n_steps=2)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    trainer(callback, recorder).fit(module, loader())
    assert callback.report is not None and callback.report.aligned()
    assert module.steps_trained == 6
    assert any(not torch.equal(before[k], v) for k, v in module.state_dict().items())  # it trained
    logged = [(step, m) for step, m in recorder.metrics if "alignguard/grad_share/bce" in m]
    # measured after optimizer steps 2, 4 and 6 (Lightning repeats a step metric until it is logged again)
    assert len({m["alignguard/grad_norm/bce"] for _, m in logged}) == 3
    for _, metrics in logged:
        shares = metrics["alignguard/grad_share/bce"] + metrics["alignguard/grad_share/l2"]
        assert shares == pytest.approx(1.0, abs=1e-4)  # shares of the net gradient add up to 1
        assert metrics["alignguard/grad_norm/bce"] > 0 and 0 < metrics["alignguard/grad_net_ratio"] <= 1


def test_a_misaligned_model_is_refused_before_the_first_step():
    module = Module(use_head=False)  # the head is built and never called
    callback = AlignguardCallback(SPEC, example_batch=example_batch, loss_terms=loss_terms, model=lambda m: m.net)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    with pytest.raises(MisalignedError) as raised:
        trainer(callback).fit(module, loader())
    assert module.steps_trained == 0
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())
    assert "component.called [component head] (fail)" in str(raised.value)
    assert raised.value.exit_code == 1 and not callback.report.aligned()


def test_the_check_leaves_the_module_and_the_rng_as_they_were():
    import alignguard

    net = Net()
    net.eval()
    torch.manual_seed(123)
    expected_draw = torch.rand(3)
    torch.manual_seed(123)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    report = alignguard.check(Spec.from_dict(SPEC), net, example_batch=example_batch, loss_terms=loss_terms)
    assert report.aligned(), report.results
    assert torch.equal(torch.rand(3), expected_draw)
    assert not net.training and all(not m.training for m in net.modules())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(p.grad is None for p in net.parameters())


def test_an_alarm_is_warned_when_a_term_starves():
    # l2 carries ~1% of the gradient; its static check is only a warning, so the gate lets it train
    spec = {**SPEC, "losses": {"bce": {"reaches": ["encoder", "head"]}, "l2": {"reaches": ["encoder"],
                                                                               "min_share": 0.9}},
            "severity": {"loss.share": "warning"}}
    callback = AlignguardCallback(spec, example_batch=example_batch, loss_terms=loss_terms, model=lambda m: m.net,
                                  every_n_steps=3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer(callback).fit(Module(), loader())
    assert [r.check_id for r in callback.report.warnings()] == ["loss.share"]
    assert any("'l2' carries" in str(w.message) and "min_share 0.9" in str(w.message) for w in caught)
