"""Component bypassed: the module still exists and is still called, but its output is its input
(where the shapes allow) or a constant (its mean output on the example batch). Its parameters
stay in place, so only evidence that they shape the prediction can tell.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterator

import torch

from alignguard.mutate.fx_edit import install_forward
from alignguard.mutate.mutant import Mutant
from alignguard.mutate.operators import operator
from alignguard.mutate.operators._common import component_of

if TYPE_CHECKING:
    from alignguard.mutate.analysis import ModelAnalysis, ModuleSample

CONSTANT = "mutant_constant_{}"
APPLIES_TO = "a spec component or direct child module called on the example batch"


def _tensor_args(sample: "ModuleSample") -> list[torch.Tensor]:
    return [a for a in sample.args if isinstance(a, torch.Tensor)]


def _rule(analysis: "ModelAnalysis", path: str) -> str:
    name = component_of(path, analysis)
    if name is None or analysis.spec.components[name].module != path:
        return (f"declare a component for module '{path}' with the symbols it must `reach`, and name it in a "
                "loss's `reaches`: a bypassed module gets no gradient")
    losses = [k for k, loss in analysis.spec.losses.items() if name in loss.reaches]
    if not losses:
        return f"name component '{name}' in a loss's `reaches` (e.g. `losses.<main>.reaches: [{name}]`)"
    return (f"component '{name}' is in `reaches` of {', '.join(losses)}: loss.reaches or params.dead must fail "
            "when its parameters get no gradient; report the gradient check")


def _replace_forward(path: str, make: Callable[[torch.nn.Module], Callable], tag: str):
    def edit(model: torch.nn.Module) -> None:
        module = model.get_submodule(path)
        forward = make(module)
        install_forward(module, forward, forward, tag)

    return edit


def _identity(module: torch.nn.Module) -> Callable:
    def forward(self, *args, **kwargs):
        return next(a for a in args if isinstance(a, torch.Tensor))

    return forward


def _constant_structure(output: Any, batch: int, constants: list[torch.Tensor]) -> Any:
    """The output's structure with each tensor replaced by a template (shape, batched?)."""
    if isinstance(output, torch.Tensor):
        batched = output.dim() >= 1 and output.shape[0] == batch
        constants.append((output.float().mean(0) if batched else output).detach().to(output.dtype))
        return ("tensor", len(constants) - 1, batched)
    if isinstance(output, (tuple, list)):
        return (type(output), [_constant_structure(o, batch, constants) for o in output])
    if isinstance(output, dict):
        return (dict, {k: _constant_structure(v, batch, constants) for k, v in output.items()})
    raise TypeError(type(output).__name__)


def _constant(sample: "ModuleSample") -> Callable[[torch.nn.Module], Callable] | None:
    batch = _tensor_args(sample)[0].shape[0]
    constants: list[torch.Tensor] = []
    try:
        structure = _constant_structure(sample.output, batch, constants)
    except TypeError:
        return None
    shapes = [tuple(c.shape) for c in constants]

    def make(module: torch.nn.Module) -> Callable:
        for i, value in enumerate(constants):
            module.register_buffer(CONSTANT.format(i), value.clone(), persistent=False)

        def build(self, template, size):
            if template[0] == "tensor":
                _, i, batched = template
                value = getattr(self, CONSTANT.format(i))
                return value.unsqueeze(0).expand(size, *shapes[i]) if batched else value
            kind, items = template
            if kind is dict:
                return {k: build(self, v, size) for k, v in items.items()}
            return kind(build(self, v, size) for v in items)

        def forward(self, *args, **kwargs):
            size = next(a for a in args if isinstance(a, torch.Tensor)).shape[0]
            return build(self, structure, size)

        return forward

    return make


@operator("component.identity", "a component's output is replaced by its input",
          "a spec component or direct child whose output has the shape of its one tensor input", needs_graph=False)
def identity(analysis: "ModelAnalysis") -> Iterator[Mutant]:
    for path in analysis.candidate_modules():
        sample = analysis.samples.get(path)
        tensors = _tensor_args(sample) if sample else []
        output = sample.output if sample else None
        if len(tensors) != 1 or not isinstance(output, torch.Tensor) or output.shape != tensors[0].shape:
            continue
        yield Mutant("component.identity", path, f"'{path}' bypassed: its output is its input", _rule(analysis, path),
                     edit_model=_replace_forward(path, _identity, "component.identity"))


@operator("component.constant", "a component's output is replaced by a constant (its mean example output)",
          APPLIES_TO, needs_graph=False)
def constant(analysis: "ModelAnalysis") -> Iterator[Mutant]:
    for path in analysis.candidate_modules():
        sample = analysis.samples.get(path)
        make = _constant(sample) if sample and _tensor_args(sample) else None
        if make is None:
            continue
        yield Mutant("component.constant", path,
                     f"'{path}' bypassed: its output is a constant (its mean output on the example batch)",
                     _rule(analysis, path), edit_model=_replace_forward(path, make, "component.constant"))
