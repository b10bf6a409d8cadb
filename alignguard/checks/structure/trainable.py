"""Which graph nodes training can move: those a trainable parameter the design does not freeze reaches.

A parameter is pinned when the model sets `requires_grad=False` on it or the spec's `gradients.frozen`
names it (a component or a parameter pattern: the design says it does not train, and params.frozen
holds the model to that). A value computed from pinned parameters and inputs only keeps its function
of the inputs through training, so a symmetry that has to move it is no live gauge.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from alignguard.checks.context import CheckContext


@dataclass
class Trainability:
    movable: np.ndarray  # over graph.index.names: a trainable, non-frozen parameter reaches the node
    holders: dict[int, tuple[str, ...]]  # position of a param node or a module with weights -> its parameters
    frozen_by: dict[str, str]  # pinned parameter -> the gradients.frozen entry naming it, or "" (requires_grad)

    def can_move(self, context: CheckContext, node: str) -> bool:
        return bool(self.movable[context.graph.index.positions([node])[0]])

    def why_pinned(self, context: CheckContext, node: str) -> str:
        """What holds the node, to follow "pinned by": `frozen bias_model (gradients.frozen)`,
        `bias_model (requires_grad=False)`, or `its inputs alone (it reads no parameter)`."""
        index = context.graph.index
        upstream = index.reach(index.positions([node]), reverse=True)
        params = sorted({p for position, names in self.holders.items() if upstream[position] for p in names})
        if not params:
            return "its inputs alone (it reads no parameter)"
        by_spec = sorted({self.frozen_by[p] for p in params if self.frozen_by.get(p)})
        rest = [p for p in params if not self.frozen_by.get(p)]
        reasons = [f"frozen {', '.join(by_spec)} (gradients.frozen)"] if by_spec else []
        if rest:
            owner = os.path.commonprefix([p.split(".") for p in rest])
            reasons.append(f"{'.'.join(owner) or ', '.join(rest[:3])} (requires_grad=False)")
        return "; ".join(reasons)


def trainability(context: CheckContext) -> Trainability:
    return context.memo("trainability", lambda: _trainability(context))


def _trainability(context: CheckContext) -> Trainability:
    from alignguard.checks.modules import frozen_parameters

    graph, model = context.graph, context.model
    frozen_by = frozen_parameters(context.spec, model)
    parameters = dict(model.named_parameters())
    for name, parameter in parameters.items():
        if not parameter.requires_grad:
            frozen_by.setdefault(name, "")
    holders: dict[int, tuple[str, ...]] = {}
    for position, node in enumerate(graph.index.names):
        held = _parameters_held(model, graph.node(node), parameters)
        if held:
            holders[position] = held
    sources = np.array([p for p, names in holders.items() if any(n not in frozen_by for n in names)], dtype=np.int64)
    return Trainability(graph.index.reach(sources), holders, frozen_by)


def _parameters_held(model, data: dict, parameters: dict) -> tuple[str, ...]:
    """The parameters a param node reads or a module call holds (every capture names the module by path)."""
    target = data.get("target")
    if "learned" not in data or not isinstance(target, str):
        return ()
    if data.get("kind") == "param":
        return (target,) if target in parameters else ()
    try:
        module = model.get_submodule(target)
    except (AttributeError, TypeError):
        return ()
    return tuple(f"{target}.{name}" if target else name for name, _ in module.named_parameters())
