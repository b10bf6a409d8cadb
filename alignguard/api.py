"""The use cases, and the public Python API: what cli/, train/ and mutate/ call.

* `open_context`: a built, seeded model and its spec, ready for checks (the one place seeding
  happens, so the same spec and model give the same verdict every run);
* `run_check` / `check_model_file` / `run_checks`: spec + model file -> Report;
* `graph_view`: the captured graph annotated with what the structural checks found;
* `infer_starter_spec` (`survey_model`, then `starter_text`): what `alignguard init` measures on a
  model, as a starter spec.
"""

from __future__ import annotations

import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

from alignguard.errors import AlignguardError
from alignguard.results import CheckResult, Report, Status
from alignguard.spec.model import Spec

if TYPE_CHECKING:
    from alignguard.checks.base import Check
    from alignguard.checks.context import CheckContext
    from alignguard.modelfile.loader import ModelFile
    from alignguard.report.graph_view import View
    from alignguard.spec.starter import Survey


def load(spec: Spec | str | Path, model_path: str | Path,
         timings: dict[str, float] | None = None) -> tuple[Spec, "ModelFile"]:
    """The spec (loaded unless given) and the model file it names the entry points of."""
    from alignguard.modelfile.loader import load_model_file

    timings = {} if timings is None else timings
    start = time.perf_counter()
    if not isinstance(spec, Spec):
        spec = read_spec(spec)
    timings["load spec"] = time.perf_counter() - start
    start = time.perf_counter()
    model_file = load_model_file(model_path, spec.entry_points)  # imports torch and the model file
    timings["import model file"] = time.perf_counter() - start
    return spec, model_file


def read_spec(path: str | Path) -> Spec:
    """The spec file, parsed and validated. No user code runs here (YAML tags and formulas are never
    executed), so the CLI reads the spec itself while its model worker imports torch, and hands the
    worker the Spec."""
    from alignguard.spec.loader import load_spec

    return load_spec(path)


def open_context(spec: Spec, model_file: "ModelFile", timings: dict[str, float] | None = None) -> "CheckContext":
    """Seed torch with the spec's seed, build the model once, and wrap both for the checks."""
    import torch

    from alignguard.checks.context import CheckContext

    start = time.perf_counter()
    torch.manual_seed(spec.entry_points.seed)  # the same spec and model give the same verdict every run
    model = model_file.build()
    timings = {**(timings or {}), "build model": time.perf_counter() - start}
    return CheckContext(spec=spec, model_file=model_file, model=model, timings=timings)


def run_check(spec: Spec | str | Path, model_path: str | Path, spec_path: str | None = None) -> Report:
    """Load the spec and model file, run every catalogued check that applies, return the report.

    Raises AlignguardError for input the tool cannot judge (bad spec, model file, capture).
    """
    timings: dict[str, float] = {}
    if not isinstance(spec, Spec):
        spec_path = spec_path or str(spec)
    loaded, model_file = load(spec, model_path, timings)
    return check_model_file(loaded, model_file, spec_path=spec_path or "<spec>", timings=timings)


def check_model_file(
    spec: Spec, model_file: "ModelFile", spec_path: str = "<spec>", timings: dict[str, float] | None = None
) -> Report:
    """Run the checks on an already-loaded ModelFile (mutation testing passes altered ones)."""
    return run_checks(open_context(spec, model_file, timings), spec_path=spec_path)


def run_checks(context: "CheckContext", spec_path: str = "<spec>",
               checks: "tuple[type[Check], ...] | None" = None) -> Report:
    """Run `checks` (default: the whole catalogue, in report order) that apply, then the spec's
    severities and waivers."""
    from alignguard.checks.catalogue import CHECKS, EXECUTION
    from alignguard.checks.waivers import apply_waivers

    spec = context.spec
    selected = CHECKS if checks is None else checks
    # Run in the catalogue's execution order (it shares the probes' forwards), report in the given order.
    ordered = sorted(selected, key=lambda c: EXECUTION.index(c) if c in EXECUTION else len(EXECUTION))
    by_check: dict[type, list[CheckResult]] = {}
    for check_class in ordered:
        check = check_class()
        if not check.applies(spec):
            continue
        with context.timed(check_class.ids[0].split(".")[0]):
            by_check[check_class] = _run_one(check, context)
    results: list[CheckResult] = [r for c in selected for r in by_check.get(c, [])]
    results = [r.with_(severity=spec.severity_of(r.check_id, r.severity)) for r in results]
    if checks is None:
        results = apply_waivers(spec, results)
    results = [r.with_(spec_line=spec.line_of_element(r.element)) for r in results]
    graph = context.captured_graph
    return Report(
        spec_name=spec.name,
        spec_path=spec_path,
        model_path=str(context.model_file.path),
        results=results,
        capture=graph.capture if graph else "",
        capture_note=graph.capture_note if graph else "",
        timings=context.timings,
    )


def _run_one(check: "Check", context: "CheckContext") -> list[CheckResult]:
    """The check's results, each carrying the wall time from the previous one (checks yield as they judge,
    so this is the time spent on that element, including any capture or measurement it was first to need)."""
    from alignguard.checks.running import settle

    results: list[CheckResult] = []
    try:
        clock = time.perf_counter()
        for result in check.run(context):
            now = time.perf_counter()
            results.append(result.with_(seconds=now - clock))
            clock = now
        if results:  # what the check did after its last result (closing a probe, a summary) is still its time
            results[-1] = results[-1].with_(seconds=results[-1].seconds + time.perf_counter() - clock)
        return results
    except AlignguardError:
        raise
    except Exception as exc:  # a bug in a check must not hide the other results
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        return [CheckResult(check.ids[0], "alignguard", Status.ERROR, "the check runs",
                            f"{type(exc).__name__}: {exc} ({frame.filename}:{frame.lineno})",
                            fix="report this as an alignguard bug, with the spec and model file")]
    finally:
        settle(context)  # the runner's runs leave the model in their mode; the next check finds it as built


def graph_view(spec: Spec | str | Path, model_path: str | Path) -> "View":
    """The captured graph marked with the spec's symbols, components and formulas, and what the
    flow, formula and pattern checks found (`alignguard graph`)."""
    from alignguard.checks.structure.flow import FlowCheck
    from alignguard.checks.structure.formula import FormulaCheck
    from alignguard.checks.structure.patterns import PatternCheck
    from alignguard.report.graph_view import build_view

    loaded, model_file = load(spec, model_path)
    context = open_context(loaded, model_file)
    report = run_checks(context, checks=(FlowCheck, FormulaCheck, PatternCheck))
    from alignguard.checks.structure.symbols import binding_shape

    shapes = {name: binding_shape(context, name) for name in loaded.symbols}
    return build_view(loaded, context.graph, report.results, shapes)


def infer_starter_spec(model_path: str | Path, name: str | None = None) -> tuple["Survey", str]:
    """What `alignguard init` measures on a model file, and the starter spec written from it."""
    survey = survey_model(model_path)
    return survey, starter_text(survey, name or Path(model_path).stem)


def starter_text(survey: "Survey", model_name: str) -> str:
    """The starter spec written from a survey (no model code runs: `init` renders it in the CLI's own
    process, whose YAML and spec modules were imported while the worker measured)."""
    from alignguard.spec.starter import render_spec

    start = time.perf_counter()
    text = render_spec(survey, model_name=model_name)
    survey.timings["render spec"] = time.perf_counter() - start
    return text


def survey_model(model_path: str | Path) -> "Survey":
    """Measure the model: inputs, outputs, top-level modules, loss terms (captures and differentiates)."""
    from alignguard.modelfile.cost import forward_flops_per_row
    from alignguard.modelfile.loader import forward_arguments, load_model_file
    from alignguard.spec.model import EntryPoints, InputSpec
    from alignguard.spec.starter import Survey, guess_role, measurement_batch_size, symbol_name

    entry = EntryPoints()
    model_file = load_model_file(model_path, entry)
    spec = Spec(version=1, name="init", inputs={})
    context = open_context(spec, model_file)
    model = context.model
    # a costly forward gets a smaller batch (counted, not timed), which the starter then names
    with context.timed("cost probe"):
        flops = forward_flops_per_row(model_file, model, entry.seed, entry.step)
    entry = EntryPoints(batch_size=measurement_batch_size(flops, entry.batch_size))
    inputs = {name: guess_role(name) for name in forward_arguments(model)}
    context.spec = Spec(version=1, name="init", entry_points=entry,  # type: ignore[arg-type]
                        inputs={n: InputSpec(role=r) for n, r in inputs.items()})
    graph = context.graph
    symbols = {symbol_name(key): key for key in graph.outputs}
    survey = Survey(inputs, symbols, {}, capture=graph.capture, batches=spec.gradients.batches,
                    batch_size=entry.batch_size, flops_per_row=flops)
    targets = {name: graph.outputs[key] for name, key in symbols.items()}
    called = graph.called_modules()
    for name, module in model.named_children():
        if not any(True for _ in module.parameters()):
            survey.skipped_modules.append(f"{name} (no parameters)")
            continue
        if name not in called:
            survey.skipped_modules.append(f"{name} (built but never called in forward)")
            continue
        produced = {n for call in graph.module_outputs(name) for n in call.outputs if n}
        produced |= set(graph.nodes_in_scope(name))
        reached = graph.reachable(produced)
        survey.components[name] = [s for s, node in targets.items() if node in reached]
        survey.noisy[name] = any(graph.node(n).get("kind") == "random" for n in graph.nodes_in_scope(name))
    for name, node in graph.inputs.items():
        reached = graph.reachable([node])
        survey.input_reach[name] = [s for s, target in targets.items() if target in reached]
    _survey_losses(survey, context)
    for key, seconds in context.timings.items():  # memo keys name their arguments: one row per phase
        phase = {"batch": "example batches"}.get(key.split(":")[0], key.split(":")[0])
        survey.timings[phase] = survey.timings.get(phase, 0.0) + seconds
    return survey


def _survey_losses(survey: "Survey", context: "CheckContext") -> None:
    """Each term's first alive step among PROBE_STEPS, its share there and the components it reaches."""
    from alignguard.checks.gradients.measurement import measurement_at
    from alignguard.spec.starter import PROBE_STEPS, LossSurvey

    # Step 0 first, with the term names of every probe step from the same forwards: when every
    # term is alive there, the later steps' backward passes (3 of 4) are never paid for.
    first, seen = measurement_at(context, [PROBE_STEPS[0]], names_at=list(PROBE_STEPS[1:]))
    steps = dict(first)
    names = list(dict.fromkeys([*first[PROBE_STEPS[0]].names, *sorted(seen)]))
    if not names:
        return
    if not all(n in steps[PROBE_STEPS[0]].names and steps[PROBE_STEPS[0]].status(n) == "alive" for n in names):
        steps.update(measurement_at(context, list(PROBE_STEPS[1:]))[0])
        names = list(dict.fromkeys(n for m in steps.values() for n in m.names))
    everyone = next((s for s in PROBE_STEPS if all(steps[s].status(n) == "alive" for n in names)), None)
    for name in names:
        step = everyone if everyone is not None else next(
            (s for s in PROBE_STEPS if steps[s].status(name) == "alive"), None)
        at = steps[step if step is not None else PROBE_STEPS[0]]
        norms = at.param_norms(name)
        reaches = [c for c in survey.components if any(v > 0 for p, v in norms.items() if p.startswith(c + "."))]
        share = at.stats().shares.get(name) if step is not None else None
        survey.losses[name] = LossSurvey(step, share, at.status(name), reaches)
    final = steps[everyone if everyone is not None else max(l.step or 0 for l in survey.losses.values())]
    stats = final.stats()
    cosines = [c for c in stats.cosines.values() if c is not None]
    survey.conflict = {"min_cosine": min(cosines) if cosines else None, "net_ratio": stats.net_ratio}
    survey.dead_params = [p for p in final.param_names if all(final.param_norms(n)[p] == 0 for n in final.names)]


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
    from alignguard.checks.catalogue import CHECKS

    return [check_id for cls in CHECKS if cls().applies(spec) for check_id in cls.ids]


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
