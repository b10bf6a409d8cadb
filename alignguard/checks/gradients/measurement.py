"""The gradient measurement every loss/gradient check reads, taken once per check run.

Each loss is measured at the training step its spec entry names (β starts at 0, so a share at
step 0 would say nothing); conflict and cancellation at `gradients.step` (default: the largest
loss step). All steps reuse one forward pass per example batch, on the real model in train mode.
loss.descent measures its slopes on the first batch's gradients, inside this measurement (see
`descent.first_batch_hook`), so it runs no forward and backward pass of its own.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from alignguard.errors import ModelFileError
from alignguard.results import Where

if TYPE_CHECKING:
    from alignguard.checks.context import CheckContext
    from alignguard.gradients.measure import StepMeasurement
    from alignguard.spec.model import Spec


def conflict_step(spec: "Spec") -> int:
    if spec.gradients.step is not None:
        return spec.gradients.step
    return max((loss.step for loss in spec.losses.values()), default=0)


def measured_steps(spec: "Spec") -> list[int]:
    return sorted({loss.step for loss in spec.losses.values()} | {conflict_step(spec)})


def measurement(context: "CheckContext") -> dict[int, "StepMeasurement"]:
    """{step: StepMeasurement} over `gradients.batches` example batches (memoised)."""
    return context.memo("gradients", lambda: _measure(context, measured_steps(context.spec), with_descent=True))


def measurement_at(context: "CheckContext", steps: list[int], names_at: list[int] = ()) -> tuple[dict, set]:
    """({step: StepMeasurement} for `steps` only, the names of the terms `loss_terms` returns at the
    `names_at` steps too): those names come from the first batch's forward pass, with no backward
    (`loss_terms` may be costly: an L2 over every weight is 0.3 s a call on a 52 M-parameter CNN)."""
    def both() -> tuple[dict, set]:
        names: set = set()
        return _measure(context, steps, names_at, names), names

    return context.memo(f"gradients:{steps}:{list(names_at)}", both)


def batches_phrase(context: "CheckContext") -> str:
    n = context.spec.gradients.batches
    return f"{n} batch{'es' if n != 1 else ''} of {context.spec.entry_points.batch_size}"


def loss_terms_where(context: "CheckContext") -> Where:
    function = context.model_file.loss_terms
    try:
        return Where(file=inspect.getsourcefile(function), line=inspect.getsourcelines(function)[1])
    except (OSError, TypeError):
        return Where(file=str(context.model_file.path))


def owning_module(param_name: str) -> str:
    return param_name.rpartition(".")[0] or "<root>"


def _measure(context: "CheckContext", steps: list[int], names_at=(), names: set | None = None,
             release: bool = True, with_descent: bool = False) -> dict[int, "StepMeasurement"]:
    """The measurement; with `release` (what the checks memoise), statistics only: the per-term
    gradient sums are freed once the statistics are computed (they would otherwise stay in memory
    through loss.descent and the probes)."""
    from alignguard.gradients.measure import LossTermTypeError, measure_steps

    spec, model_file, model = context.spec, context.model_file, context.model
    from alignguard.checks.gradients.descent import first_batch_hook

    # loss.descent measures its slopes on the first batch's gradients (in the checks' measurement;
    # `measurement_at`, for `init`, runs no descent)
    first_batch = first_batch_hook(context) if with_descent else None
    _drop_recording(context)
    count = spec.gradients.batches
    seeds = [spec.entry_points.seed + i for i in range(count)]
    loss_name = model_file.loss_terms.__name__

    def run_forward(batch: dict) -> Any:
        return model_file.forward(model, batch, on="the example batch (train mode)")

    named = []  # batches whose term names at `names_at` were read: only the first is

    def terms_at(batch: dict, outputs: Any, step: int) -> dict:
        if step == steps[0] and names is not None and not named:
            named.append(batch)
            for other in names_at:
                names.update(model_file.loss_terms_at(model, batch, outputs, other))
        return model_file.loss_terms_at(model, batch, outputs, step)

    def at(at_steps: list[int]) -> dict:
        batches = [context.batch(i, step=at_steps[0]) for i in range(count)]
        return measure_steps(model, batches, run_forward, terms_at, at_steps, seeds=seeds, release=release,
                             on_first_batch=first_batch)

    try:
        if model_file.step_dependent:  # the batches change with the step: one forward per step
            return {step: at([step])[step] for step in steps}
        return at(steps)
    except LossTermTypeError as exc:
        raise ModelFileError(f"`{loss_name}` returned loss term '{exc.name}' as {exc.found}, not a scalar tensor",
                             where=str(loss_terms_where(context)),
                             fix="reduce the term to a scalar (e.g. `.mean()`) and keep it a tensor "
                             "(no `.item()`), so that it has a gradient") from None
    except RuntimeError as exc:  # autograd failing on the user's graph, e.g. an in-place edit
        raise ModelFileError(f"autograd failed while differentiating the loss terms: {exc}",
                             where=str(loss_terms_where(context)),
                             fix="make every term differentiable with `torch.autograd.grad` on one "
                             "forward graph (no in-place edits of tensors autograd saved)") from None


def _drop_recording(context: "CheckContext") -> None:
    """The probes' discovery recording (every module output of one forward, ~50 MB on the ResNet-50
    layout) is not read while gradients are measured, whose K gradient sums and training graph set
    the check's peak memory: free it first (sites and slices stay located; a later discovery records
    again)."""
    runner = context.memoised("probes:runner")
    if runner is not None:
        runner.drop_recording()
