"""Capture the forward graph with torch.fx symbolic tracing, in train mode.

The tracer goes *through* user modules (only torch.nn built-ins stay leaf calls), keeps each
node's module scope and source line, and records what every module call returned, so a symbol
bound to "the output of module P" resolves to a node.
"""

from __future__ import annotations

import re
from typing import Any

import networkx as nx
import torch
import torch.fx as fx

from alignguard.graph.model_graph import ModelGraph, ModuleCall, freeze
from alignguard.graph.vocabulary import is_random, is_transparent, normalise

_FRAME = re.compile(r'File "([^"]+)", line (\d+)')
_SKIP_DIRS = (torch.__path__[0], str(__import__("pathlib").Path(__file__).resolve().parents[1]))


class ScopedTracer(fx.Tracer):
    record_stack_traces = True

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, Any]] = []

    def call_module(self, m, forward, args, kwargs):
        output = super().call_module(m, forward, args, kwargs)
        self.calls.append((self.path_of_module(m), output))
        return output


def trace(model: torch.nn.Module) -> tuple[fx.Graph, list[tuple[str, Any]]]:
    """Symbolically trace `model` in train mode; raises whatever fx raises."""
    was_training = model.training
    model.train()
    tracer = ScopedTracer()
    try:
        graph = tracer.trace(model)
    finally:
        model.train(was_training)
    return graph, tracer.calls


def capture_fx(model: torch.nn.Module) -> ModelGraph:
    graph, calls = trace(model)
    return from_fx(graph, calls, model)


def from_fx(graph: fx.Graph, calls: list[tuple[str, Any]], model: torch.nn.Module) -> ModelGraph:
    g = nx.DiGraph()
    inputs: dict[str, str] = {}
    outputs: dict[str, str] = {}
    for node in graph.nodes:
        if node.op == "output":
            for key, value in _flatten_output(node.args[0]):
                out_id = f"output:{key}"
                g.add_node(out_id, kind="output", op="output", key=key, scope="", scopes=())
                if isinstance(value, fx.Node):
                    outputs[key] = value.name
                    g.add_edge(value.name, out_id)
            continue
        g.add_node(node.name, **_attributes(node, model))
        if node.op == "placeholder":
            inputs[str(node.target)] = node.name
        for source in node.all_input_nodes:
            g.add_edge(source.name, node.name)
    module_calls = [ModuleCall(path, _node_names(value)) for path, value in calls]
    return ModelGraph(freeze(g), inputs, outputs, module_calls, capture="torch.fx symbolic_trace (train mode)")


def _attributes(node: fx.Node, model: torch.nn.Module) -> dict:
    stack = node.meta.get("nn_module_stack") or {}
    scopes = tuple(stack.keys())
    file, line = _source(node.stack_trace)
    attrs = {"scope": scopes[-1] if scopes else "", "scopes": scopes, "file": file, "line": line,
             "target": str(node.target), "fx_op": node.op}
    if node.op == "placeholder":
        return {**attrs, "kind": "input", "op": "input"}
    if node.op == "get_attr":
        value = _fetch_attr(model, str(node.target))
        kind = "param" if isinstance(value, torch.nn.Parameter) or _is_buffer(model, node.target) else "const"
        return {**attrs, "kind": kind, "op": kind}
    if node.op == "call_module":
        submodule = model.get_submodule(str(node.target))
        op = normalise(type(submodule).__name__)
        kind = "random" if is_random(op) else "module"
        return {**attrs, "kind": kind, "op": op, "transparent": is_transparent(op)}
    name = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", str(node.target))
    op = normalise(name)
    kind = "random" if is_random(op) else "op"
    return {**attrs, "kind": kind, "op": op, "transparent": is_transparent(op)}


def _source(stack_trace: str | None) -> tuple[str | None, int | None]:
    """Innermost frame of user code (not torch, not alignguard)."""
    if not stack_trace:
        return None, None
    frames = [(f, int(n)) for f, n in _FRAME.findall(stack_trace) if not f.startswith(_SKIP_DIRS)]
    return frames[-1] if frames else (None, None)


def _flatten_output(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        items = [(f"{prefix}{k}", v) for k, v in value.items()]
    elif isinstance(value, (tuple, list)):
        items = [(f"{prefix}{i}", v) for i, v in enumerate(value)]
    else:
        return [(prefix or "output", value)]
    flat = []
    for key, item in items:
        flat.extend(_flatten_output(item, f"{key}.") if isinstance(item, (dict, tuple, list)) else [(key, item)])
    return flat


def _node_names(value: Any) -> tuple[str | None, ...]:
    if isinstance(value, fx.Proxy):
        return (value.node.name,)
    if isinstance(value, (tuple, list)):
        return tuple(v.node.name if isinstance(v, fx.Proxy) else None for v in value)
    if isinstance(value, dict):
        return tuple(v.node.name if isinstance(v, fx.Proxy) else None for v in value.values())
    return (None,)


def _fetch_attr(model: torch.nn.Module, target: str) -> Any:
    value: Any = model
    for part in target.split("."):
        value = getattr(value, part, None)
    return value


def _is_buffer(model: torch.nn.Module, target: str) -> bool:
    return target in dict(model.named_buffers())
