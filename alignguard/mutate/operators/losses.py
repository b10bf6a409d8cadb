"""Loss operators: a term detached, weighted 0, dropped, gradient-reversed, or an extra
adversarial term behind a gradient reversal (the legacy domain loss)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterator

import torch
import torch.nn.functional as F

from alignguard.mutate.mutant import Mutant
from alignguard.mutate.operators import operator

if TYPE_CHECKING:
    from alignguard.mutate.analysis import ModelAnalysis

ADVERSARY = "mutant_adversary"
ADVERSARIAL_TERM = "adversarial"
APPLIES_TO = "a term of the dict loss_terms returns (two or more to drop one)"


class GradientReversal(torch.autograd.Function):
    """Identity forward, negated gradient backward (as in domain-adversarial training)."""

    @staticmethod
    def forward(ctx, value: torch.Tensor) -> torch.Tensor:
        return value.view_as(value)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return -grad


def _term_edit(key: str, change: Callable[[dict, str], None]):
    def edit(terms: dict, model, batch, outputs, step) -> dict:
        if key in terms:
            change(terms, key)
        return terms

    return edit


def _spec_rule(analysis: "ModelAnalysis", key: str) -> str:
    if key not in analysis.spec.losses:
        return f"declare `losses.{key}` with `min_share` > 0 and the components it must `reach`"
    return f"`losses.{key}`, yet a term with no gradient passed: loss.alive must fail a detached or zero-weight term"


def _dropped_rule(analysis: "ModelAnalysis", key: str) -> str:
    if key not in analysis.spec.losses:
        return f"declare `losses.{key}`: loss.present fails when loss_terms no longer returns it"
    return f"`losses.{key}`, yet loss_terms without it passed: loss.present must fail a missing declared term"


def _per_term(analysis: "ModelAnalysis", op_id: str, verb: str, change, rule) -> Iterator[Mutant]:
    if change is _drop and len(analysis.loss_keys) < 2:
        return  # without its only term loss_terms returns {}: not a model file, so not a mutant
    for key in analysis.loss_keys:
        yield Mutant(op_id, f"loss {key}", f"loss '{key}' {verb}", rule(analysis, key),
                     edit_losses=_term_edit(key, change))


def _detach(terms: dict, key: str) -> None:
    terms[key] = terms[key].detach()


def _zero(terms: dict, key: str) -> None:
    terms[key] = terms[key] * 0.0


def _drop(terms: dict, key: str) -> None:
    del terms[key]


def _reverse(terms: dict, key: str) -> None:
    terms[key] = GradientReversal.apply(terms[key])


@operator("loss.detached", "a loss term is detached from the graph (no gradient)", APPLIES_TO, needs_graph=False)
def detached(analysis: "ModelAnalysis") -> Iterator[Mutant]:
    return _per_term(analysis, "loss.detached", "detached (value kept, no gradient)", _detach, _spec_rule)


@operator("loss.zero_weight", "a loss term is multiplied by 0", APPLIES_TO, needs_graph=False)
def zero_weight(analysis: "ModelAnalysis") -> Iterator[Mutant]:
    return _per_term(analysis, "loss.zero_weight", "weighted 0", _zero, _spec_rule)


@operator("loss.dropped", "a loss term is removed from the dict", APPLIES_TO, needs_graph=False)
def dropped(analysis: "ModelAnalysis") -> Iterator[Mutant]:
    return _per_term(analysis, "loss.dropped", "dropped from the loss dict", _drop, _dropped_rule)


def _reversed_rule(analysis: "ModelAnalysis", key: str) -> str:
    descent = (f"a descent check: the finite difference of L_{key} along its autograd gradient g must equal +|g| "
               "(a reversed gradient gives -|g|)")
    declared = analysis.spec.losses.get(key)
    if declared is None or declared.min_share <= 0:
        return (f"`losses.{key}.min_share` > 0 catches a reversed term only while it is aligned with the total "
                f"gradient; the rule that always does is {descent}")
    return (f"`losses.{key}.min_share` {declared.min_share:g}, yet the reversed term passed: a share cannot tell "
            "a reversed term that is near-orthogonal to the total (or that dominates it, flipping the total too); "
            f"it needs {descent}")


@operator("loss.reversed", "a loss term's gradient is reversed (value kept): it is maximised, not minimised",
          APPLIES_TO, needs_graph=False)
def reversed_term(analysis: "ModelAnalysis") -> Iterator[Mutant]:
    return _per_term(analysis, "loss.reversed", "gradient-reversed (the optimiser now maximises it)",
                     _reverse, _reversed_rule)


@operator("loss.adversarial", "an extra term predicts the context from the invariant code through a gradient "
          "reversal (the legacy domain-adversarial loss)",
          "an invariant-only symbol returned by forward and a context input", needs_graph=False)
def adversarial(analysis: "ModelAnalysis") -> Iterator[Mutant]:
    context = next(iter(analysis.spec.input_with_role("context")), None)
    c = analysis.inputs.get(context)
    outputs = analysis.outputs if isinstance(analysis.outputs, dict) else {}
    symbol = _invariant_output(analysis, outputs)
    if symbol is None or not isinstance(c, torch.Tensor) or c.dim() < 1 or ADVERSARIAL_TERM in analysis.loss_keys:
        return
    key = analysis.spec.symbols[symbol].output
    z = outputs[key]
    in_features, out_features = z[0].numel(), c[0].numel()

    def add_adversary(model) -> None:
        device = next((p.device for p in model.parameters()), None)
        model.add_module(ADVERSARY, torch.nn.Linear(in_features, out_features, device=device))

    def add_term(terms: dict, model, batch, outputs, step) -> dict:
        code = GradientReversal.apply(outputs[key].reshape(len(outputs[key]), -1))
        target = batch[context].reshape(len(code), -1).to(code.dtype)
        terms[ADVERSARIAL_TERM] = F.mse_loss(getattr(model, ADVERSARY)(code), target)
        return terms

    yield Mutant(
        "loss.adversarial", f"loss {ADVERSARIAL_TERM}",
        f"extra loss '{ADVERSARIAL_TERM}': predicts {context} from gradient-reversed {symbol} (domain-adversarial)",
        ("`gradients.unexpected_losses` is error, yet an extra term passed: loss.present must fail every term the "
         "design does not name" if analysis.spec.gradients.unexpected_losses == "error" else
         "`gradients.unexpected_losses: error`: a term the design does not name fails"),
        edit_model=add_adversary, edit_losses=add_term,
    )


def _invariant_output(analysis: "ModelAnalysis", outputs: dict) -> str | None:
    """The invariant symbol the design protects (swap probe, else noise, else any), if forward returns it."""
    spec = analysis.spec
    preferred = [p.symbol for p in (spec.probes.swap_invariance, spec.probes.noise) if p is not None]
    names = [*preferred, *(s for s, n in analysis.symbol_nodes.items() if analysis.only_from(n, "invariant"))]
    for name in names:
        binding = spec.symbols.get(name)
        if binding is not None and binding.output in outputs and isinstance(outputs[binding.output], torch.Tensor):
            return name
    return None
