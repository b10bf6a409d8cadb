"""The check use case: spec + model file -> Report. Also the public Python API."""

from __future__ import annotations

import time
import traceback
from pathlib import Path

from alignguard.checks.base import CheckResult, Status, registered_checks
from alignguard.errors import AlignguardError
from alignguard.report.model import Report
from alignguard.spec.model import Spec
from alignguard.waivers import apply_waivers


def run_check(spec: Spec | str | Path, model_path: str | Path, spec_path: str | None = None) -> Report:
    """Load the spec and model file, run every registered check that applies, return the report.

    Raises AlignguardError for input the tool cannot judge (bad spec, model file, capture).
    """
    from alignguard.modelfile.loader import load_model_file
    from alignguard.spec.loader import load_spec

    timings: dict[str, float] = {}
    start = time.perf_counter()
    if not isinstance(spec, Spec):
        spec_path = spec_path or str(spec)
        spec = load_spec(spec)
    timings["load spec"] = time.perf_counter() - start
    start = time.perf_counter()
    model_file = load_model_file(model_path, spec.entry_points)  # imports torch and the model file
    timings["import model file"] = time.perf_counter() - start
    return check_model_file(spec, model_file, spec_path=spec_path or "<spec>", timings=timings)


def check_model_file(
    spec: Spec, model_file, spec_path: str = "<spec>", timings: dict[str, float] | None = None
) -> Report:
    """Run the checks on an already-loaded ModelFile (mutation testing passes altered ones)."""
    from alignguard.checks.context import CheckContext

    import torch

    start = time.perf_counter()
    torch.manual_seed(spec.entry_points.seed)  # the same spec and model give the same verdict every run
    model = model_file.build()
    timings = {**(timings or {}), "build model": time.perf_counter() - start}
    context = CheckContext(spec=spec, model_file=model_file, model=model, timings=timings)
    results: list[CheckResult] = []
    for check_class in registered_checks():
        check = check_class()
        if not check.applies(spec):
            continue
        with context.timed(check_class.ids[0].split(".")[0]):
            results.extend(_run_one(check, context))
    results = [r.with_(severity=spec.severity_of(r.check_id, r.severity)) for r in results]
    results = apply_waivers(spec, results)
    graph = context._memo.get("capture")
    return Report(
        spec_name=spec.name,
        spec_path=spec_path,
        model_path=str(model_file.path),
        results=results,
        capture=graph.capture if graph else "",
        capture_note=graph.capture_note if graph else "",
        timings=context.timings,
    )


def _run_one(check, context) -> list[CheckResult]:
    try:
        return list(check.run(context))
    except AlignguardError:
        raise
    except Exception as exc:  # a bug in a check must not hide the other results
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        return [CheckResult(check.ids[0], "alignguard", Status.ERROR, "the check runs",
                            f"{type(exc).__name__}: {exc} ({frame.filename}:{frame.lineno})",
                            fix="report this as an alignguard bug, with the spec and model file")]


def check(spec: Spec | dict | str | Path, model, *, example_batch=None, loss_terms=None) -> Report:
    """Public API: check `model` against `spec` and return the Report.

    spec: a Spec, a dict of the same keys (validated by Spec.model_validate) or a YAML file path.
    model: a model file path (build_model, example_batch, loss_terms inside), or a live nn.Module,
    with `example_batch` (a dict, or (batch_size, seed) -> dict) and, when the spec has losses or
    gradients, `loss_terms` ((model, batch, outputs, step) -> dict of scalar terms)."""
    spec_path = None
    if isinstance(spec, dict):
        spec, spec_path = Spec.from_dict(spec), "<dict>"
    if isinstance(model, (str, Path)):
        if example_batch is not None or loss_terms is not None:
            raise AlignguardError("example_batch and loss_terms go with an in-memory model, not a model file",
                                  fix="define them in the model file, or pass the nn.Module itself as model")
        return run_check(spec, model, spec_path=spec_path)
    if not isinstance(spec, Spec):
        from alignguard.spec.loader import load_spec

        spec_path = str(spec)
        spec = load_spec(spec)
    return check_module(spec, model, example_batch, loss_terms, spec_path=spec_path or "<spec>")


def applicable_check_ids(spec: Spec) -> list[str]:
    """The ids of every check that applies to `spec`, in report order (imports the checks, and torch)."""
    return [check_id for cls in registered_checks() if cls().applies(spec) for check_id in cls.ids]


def check_module(spec: Spec, model, example_batch, loss_terms=None, spec_path: str = "<spec>") -> Report:
    """Check a live nn.Module (a training script's, a LightningModule's). The module is left as it
    was: parameters, buffers, gradients, train/eval mode and the global RNG are restored afterwards."""
    from alignguard.modelfile.inmemory import in_memory_model_file

    import torch

    if not isinstance(model, torch.nn.Module):
        raise AlignguardError(f"model must be a torch.nn.Module or a model file path, not {type(model).__name__}",
                              fix="pass the module instance, or the path of a file defining build_model()")
    model_file = in_memory_model_file(model, example_batch, loss_terms)
    saved = {name: value.detach().clone() for name, value in model.state_dict(keep_vars=True).items()}
    grads = {name: (p.grad.clone() if p.grad is not None else None) for name, p in model.named_parameters()}
    modes = {name: module.training for name, module in model.named_modules()}
    try:
        with torch.random.fork_rng():
            return check_model_file(spec, model_file, spec_path=spec_path)
    finally:
        with torch.no_grad():
            for name, value in model.state_dict(keep_vars=True).items():
                if name in saved:
                    value.copy_(saved[name])
        for name, parameter in model.named_parameters():
            parameter.grad = grads.get(name)
        for name, module in model.named_modules():
            module.training = modes.get(name, module.training)
