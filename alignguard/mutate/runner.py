"""Run every mutant through the checker, one after another, and classify it.

The spec is loaded and the model analysed once. The unmutated model must pass the check first:
otherwise every mutant would be "killed" by findings that have nothing to do with it. Each
mutant then gets a sanity run (forward in train and eval mode, loss_terms, backward) and, if it
runs, the full check. torch's global seed is reset before each build, so a run is reproducible.
"""

from __future__ import annotations

import dataclasses
import functools
import time
import traceback
from fnmatch import fnmatchcase
from typing import Callable

import torch

from alignguard.api import check_model_file
from alignguard.errors import AlignguardError, ExitCode, UsageError
from alignguard.modelfile.loader import ModelFile, forward_inputs
from alignguard.mutate.analysis import ModelAnalysis, analyse
from alignguard.mutate.mutant import Mutant
from alignguard.mutate.operators import Operator, all_operators
from alignguard.mutate.report import Finding, MutantResult, MutationReport, NotApplicable, SkippedOperator
from alignguard.results import Status
from alignguard.spec.model import Spec

Progress = Callable[[int, int, Mutant], None]


def select_operators(patterns: list[str] | None) -> list[Operator]:
    operators = all_operators()
    if not patterns:
        return operators
    unknown = [p for p in patterns if not any(fnmatchcase(op.id, p) for op in operators)]
    if unknown:
        known = ", ".join(op.id for op in operators)
        raise UsageError(f"--operator {', '.join(unknown)} matches no operator",
                         fix=f"use an operator id or glob, e.g. 'noise.*'; known: {known}")
    return [op for op in operators if any(fnmatchcase(op.id, p) for p in patterns)]


def plan(analysis: ModelAnalysis, operators: list[Operator]
         ) -> tuple[list[Mutant], list[SkippedOperator], list[NotApplicable]]:
    """Every mutant the selected operators generate, why the others did not apply, and the targets
    an operator found but left alone because the change would break nothing the spec states."""
    mutants: list[Mutant] = []
    skipped: list[SkippedOperator] = []
    not_applicable: list[NotApplicable] = []
    for op in operators:
        if op.needs_graph and analysis.graph is None:
            skipped.append(SkippedOperator(op.id, f"torch.fx cannot trace the model ({analysis.trace_error})"))
            continue
        try:
            found = list(op.generate(analysis))
        except Exception as exc:  # a bug in an operator must not hide the others
            skipped.append(SkippedOperator(op.id, f"alignguard bug, please report: {_exception_text(exc)}"))
            continue
        if not found:
            skipped.append(SkippedOperator(op.id, f"no target: needs {op.applies_to}"))
        mutants.extend(m for m in found if isinstance(m, Mutant))
        not_applicable.extend(m for m in found if isinstance(m, NotApplicable))
    seen: dict[str, int] = {}
    for mutant in mutants:  # ids must be unique for reports and --operator reruns
        seen[mutant.id] = seen.get(mutant.id, 0) + 1
        if seen[mutant.id] > 1:
            mutant.target += f"#{seen[mutant.id]}"
    return mutants, skipped, not_applicable


def run_mutation(spec: Spec, model_file: ModelFile, spec_path: str = "<spec>", operators: list[str] | None = None,
                 min_kill: float = 1.0, fail_on: str = "error", progress: Progress | None = None) -> MutationReport:
    selected = select_operators(operators)
    model_file = with_cached_batches(model_file)
    clock = time.perf_counter()
    analysis = analyse(spec, model_file)
    seconds = {"analysis": time.perf_counter() - clock}

    clock = time.perf_counter()
    torch.manual_seed(spec.entry_points.seed)
    baseline = check_model_file(spec, model_file, spec_path=spec_path)
    seconds["baseline"] = time.perf_counter() - clock
    if baseline.exit_code(fail_on) is not ExitCode.OK:
        failing = sorted({f"{r.check_id} ({r.element})" for r in baseline.findings(fail_on)}
                         | {f"{r.check_id} ({r.element})" for r in baseline.results if r.status is Status.ERROR})
        raise UsageError(
            f"the unmutated model does not pass the check (exit {int(baseline.exit_code(fail_on))}: "
            f"{', '.join(failing[:6]) or 'no results'}{f' and {len(failing) - 6} more' if len(failing) > 6 else ''}"
            "), so no mutant can be told apart from it",
            where=f"{spec_path} against {model_file.path}",
            fix="run `alignguard check` on the same spec and model, make it pass, then run mutate",
        )

    mutants, skipped, not_applicable = plan(analysis, selected)
    report = MutationReport(spec.name, spec_path, str(model_file.path), min_kill, skipped=skipped,
                            not_applicable=not_applicable, seconds=seconds)
    clock = time.perf_counter()
    for index, mutant in enumerate(mutants):
        if progress:
            progress(index, len(mutants), mutant)
        report.results.append(run_mutant(spec, model_file, mutant, analysis.loss_step, spec_path, fail_on))
    seconds["mutants"] = time.perf_counter() - clock
    seconds["total"] = sum(seconds.values())
    return report


def run_mutant(spec: Spec, model_file: ModelFile, mutant: Mutant, loss_step: int, spec_path: str,
               fail_on: str) -> MutantResult:
    start = time.perf_counter()
    mutated = mutant.model_file(model_file)
    result = MutantResult(mutant.id, mutant.operator, mutant.target, mutant.description, "crashed",
                          suggestion=mutant.suggestion)
    try:
        sanity_run(spec, mutated, loss_step)
    except Exception as exc:  # an invalid mutant, not a finding
        result.detail = _exception_text(exc)
        result.seconds = time.perf_counter() - start
        return result
    torch.manual_seed(spec.entry_points.seed)
    try:
        report = check_model_file(spec, mutated, spec_path=spec_path)
    except AlignguardError as error:
        result.status, result.detail = "error", str(error)
    except Exception as exc:  # a bug in alignguard: say so, keep going with the other mutants
        result.status, result.detail = "error", f"alignguard bug: {_exception_text(exc)}"
    else:
        code = report.exit_code(fail_on)
        findings = report.findings(fail_on)
        result.killed_by = sorted({r.check_id for r in findings})
        result.findings = [Finding(r.check_id, r.element, r.found) for r in findings]
        if code is ExitCode.OK:
            result.status = "survived"
        elif code is ExitCode.FINDINGS:
            result.status = "killed"
        else:
            result.status = "error"
            errors = [r for r in report.results if r.status is Status.ERROR]
            result.detail = "; ".join(f"{r.check_id}: {r.found}" for r in errors) or "the check could not judge it"
    result.seconds = time.perf_counter() - start
    return result


def sanity_run(spec: Spec, model_file: ModelFile, loss_step: int) -> None:
    """Forward (train and eval), loss_terms and backward on one example batch; raises if any fails."""
    torch.manual_seed(spec.entry_points.seed)
    model = model_file.build_model()
    batch = model_file.example_batch(spec.entry_points.batch_size, spec.entry_points.seed)
    inputs = forward_inputs(model, batch)
    model.train()
    outputs = model(**inputs)
    terms = model_file.loss_terms(model, batch, outputs, loss_step)
    if not isinstance(terms, dict) or not terms:
        raise TypeError(f"loss_terms returned {terms!r}, not a non-empty dict of loss terms")
    live = [t for t in terms.values() if isinstance(t, torch.Tensor) and t.requires_grad]
    if live:
        torch.stack([t.reshape(()) for t in live]).sum().backward()
    model.eval()
    with torch.no_grad():
        model(**inputs)


def with_cached_batches(model_file: ModelFile) -> ModelFile:
    """Mutants never change the data: make each example batch once, hand out fresh copies."""
    made: dict[tuple, dict] = {}

    @functools.wraps(model_file.example_batch)  # keeps the signature: a step-dependent example_batch stays one
    def example_batch(batch_size, seed, **at_step):
        key = (batch_size, seed, *sorted(at_step.items()))
        if key not in made:
            made[key] = model_file.example_batch(batch_size, seed, **at_step)
        batch = made[key]
        if not isinstance(batch, dict):
            return batch  # the loader reports the wrong type
        return {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in batch.items()}

    return dataclasses.replace(model_file, example_batch=example_batch)


def _exception_text(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}{where}"
