"""The two fx traces mutation needs, and how a node of one is found again in the other.

* `trace_model`: the whole model, through user modules, with module scopes and source lines
  (the analysis finds targets there).
* `trace_own_code`: one module's own forward, every submodule call kept as a `call_module` node
  (an edit rewrites exactly that code).

Both trace random draws with a concrete shape (`torch.randn(4, 16)`) as calls: plain fx would
run them once and bake the result into the graph, so a rewritten module would replay one
frozen draw forever.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.fx as fx
from torch.fx.node import _get_qualified_name

_FRAME = re.compile(r'File "([^"]+)", line (\d+)')
_SKIP_DIRS = (torch.__path__[0], str(Path(__file__).resolve().parents[1]))
_RANDOM_FACTORIES = ("randn", "rand", "randint", "randperm", "normal")


class _Tracer(fx.Tracer):
    record_stack_traces = True

    def __init__(self, own_code: bool) -> None:
        super().__init__()
        self.own_code = own_code
        self.calls: list[tuple[str, Any]] = []  # (module path, what the call returned)

    def is_leaf_module(self, m: torch.nn.Module, module_qualified_name: str) -> bool:
        return self.own_code or super().is_leaf_module(m, module_qualified_name)

    def call_module(self, m, forward, args, kwargs):
        output = super().call_module(m, forward, args, kwargs)
        self.calls.append((self.path_of_module(m), output))
        return output

    def trace(self, root, concrete_args=None):
        with _random_factories_traced(self):
            return super().trace(root, concrete_args)


@contextmanager
def _random_factories_traced(tracer: fx.Tracer) -> Iterator[None]:
    originals = {name: getattr(torch, name) for name in _RANDOM_FACTORIES}

    def traced(function):
        def call(*args, **kwargs):
            return tracer.create_proxy("call_function", function, args, kwargs)

        return call

    try:
        for name, function in originals.items():
            setattr(torch, name, traced(function))
        yield
    finally:
        for name, function in originals.items():
            setattr(torch, name, function)


def _traced(module: torch.nn.Module, training: bool, own_code: bool) -> tuple[fx.Graph, list]:
    modes = {m: m.training for m in module.modules()}
    module.train(training)
    tracer = _Tracer(own_code)
    try:
        return tracer.trace(module), tracer.calls
    finally:
        for m, mode in modes.items():
            m.training = mode


def trace_model(model: torch.nn.Module) -> tuple[fx.Graph, list[tuple[str, Any]]]:
    """The whole model in train mode, through user modules; raises whatever fx raises."""
    return _traced(model, training=True, own_code=False)


def trace_own_code(module: torch.nn.Module, training: bool) -> fx.Graph:
    return _traced(module, training, own_code=True)[0]


@dataclass(frozen=True)
class NodeRef:
    """An fx node identified so that it can be found again in another trace of the same code."""

    owner: str  # module path whose own forward computes it ("" = the model)
    op: str  # fx op: call_function, call_method, call_module, get_attr
    target: str  # qualified function, method name, or module/attribute path relative to owner
    line: str | None  # "file:line" of the user code that made it, when known
    occurrence: int  # among nodes of this owner with the same op, target and line

    def label(self) -> str:
        """`owner.op@file:line`, e.g. `bottleneck.randn_like@cmdn.py:110`."""
        name = self.target.rsplit(".", 1)[-1]
        place = f"@{Path(self.line).name}" if self.line else ""
        return f"{self.owner or 'model'}.{name}{place}" + (f"#{self.occurrence}" if self.occurrence else "")


def source_line(node: fx.Node) -> str | None:
    """Innermost frame of user code (not torch, not alignguard) that created the node."""
    frames = [(f, n) for f, n in _FRAME.findall(node.stack_trace or "") if not f.startswith(_SKIP_DIRS)]
    return f"{frames[-1][0]}:{frames[-1][1]}" if frames else None


def target_name(node: fx.Node) -> str:
    return _get_qualified_name(node.target) if node.op == "call_function" else str(node.target)


def owner_of(node: fx.Node) -> str:
    """The module whose own forward made this node, in a whole-model trace."""
    if node.op == "call_module":
        return str(node.target).rpartition(".")[0]
    stack = node.meta.get("nn_module_stack") or {}
    return re.sub(r"@\d+$", "", list(stack)[-1]) if stack else ""  # fx names a second call `path@1`


def _relative(target: str, owner: str) -> str:
    return target[len(owner) + 1:] if owner and target.startswith(owner + ".") else target


def ref_of(node: fx.Node, graph: fx.Graph) -> NodeRef:
    """A NodeRef for a node of `trace_model`'s graph."""
    owner = owner_of(node)

    def key(n: fx.Node) -> tuple:
        target = _relative(target_name(n), owner) if n.op in ("call_module", "get_attr") else target_name(n)
        return n.op, target, source_line(n)

    wanted = key(node)
    same = [n for n in graph.nodes if owner_of(n) == owner and key(n) == wanted]
    return NodeRef(owner, wanted[0], wanted[1], wanted[2], same.index(node))


def find(graph: fx.Graph, ref: NodeRef) -> fx.Node | None:
    """The node `ref` names in a `trace_own_code` graph of its owner, or None if absent there."""
    same = [n for n in graph.nodes if n.op == ref.op and target_name(n) == ref.target]
    if ref.line is not None and any(source_line(n) for n in same):
        same = [n for n in same if source_line(n) == ref.line]
    return same[ref.occurrence % len(same)] if same else None
