"""Lightning callback: check the model before `trainer.fit` trains it, and watch its loss terms.

    from alignguard.integrations.lightning import AlignguardCallback

    trainer = L.Trainer(callbacks=[AlignguardCallback("specs/cmdn.yaml", example_batch=batch,
                                                      loss_terms=loss_terms, model=lambda m: m.net)])
    trainer.fit(module, datamodule)   # raises MisalignedError before the first step on findings

* At `setup("fit")` the model (the LightningModule, or the part `model` selects) is checked
  against the spec, once, on rank 0's view (every rank checks the same weights, so every rank
  refuses together). Findings raise `alignguard.MisalignedError` before any optimizer step;
  `callback.report` keeps the Report either way.
* Every `every_n_steps` optimizer steps it measures each loss term's gradient as `alignguard
  train` does (one forward and one autograd.grad per term, on the training batch when it is a
  dict of forward's arguments, else on the example batch) and logs `alignguard/grad_share/NAME`,
  `alignguard/grad_norm/NAME`, `alignguard/grad_net_ratio`; an alarm (a vanished, cancelling,
  conflicting or starved term) is logged as a warning when it is raised and when it clears.

Needs `pip install 'alignguard[lightning]'`.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

try:
    from lightning.pytorch.callbacks import Callback
    from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
except ImportError:  # pragma: no cover - the standalone pytorch_lightning package
    try:
        from pytorch_lightning.callbacks import Callback
        from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn
    except ImportError:
        from alignguard.errors import UsageError

        raise UsageError("the Lightning callback needs the lightning package, which is not installed",
                         fix="pip install 'alignguard[lightning]'") from None

PREFIX = "alignguard"


class AlignguardCallback(Callback):
    def __init__(self, spec: Any, *, example_batch: Any, loss_terms: Callable[..., Mapping[str, Any]] | None = None,
                 model: Callable[[Any], Any] | None = None, fail_on: str = "error",
                 every_n_steps: int | None = 50) -> None:
        """spec: a Spec, a dict or a YAML path. example_batch: a dict of forward's arguments (and
        targets) or (batch_size, seed) -> dict. loss_terms: (model, batch, outputs, step) -> dict of
        scalar terms (needed for a spec with losses, and for the gradient shares). model: picks the
        module to check from the LightningModule (default: the LightningModule itself, whose forward
        must then take the batch's keys by name). every_n_steps: gradient-share period; None: off."""
        from alignguard.spec.model import Spec

        if isinstance(spec, dict):
            spec = Spec.from_dict(spec)
        elif not isinstance(spec, Spec):
            from alignguard.spec.loader import load_spec

            spec = load_spec(spec)
        self.spec = spec
        self.example_batch = example_batch
        self.loss_terms = loss_terms
        self.select = model or (lambda module: module)
        self.fail_on = fail_on
        self.every_n_steps = every_n_steps
        self.report = None
        self.monitor = None

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage != "fit" or self.report is not None:
            return
        from alignguard.gate import gate

        try:
            self.report = gate(self.spec, self.select(pl_module), example_batch=self.example_batch,
                               loss_terms=self.loss_terms, fail_on=self.fail_on)  # type: ignore[arg-type]
        except Exception as error:
            self.report = getattr(error, "report", None)
            raise
        counts = self.report.counts()
        rank_zero_info(f"alignguard: the model implements spec '{self.spec.name}' "
                       f"({counts['pass']} checks passed, {counts['waived']} waived)")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        step = trainer.global_step
        if not self.every_n_steps or self.loss_terms is None or step % self.every_n_steps:
            return
        record, raised, cleared = self._measure(self.select(pl_module), batch, step)
        values = {f"{PREFIX}/grad_share/{n}": v for n, v in record["grad_share"].items() if v is not None}
        values.update({f"{PREFIX}/grad_norm/{n}": v for n, v in record["grad_norm"].items()})
        if record["grad_net_ratio"] is not None:
            values[f"{PREFIX}/grad_net_ratio"] = record["grad_net_ratio"]
        pl_module.log_dict(values, on_step=True, on_epoch=False)
        for alarm in raised:
            rank_zero_warn(f"alignguard alarm at step {step}: {alarm.message}")
        for alarm in cleared:
            rank_zero_info(f"alignguard: cleared at step {step}: {alarm.message}")

    def _measure(self, module, batch, step: int):
        """Per-term gradients on one batch, with the training RNG stream and grads untouched."""
        import torch

        from alignguard.modelfile.loader import forward_arguments, forward_inputs
        from alignguard.train.monitor import GradientMonitor, flatten, per_term_gradients

        if self.monitor is None:
            gradients = self.spec.gradients
            self.monitor = GradientMonitor(
                vanish_ratio=1e-3, min_cosine=gradients.min_cosine, min_net_ratio=gradients.min_net_ratio,
                min_shares={name: (loss.min_share, loss.step) for name, loss in self.spec.losses.items()})
        if not (isinstance(batch, Mapping) and all(name in batch for name in forward_arguments(module))):
            device = next(module.parameters()).device
            batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in self._example(step).items()}
        params = [p for p in module.parameters() if p.requires_grad]
        with torch.random.fork_rng(), torch.enable_grad():
            outputs = module(**forward_inputs(module, dict(batch)))
            terms = self.loss_terms(module, batch, outputs, step)
            term_grads = per_term_gradients(terms, params)
        names = [name for name, _ in term_grads]
        values = {name: float(terms[name].detach()) for name in names}
        return self.monitor.observe(names, values, flatten(term_grads, params), step)

    def _example(self, step: int) -> dict:
        if callable(self.example_batch):
            return self.example_batch(self.spec.entry_points.batch_size, self.spec.entry_points.seed + step)
        return dict(self.example_batch)
