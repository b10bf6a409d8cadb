"""Context routed into the invariant path: the input of the module that produces z_I (or U_I)
becomes `input + Linear(c)`, so the code is cell-specific and swap invariance is gone.

forward passes c to the model, not to the submodule; the mutated model's forward hands c to the
mutated submodule through a shared slot. Both run inside forward, so a tracer records the data
path c -> Linear -> z_I exactly as if the encoder had been written to take c.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Iterator

import torch

from alignguard.mutate.fx_edit import install_forward
from alignguard.mutate.mutant import Mutant
from alignguard.mutate.operators import operator
from alignguard.mutate.operators._common import suggest

if TYPE_CHECKING:
    from alignguard.mutate.analysis import ModelAnalysis

PROJECTION = "mutant_context_projection"


def _producer(node, analysis: "ModelAnalysis") -> str | None:
    """The outermost submodule whose call returned `node`."""
    paths = [p for p, nodes in analysis.module_outputs.items() if p and node in nodes]
    return min(paths, key=lambda p: p.count("."), default=None)


def _route(path: str, context: str, arg_index: int, in_features: int, out_features: int, tag: str):
    def edit(model: torch.nn.Module) -> None:
        slot: dict[str, object] = {"context": None}
        model_forward = type(model).forward
        signature = inspect.signature(model_forward)

        def forward_sharing_context(self, *args, **kwargs):
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            slot["context"] = bound.arguments.get(context)
            try:
                return model_forward(self, *args, **kwargs)
            finally:
                slot["context"] = None

        install_forward(model, forward_sharing_context, forward_sharing_context, tag)
        module = model.get_submodule(path)
        device = next((p.device for p in module.parameters()), None)
        module.add_module(PROJECTION, torch.nn.Linear(in_features, out_features, device=device))
        module_forward = type(module).forward

        def forward_seeing_context(self, *args, **kwargs):
            c = slot["context"]  # None when the submodule is called directly, not from forward
            if c is not None:
                args = list(args)
                h = args[arg_index]
                projected = getattr(self, PROJECTION)(c.reshape(c.shape[0], -1).to(h.dtype))
                args[arg_index] = h + projected.reshape_as(h)
            return module_forward(self, *args, **kwargs)

        install_forward(module, forward_seeing_context, forward_seeing_context, tag)

    return edit


@operator("flow.context_into_invariant", "the context input is added (through a Linear) to the input of the "
          "module that produces an invariant symbol",
          "a symbol that depends on invariant inputs only, returned by a submodule that takes a tensor")
def context_into_invariant(analysis: "ModelAnalysis") -> Iterator[Mutant]:
    context = next(iter(analysis.spec.input_with_role("context")), None)
    c = analysis.inputs.get(context)
    if not isinstance(c, torch.Tensor) or c.dim() < 1:
        return
    invariant = {s: n for s, n in analysis.symbol_nodes.items() if analysis.only_from(n, "invariant")}
    producers: dict[str, list[str]] = {}
    for symbol, node in invariant.items():
        path = _producer(node, analysis)
        if path is not None:
            producers.setdefault(path, []).append(symbol)
    for path in producers:
        sample = analysis.samples.get(path)
        tensors = [i for i, a in enumerate(sample.args) if isinstance(a, torch.Tensor)] if sample else []
        if not tensors or sample.args[tensors[0]].dim() < 1:
            continue
        h = sample.args[tensors[0]]
        reached = [s for s, n in invariant.items()
                   if analysis.module_outputs[path] & ({n} | analysis.ancestors(n))]
        first = reached[0]
        yield Mutant(
            "flow.context_into_invariant", path,
            f"{context} routed into '{path}': its input becomes input + Linear({context}), so {context} reaches "
            f"{', '.join(reached)}",
            suggest(any(r.source == context and r.target in reached for r in analysis.spec.flow.forbidden),
                    f"`flow.forbidden: [{{from: {context}, to: {first}}}]` and `probes.swap_invariance: {{symbol: "
                    f"{first}, context: {context}}}`: the same x under another {context} must give the same {first}",
                    f"`flow.forbidden` from {context} to {', '.join(reached)}, yet a Linear({context}) added to the "
                    f"input of '{path}' passed: flow.forbidden must follow every data edge into {first}"),
            edit_model=_route(path, context, tensors[0], c[0].numel(), h[0].numel(), "flow.context_into_invariant"),
        )
