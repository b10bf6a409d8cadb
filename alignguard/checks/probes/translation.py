"""probe.translation_symmetry: shifting U_I and a partner term together must change the logit.

The seed's failure: logit = (U_I − R_E) / T, so (U_I+δ, R_E+δ) predicts exactly the same and the
two "disentangled" energies are not identifiable. The probe sets U_I := U_I⁰ + δ and a partner
P := P⁰ ± δ at once (do-interventions through forward hooks on the modules that return them)
and compares the output with the unshifted one. Partners default to every other tensor forward
returns; one that no submodule produces cannot be shifted and is skipped (named in the result),
but the shifted symbol itself, or a partner the spec lists, failing to resolve fails the probe.
"""

from __future__ import annotations

from typing import Iterable

from alignguard.checks.base import Check
from alignguard.checks.context import CheckContext
from alignguard.checks.probes.support import max_abs_diff, probe_inputs, probe_seed, runner, site_where, user_forward
from alignguard.results import CheckResult, failed, passed
from alignguard.spec.model import SymbolBinding

_PREFIX = "__partner__"  # default partners are forward outputs the spec may not bind


class TranslationProbeCheck(Check):
    ids = ("probe.translation_symmetry",)
    explanations = {
        "probe.translation_symmetry": (
            "Shifts the energy (U_I) by δ together with each partner term (by +δ and by −δ) through forward "
            "hooks on the modules that return them, in eval mode, and checks the output (logit) changes. If "
            "it does not, the head is translation-symmetric, e.g. 'U_I - R_E is translation-symmetric: "
            "(U_I+δ, R_E+δ) gives the same prediction', so the two terms are not identifiable. Partners "
            "default to every other tensor forward returns. It fails, rather than passes, when U_I cannot be "
            "shifted, when shifting U_I alone leaves the output unchanged, or when no partner can be "
            "shifted. Fix: combine the terms multiplicatively, (M(c)·U_I + B(c)) / T(c)."
        )
    }

    def applies(self, spec) -> bool:
        return spec.probes.translation_symmetry is not None

    def run(self, context: CheckContext) -> Iterable[CheckResult]:
        import torch

        from alignguard.probes.runtime import SymbolError, output_tensors

        probe = context.spec.probes.translation_symmetry
        shift, output, delta = probe.shift, probe.output, probe.delta
        element = f"symbol {shift}"
        expected = f"shifting {shift} together with another term changes {output}"
        inputs, seed = probe_inputs(context), probe_seed(context)
        runner_ = runner(context)
        try:
            with torch.no_grad(), user_forward(context):
                base = runner_.run(inputs, seed=seed, observe=[shift, output])
                site = runner_.site(shift, inputs, train=False, seed=seed)
                where = site_where(site)
                alone = runner_.run(inputs, seed=seed, observe=[output],
                                    edits={shift: lambda t: base[shift] + delta})[output]
        except SymbolError as exc:
            yield failed("probe.translation_symmetry", element, expected, f"cannot shift {shift}: {exc}",
                         fix=f"compute {shift} in a submodule (or bind it with `module:`) so the probe can intervene")
            return
        reference = base[output]
        tolerance = probe.tolerance * max(1.0, float(reference.detach().abs().max()))
        moved = max_abs_diff(alone, reference)
        if moved <= tolerance:
            yield failed("probe.translation_symmetry", element, expected,
                         f"shifting {shift} alone by δ={delta:g} leaves {output} unchanged (max |Δ| {moved:.3g}): the "
                         "probe cannot judge", fix=f"make {output} depend on {shift}", where=where)
            return
        local, partners = self._partners(probe, runner_, base)
        tested, skipped, symmetric = {}, {}, []
        with torch.no_grad(), user_forward(context):
            for label, name in partners.items():
                try:
                    values = (output_tensors(base["__outputs__"])[label] if name.startswith(_PREFIX)
                              else local.run(inputs, seed=seed, observe=[name])[name])
                    for sign in (1.0, -1.0):
                        edits = {shift: lambda t: base[shift] + delta,
                                 name: lambda t, v=values, s=sign: v + s * delta}
                        moved_joint = max_abs_diff(local.run(inputs, seed=seed, observe=[output],
                                                             edits=edits)[output], reference)
                        tested[f"{label} {'+' if sign > 0 else '-'}"] = moved_joint
                        if moved_joint <= tolerance:
                            symmetric.append((label, sign, moved_joint))
                except SymbolError as exc:
                    skipped[label] = str(exc)
        yield from self._results(probe, element, expected, where, tested, skipped, symmetric, moved)

    def _partners(self, probe, runner_, base):
        """(runner, label -> symbol name): the spec's partners, or every other tensor forward returns."""
        from alignguard.probes.runtime import output_tensors

        if probe.partners is not None:
            return runner_, {name: name for name in probe.partners}
        excluded = [base[probe.shift], base[probe.output]]
        keys = [key for key, value in output_tensors(base["__outputs__"]).items()
                if not any(value is other for other in excluded)]
        local = runner_.extended({f"{_PREFIX}{k}": SymbolBinding(output=k) for k in keys})
        return local, {k: f"{_PREFIX}{k}" for k in keys}

    def _results(self, probe, element, expected, where, tested, skipped, symmetric, moved) -> Iterable[CheckResult]:
        shift, output, delta = probe.shift, probe.output, probe.delta
        details = {"delta": delta, "shift_alone": moved, "joint_shift": tested, "skipped": skipped}
        explicit = probe.partners is not None
        for label in skipped if explicit else ():
            yield failed("probe.translation_symmetry", element, f"{expected} ({shift} with {label})",
                         f"cannot shift {label}: {skipped[label]}",
                         fix=f"compute {label} in a submodule (or bind it with `module:`) so the probe can intervene",
                         where=where, details=details)
        if not tested:
            if not explicit:
                yield failed("probe.translation_symmetry", element, expected,
                             "matched nothing: no partner term could be shifted ("
                             + "; ".join(f"{k}: {v}" for k, v in skipped.items()) + ")",
                             fix="list the partner symbols in `probes.translation_symmetry.partners`, bound to "
                             "the modules that produce them", where=where, details=details)
            return
        for label, sign, joint in symmetric:
            op, shifted = ("-", "+δ") if sign > 0 else ("+", "-δ")
            yield failed("probe.translation_symmetry", element, expected,
                         f"{shift} {op} {label} is translation-symmetric: ({shift}+δ, {label}{shifted}) gives the same "
                         f"prediction (δ={delta:g}: max |Δ{output}| {joint:.3g}, against {moved:.3g} for {shift}+δ "
                         "alone), so the two terms are not identifiable",
                         fix=f"combine {shift} with the context multiplicatively, (M(c)·{shift} + B(c)) / T(c), "
                         f"instead of {shift} {op} {label}", where=where, details=details)
        if not symmetric:
            names = sorted({k.rsplit(' ', 1)[0] for k in tested})
            note = f"; skipped (not produced by a submodule): {', '.join(skipped)}" if skipped else ""
            yield passed("probe.translation_symmetry", element, expected,
                         f"(δ={delta:g}) changes {output} with every partner: {', '.join(names)} (smallest max |Δ| "
                         f"{min(tested.values()):.3g}){note}", where=where, details=details)
