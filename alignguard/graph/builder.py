"""Assemble a ModelGraph node by node; shared by every capture so they produce one form.

The builder owns the rules that must not differ between captures: which operands become
data-flow edges (none for shape-only ops, the first one for transparent ops), how an in-place
op redirects later reads of the tensor it mutated, unique fx-style node ids, and how an output
that differs between example batches (data-dependent control flow) is joined.
"""

from __future__ import annotations

from typing import Any, Iterable

import networkx as nx

from alignguard.graph.model_graph import ModelGraph, ModuleCall, Ref, freeze
from alignguard.graph.vocabulary import is_random, is_shape_only, is_transparent


class GraphBuilder:
    def __init__(self) -> None:
        self.g = nx.DiGraph()
        self.inputs: dict[str, str] = {}
        self.outputs: dict[str, str] = {}
        self.module_calls: list[ModuleCall] = []
        self._alias: dict[str, str] = {}
        self._taken: dict[str, int] = {}
        self.notes: list[str] = []

    # ---- ids and aliases ------------------------------------------------------------------
    def fresh(self, base: str) -> str:
        """An unused node id in fx's style: `mul`, `mul_1`, `mul_2`, ..."""
        base = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in base) or "node"
        count = self._taken.get(base, 0)
        node_id = base if count == 0 else f"{base}_{count}"
        while node_id in self.g:
            count += 1
            node_id = f"{base}_{count}"
        self._taken[base] = count + 1
        return node_id

    def current(self, node_id: str) -> str:
        """The node holding the tensor's value now (after any in-place ops on it)."""
        while node_id in self._alias:
            node_id = self._alias[node_id]
        return node_id

    def mutated(self, old: str, new: str) -> None:
        """`new` is an in-place op on `old`'s tensor: later reads of it see `new`."""
        if old != new:
            self._alias[self.current(old)] = new

    # ---- nodes -----------------------------------------------------------------------------
    def add(self, node_id: str, *, kind: str, op: str, operands: Iterable[Any] = (),
            scopes: tuple[str, ...] = (), file: str | None = None, line: int | None = None,
            target: str = "", fx_op: str = "", **extra: Any) -> str:
        operands = tuple(Ref(self.current(o.node)) if isinstance(o, Ref) else o for o in operands)
        scopes = with_containers(scopes)
        transparent = is_transparent(op)
        self.g.add_node(node_id, kind=kind, op=op, operands=operands, scopes=tuple(scopes),
                        scope=scopes[-1] if scopes else "", file=file, line=line, target=target,
                        fx_op=fx_op, transparent=transparent, **extra)
        self._data_edges(node_id, op, operands)
        return node_id

    def merge(self, node_id: str, operands: Iterable[Any]) -> str:
        """The same call site seen again (another example batch): add its data edges only."""
        operands = tuple(Ref(self.current(o.node)) if isinstance(o, Ref) else o for o in operands)
        self._data_edges(node_id, self.node_op(node_id), operands)
        return node_id

    def _data_edges(self, node_id: str, op: str, operands: tuple[Any, ...]) -> None:
        refs = [o.node for o in operands if isinstance(o, Ref)]
        if is_shape_only(op):
            refs = []  # randn_like(std), x.size(0): the values of the argument do not flow
        elif is_transparent(op):
            refs = refs[:1]  # view_as(other), type_as(other): `other` contributes a shape only
        for source in refs:
            if source in self.g and source != node_id:
                self.g.add_edge(source, node_id)

    def add_input(self, name: str, node_id: str, **attrs: Any) -> str:
        self.add(node_id, kind="input", op="input", target=name, **attrs)
        self.inputs[name] = node_id
        return node_id

    def set_output(self, key: str, node_id: str) -> None:
        """Bind an output key; a second, different value (another batch took another branch) joins both."""
        node_id = self.current(node_id)
        out_id = f"output:{key}"
        if out_id not in self.g:
            self.g.add_node(out_id, kind="output", op="output", key=key, scope="", scopes=(), operands=())
        previous = self.outputs.get(key)
        if previous is None or previous == node_id:
            self.outputs[key] = node_id
        else:
            if self.node_op(previous) != "branch":
                joined = self.add(self.fresh(f"branch_{key}"), kind="op", op="branch",
                                  operands=(Ref(previous),), target=key,
                                  file=self.g.nodes[previous].get("file"), line=self.g.nodes[previous].get("line"))
                self.g.add_edge(joined, out_id)
                self.outputs[key] = previous = joined
                self.notes.append(f"output '{key}' is computed by different code on different example batches "
                                  "(data-dependent control flow); the graph keeps every path under a branch node")
            data = self.g.nodes[previous]
            data["operands"] = data["operands"] + (Ref(node_id),)
            self.g.add_edge(node_id, previous)
        self.g.add_edge(self.outputs[key], out_id)

    def node_op(self, node_id: str) -> str:
        return self.g.nodes[node_id].get("op", "")

    def add_module_call(self, path: str, outputs: Iterable[str | None]) -> None:
        call = ModuleCall(path, tuple(self.current(o) if o else None for o in outputs))
        if call not in self.module_calls:
            self.module_calls.append(call)

    def build(self, capture: str, training: bool) -> ModelGraph:
        note = "; ".join(dict.fromkeys(self.notes))
        return ModelGraph(freeze(self.g), dict(self.inputs), dict(self.outputs), list(self.module_calls),
                          capture=capture, capture_note=note, training=training)


def with_containers(scopes: tuple[str, ...]) -> tuple[str, ...]:
    """Every enclosing module path, outermost first: `layers.0` is inside `layers`, a ModuleList
    forward never calls but which a design can name as one component."""
    if all("." not in s for s in scopes):
        return tuple(scopes)
    full: dict[str, None] = {}
    for scope in scopes:
        parts = scope.split(".")
        for i in range(1, len(parts) + 1):
            full.setdefault(".".join(parts[:i]))
    return tuple(full)


def op_kind(op: str, random_active: bool = True, module: bool = False) -> tuple[str, str]:
    """(kind, op) for a call: dropout outside training is the identity, not a random source."""
    plain = "module" if module else "op"
    if op == "dropout" and not random_active:
        return plain, "dropout_eval"
    return ("random" if is_random(op) else plain), op
