"""What the operators need to know about the original model, computed once per run.

One build of the original model, one example batch, one whole-model fx trace with module
scopes (the checker's own tracer), the design symbols resolved to fx nodes exactly as the
checker resolves them, which forward inputs each node depends on, and what each candidate
module takes and returns on the example batch (for shape-true bypasses and projections).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx

from alignguard.modelfile.loader import ModelFile, forward_inputs
from alignguard.spec.formula import symbols_in
from alignguard.spec.model import Spec


@dataclass
class ModuleSample:
    """One call of a module on the example batch (train mode)."""

    args: tuple
    kwargs: dict
    output: Any


@dataclass
class ModelAnalysis:
    spec: Spec
    model_file: ModelFile
    model: torch.nn.Module
    batch: dict
    inputs: dict  # forward's arguments, by name
    outputs: Any  # forward's output on the batch (train mode)
    loss_step: int
    loss_keys: list[str]
    samples: dict[str, ModuleSample]  # module path -> first call
    graph: fx.Graph | None = None  # whole-model trace with scopes; None when fx cannot trace it
    trace_error: str | None = None
    symbol_nodes: dict[str, fx.Node] = field(default_factory=dict)
    module_outputs: dict[str, set[fx.Node]] = field(default_factory=dict)  # path -> nodes its calls returned
    _sources: dict[fx.Node, frozenset[str]] = field(default_factory=dict)
    _ancestors: dict[fx.Node, set[fx.Node]] = field(default_factory=dict)

    # ---- data dependence -----------------------------------------------------------------
    def sources(self, node: fx.Node) -> frozenset[str]:
        """Forward inputs (by name) the node depends on, through any edge of the trace."""
        return self._sources.get(node, frozenset())

    def inputs_with_role(self, role: str) -> set[str]:
        return set(self.spec.input_with_role(role))

    def only_from(self, node: fx.Node, role: str) -> bool:
        """The node depends on inputs of this role and on no other spec input."""
        sources = self.sources(node) & set(self.spec.inputs)
        return bool(sources) and sources <= self.inputs_with_role(role)

    def ancestors(self, node: fx.Node) -> set[fx.Node]:
        """Every node `node` reads from, directly or not (memoised: operators ask often)."""
        if node not in self._ancestors:
            seen, stack = set(), list(node.all_input_nodes)
            while stack:
                current = stack.pop()
                if current not in seen:
                    seen.add(current)
                    stack.extend(current.all_input_nodes)
            self._ancestors[node] = seen
        return self._ancestors[node]

    # ---- design roles ---------------------------------------------------------------------
    def prediction_symbols(self) -> list[str]:
        """Symbols the design predicts with: formula left-hand sides, else the probes' output."""
        names = [f.parsed.lhs for f in self.spec.formulas]
        probes = self.spec.probes
        names += [p.output for p in (probes.modulation, probes.translation_symmetry) if p is not None]
        names += [p.on_path_to for p in self.spec.forbidden_patterns]
        return [n for n in dict.fromkeys(names) if n in self.symbol_nodes]

    def formula_inputs(self, symbol: str) -> list[str]:
        """Right-hand-side symbols of the formulas defining `symbol` (every other symbol if none)."""
        named = [s for f in self.spec.formulas if f.parsed.lhs == symbol
                 for s in sorted(symbols_in(f.parsed.rhs))]
        return named or [s for s in self.symbol_nodes if s != symbol]

    def candidate_modules(self) -> list[str]:
        """Spec components and the model's direct children: the units a bypass replaces."""
        paths = [c.module for c in self.spec.components.values()]
        paths += [name for name, _ in self.model.named_children()]
        existing = dict(self.model.named_modules())
        return [p for p in dict.fromkeys(paths) if p in existing and p]


def analyse(spec: Spec, model_file: ModelFile) -> ModelAnalysis:
    from alignguard.mutate.tracing import trace_model

    torch.manual_seed(spec.entry_points.seed)
    model = model_file.build()
    batch = model_file.batch(model, spec.entry_points.batch_size, spec.entry_points.seed)
    inputs = forward_inputs(model, batch)
    step = max([loss.step for loss in spec.losses.values()] + [spec.gradients.step or 0])
    samples: dict[str, ModuleSample] = {}
    hooks = []
    for path, module in model.named_modules():
        def record(mod, args, kwargs, output, path=path):
            samples.setdefault(path, ModuleSample(args, kwargs, output))
        hooks.append(module.register_forward_hook(record, with_kwargs=True))
    try:
        model.train()
        with torch.no_grad():
            outputs = model_file.forward(model, batch, on="the example batch (unmutated model)")
            terms = model_file.loss_terms_at(model, batch, outputs, step)
    finally:
        for hook in hooks:
            hook.remove()
    analysis = ModelAnalysis(spec, model_file, model, batch, inputs, outputs, step,
                             list(terms) if isinstance(terms, dict) else [], samples)
    try:
        graph, calls = trace_model(model)
    except Exception as exc:  # fx raises many types for untraceable code
        analysis.trace_error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        return analysis
    analysis.graph = graph
    analysis._sources = _sources(graph)
    analysis.symbol_nodes = _symbol_nodes(spec, graph, calls)
    for path, value in calls:
        analysis.module_outputs.setdefault(path, set()).update(_nodes_in(value))
    return analysis


def _sources(graph: fx.Graph) -> dict[fx.Node, frozenset[str]]:
    sources: dict[fx.Node, frozenset[str]] = {}
    for node in graph.nodes:  # fx graphs are topologically ordered
        if node.op == "placeholder":
            sources[node] = frozenset({str(node.target)})
        else:
            sources[node] = frozenset().union(*(sources[n] for n in node.all_input_nodes))
    return sources


def _symbol_nodes(spec: Spec, graph: fx.Graph, calls: list[tuple[str, Any]]) -> dict[str, fx.Node]:
    """Each spec symbol's fx node: a key of what forward returns, or a module's (last) output."""
    output = next(n for n in graph.nodes if n.op == "output").args[0]
    found = {}
    for name, binding in spec.symbols.items():
        if binding.output is not None:
            value = _forward_value(output, binding.output)
        else:
            returned = [value for path, value in calls if path == binding.module]
            value = returned[-1] if returned else None
            if binding.index is not None:
                value = value[binding.index] if isinstance(value, (tuple, list)) and binding.index < len(value) else None
        node = getattr(value, "node", value)
        if isinstance(node, fx.Node):
            found[name] = node
    return found


def _nodes_in(value: Any) -> list[fx.Node]:
    if isinstance(value, (tuple, list)):
        return [n for v in value for n in _nodes_in(v)]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _nodes_in(v)]
    node = getattr(value, "node", None)
    return [node] if isinstance(node, fx.Node) else []


def _forward_value(output: Any, key: str) -> Any:
    if isinstance(output, dict):
        return output.get(key)
    if isinstance(output, (tuple, list)) and key.isdigit() and int(key) < len(output):
        return output[int(key)]
    return output if key == "output" else None
