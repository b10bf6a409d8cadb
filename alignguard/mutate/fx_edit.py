"""Rewrite the code of one module's own forward with torch.fx, leaving every other module intact.

A mutation edits the module that owns the target op (e.g. `modulator` for the softplus of M):
that module alone is traced with every child kept as a `call_module` node, the graph is edited,
compiled, and installed as the forward of that *instance* (through a per-instance subclass, so
its other methods, parameters and module path stay as they were). The checker's tracer then
still descends into every child with its scope, and the probes run the edited code for real.

`if self.training:` is frozen by tracing, so the module is traced twice, in train and in eval
mode; an edit applies to each mode where its target exists and the other mode keeps the
original forward.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import torch
import torch.fx as fx

from alignguard.mutate.tracing import trace_own_code


class EditNotApplicable(Exception):
    """The edit's target is not in the module's code (it changed since the plan was made)."""


def compile_forward(module: torch.nn.Module, graph: fx.Graph) -> Callable[..., Any]:
    """The graph as a plain `forward(self, ...)` function that works on `module` itself."""
    graph.lint()
    return type(fx.GraphModule(module, graph)).forward


GraphEdit = Callable[[fx.Graph, torch.nn.Module], bool]  # edits in place; False if its target is absent


def edit_module(model: torch.nn.Module, path: str, edit: GraphEdit, tag: str,
                eval_uses_train_code: bool = False) -> None:
    """Apply `edit` to the own code of the module at `path`, in train and eval mode.

    With `eval_uses_train_code`, eval mode runs the *unedited* train-mode code (e.g. noise that
    is drawn only in eval). Raises EditNotApplicable when the target is in neither mode.
    """
    module = model.get_submodule(path)
    original = type(module).forward
    train_graph = trace_own_code(module, training=True)
    if eval_uses_train_code:
        eval_forward = compile_forward(module, trace_own_code(module, training=True))
        if not edit(train_graph, module):
            raise EditNotApplicable(f"{tag}: target not found in the train-mode code of '{path or 'model'}'")
        install_forward(module, compile_forward(module, train_graph), eval_forward, tag)
        return
    eval_graph = trace_own_code(module, training=False)
    in_train, in_eval = edit(train_graph, module), edit(eval_graph, module)
    if not (in_train or in_eval):
        raise EditNotApplicable(f"{tag}: target not found in the code of '{path or 'model'}'")
    install_forward(module,
                    compile_forward(module, train_graph) if in_train else original,
                    compile_forward(module, eval_graph) if in_eval else original, tag)


def install_forward(module: torch.nn.Module, train_forward: Callable, eval_forward: Callable, tag: str) -> None:
    """Give this instance a new forward (train/eval), keeping its class's other behaviour."""
    base = type(module)

    def forward(self, *args, **kwargs):
        return (train_forward if self.training else eval_forward)(self, *args, **kwargs)

    functools.update_wrapper(forward, base.forward)  # keeps forward's signature for loaders and tracers
    # Not in torch.nn's namespace, so tracers step into it (a mutated built-in would stay a leaf).
    module.__class__ = type(base.__name__, (base,), {"forward": forward, "__module__": __name__,
                                                     "alignguard_mutation": tag})
