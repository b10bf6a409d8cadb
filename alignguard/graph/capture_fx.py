"""Capture the forward graph with torch.fx symbolic tracing (train mode unless asked otherwise).

The tracer goes *through* user modules (only torch.nn built-ins stay leaf calls), keeps each
node's module scope and source line, and records what every module call returned, so a symbol
bound to "the output of module P" resolves to a node. Hardening over a plain `symbolic_trace`:
in-place ops redirect later reads, tensors created at trace time (`torch.randn(4, 16)`) become
`const` nodes flagged `baked` and are removed from the user's model again, shape queries carry no
data, and ops run inside a custom `autograd.Function` are tagged (fx inlines its forward and
drops its backward, so no gradient fact may come from this graph) while what the Function returns
is one `autograd_function` node of its own (an identity Function is not its input). A model with
forward hooks is refused (fx never calls them), so `capture_graph` falls back to the eager recorder.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys
from typing import Any

import torch
import torch.fx as fx

from alignguard.graph.builder import GraphBuilder, op_kind
from alignguard.graph.capture_context import autograd_function_boundaries, uncompiled, user_forward_hooks
from alignguard.graph.model_graph import ModelGraph, Ref
from alignguard.graph.sources import param_scopes, source_of_frame, source_of_trace
from alignguard.graph.vocabulary import TUPLE_OPS, VIEW_OPS, VIEW_TUPLE_OPS, call_traits, normalise_module
from alignguard.spec.selection import selection_of, split_of

_BAKED_PREFIX = "_tensor_constant"
_SCOPE_SUFFIX = re.compile(r"@\d+$")  # fx names the second call of a module `path@1`
_PLACEHOLDER_SUFFIX = re.compile(r"_\d+$")  # fx renames a concrete argument's placeholder `scale_1`


class HookedModelError(RuntimeError):
    """fx would trace a different function than the model runs: forward hooks are never called."""


class BakedRandomError(RuntimeError):
    """A random draw ran once at trace time (`torch.randn(4, 16)`): fx keeps its value as a constant."""


def autograd_function(value: Any, name: str) -> Any:
    """Marker target of the node for what a custom autograd.Function returned (never executed)."""
    return value


def passthrough(value: Any) -> Any:
    """Marker target of the node for a module returning a value it did not compute (never executed)."""
    return value


class ScopedTracer(fx.Tracer):
    # fx's own stack-trace recording imports torch._dynamo and sympy on first use (seconds); the
    # innermost user frame, read directly from the live stack, is all a finding needs.
    record_stack_traces = False

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, Any, int]] = []  # (module path, returned value, nodes so far)
        self.functions: list[str] = []  # the custom autograd.Functions whose forward is running

    def call_module(self, m, forward, args, kwargs):
        start = len(self.graph.nodes)

        def forward_owning_its_output(*args, **kwargs):  # runs only for modules fx traces through
            return self.own_output(forward(*args, **kwargs), start)

        output = super().call_module(m, forward_owning_its_output, args, kwargs)
        self.calls.append((self.path_of_module(m), output, len(self.graph.nodes)))
        return output

    def own_output(self, value: Any, start: int) -> Any:
        """A module that returns a value computed before it was called (its input: a pass-through, an
        eval-mode noise layer) returns it through a `passthrough` node in its own scope, so readers
        of its output are not readers of its input."""
        if isinstance(value, fx.Proxy):
            if value.node.meta.get("order", -1) >= start:
                return value
            return self.create_proxy("call_function", passthrough, (value,), {})
        if isinstance(value, (tuple, list)) and not hasattr(value, "_fields"):
            return type(value)(self.own_output(v, start) for v in value)
        if isinstance(value, dict):
            return {k: self.own_output(v, start) for k, v in value.items()}
        return value

    def create_proxy(self, kind, target, args, kwargs, name=None, type_expr=None, proxy_factory_fn=None):
        order = len(self.graph.nodes)
        proxy = super().create_proxy(kind, target, args, kwargs, name, type_expr, proxy_factory_fn)
        proxy.node.meta["order"] = order
        proxy.node.meta["source"] = source_of_frame(sys._getframe(1))
        if self.functions:
            proxy.node.meta["autograd_function"] = self.functions[-1]
        return proxy

    def run_function(self, cls: type, forward, args: tuple, kwargs: dict) -> Any:
        """A custom autograd.Function's forward: inlined, its ops tagged, each returned proxy behind
        one `autograd_function` node (so an identity Function is a node, not its input)."""
        self.functions.append(cls.__name__)
        try:
            out = forward(*args, **kwargs)
        finally:
            self.functions.pop()

        def boundary(value: Any) -> Any:
            if not isinstance(value, fx.Proxy):
                return value
            proxy = self.create_proxy("call_function", autograd_function, (value, cls.__name__), {})
            proxy.node.meta["autograd_function"] = cls.__name__
            return proxy

        return tuple(boundary(v) for v in out) if isinstance(out, tuple) else boundary(out)


def trace(model: torch.nn.Module, training: bool = True, batch: dict | None = None
          ) -> tuple[fx.Graph, list[tuple[str, Any, int]], dict[str, torch.Tensor]]:
    """Symbolically trace `model` in the given mode; raises whatever fx raises.

    Returns the graph, the module calls, and the tensors fx baked into the trace (which are
    removed from the model again, so tracing leaves the user's model as it was).
    """
    hooks = user_forward_hooks(model)
    if hooks:
        raise HookedModelError(f"forward hooks change what modules return and torch.fx never calls them: "
                               f"{', '.join(hooks[:3])}{' ...' if len(hooks) > 3 else ''}")
    modes = {m: m.training for m in model.modules()}
    before = set(vars(model))
    model.train(training)
    tracer = ScopedTracer()
    concrete = _concrete_defaults(model, batch)
    # A distribution's argument validation is a data-dependent `if` fx cannot trace; without it the
    # same code traces (log_prob does): pinned, so the outcome does not depend on a global flag
    # that other libraries (torch._dynamo among them) switch.
    validate = torch.distributions.Distribution._validate_args
    torch.distributions.Distribution.set_default_validate_args(False)
    rng = _rng_states()  # a proxy draws nothing: a changed state means a draw was baked in
    try:
        with autograd_function_boundaries(tracer.run_function):
            graph = tracer.trace(model, concrete_args=concrete)
        graph._alignguard_concrete = set(concrete or ())  # from_fx drops their placeholders and guards
    finally:
        torch.distributions.Distribution.set_default_validate_args(validate)
        for module, mode in modes.items():
            module.training = mode
        baked = {name: vars(model)[name] for name in set(vars(model)) - before if name.startswith(_BAKED_PREFIX)}
        for name in baked:
            delattr(model, name)
    if any(not torch.equal(a, b) for a, b in zip(rng, _rng_states())):
        _restore_rng(rng)  # tracing must not shift the user's random stream
        used = [u.meta.get("source") or (None, None) for n in graph.nodes if n.op == "get_attr" and n.target in baked
                for u in n.users]
        at = f" (a tensor created at trace time is used at {used[0][0]}:{used[0][1]})" if used and used[0][0] else ""
        raise BakedRandomError("a random draw ran once while fx traced and would be a constant in its graph; "
                               f"a fixed-shape torch.randn/rand/normal_ in forward does this{at}")
    return graph, tracer.calls, baked


def _rng_states() -> list[torch.Tensor]:
    """The CPU generator's state, then each CUDA device's (when CUDA is in use)."""
    states = [torch.get_rng_state()]
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states.extend(torch.cuda.get_rng_state_all())
    return states


def _restore_rng(states: list[torch.Tensor]) -> None:
    torch.set_rng_state(states[0])
    if len(states) > 1:
        torch.cuda.set_rng_state_all(states[1:])


def _concrete_defaults(model: torch.nn.Module, batch: dict | None) -> dict[str, Any] | None:
    """Optional forward arguments the batch does not provide are traced at their defaults."""
    defaults = {name: p.default for name, p in inspect.signature(model.forward).parameters.items()
                if p.default is not p.empty and (batch is None or name not in batch)}
    return defaults or None


def capture_fx(model: torch.nn.Module, training: bool = True, batch: dict | None = None) -> ModelGraph:
    with uncompiled(model) as model:
        graph, calls, baked = trace(model, training, batch)
        mode = "train" if training else "eval"
        return from_fx(graph, calls, model, baked, capture=f"torch.fx symbolic_trace ({mode} mode)",
                       training=training)


def from_fx(graph: fx.Graph, calls: list[tuple[str, Any, int]], model: torch.nn.Module,
            baked: dict[str, torch.Tensor] | None = None, capture: str = "torch.fx symbolic_trace (train mode)",
            training: bool = True) -> ModelGraph:
    builder = GraphBuilder()
    baked = baked or {}
    pending = sorted(calls, key=lambda call: call[2])
    parameters = dict(model.named_parameters())
    buffers = dict(model.named_buffers())
    functions: set[str] = set()
    skipped = _concrete_guards(graph, getattr(graph, "_alignguard_concrete", set()))
    for index, node in enumerate(graph.nodes, start=1):
        if node in skipped or _is_record_constructor(node):
            pass  # a returned namedtuple/dataclass: its fields are the outputs
        elif node.op == "output":
            for key, value in flatten_output(_containers(node.args[0])):
                if isinstance(value, fx.Node):
                    builder.set_output(key, value.name)
        elif node.op == "placeholder":
            builder.add_input(str(node.target), node.name, fx_op=node.op)
        elif node.op == "get_attr":
            _add_attribute(builder, node, model, parameters, buffers, baked)
        else:
            _add_call(builder, node, model, training)
        if node.meta.get("autograd_function"):
            functions.add(node.meta["autograd_function"])
        while pending and pending[0][2] <= index:
            path, value, _ = pending.pop(0)
            builder.add_module_call(path, _node_names(value))
    for name in sorted(functions):
        builder.notes.append(f"custom autograd.Function {name} was inlined by the capture (its backward is "
                             "not in the graph): gradient facts come from autograd on the real model")
    return builder.build(capture, training)


def _concrete_guards(graph: fx.Graph, concrete: set[str]) -> set[fx.Node]:
    """Placeholders of arguments traced at their defaults, and the `_assert` guards fx adds on them."""
    skipped: set[fx.Node] = set()
    for node in graph.nodes:
        if node.op == "placeholder" and _PLACEHOLDER_SUFFIX.sub("", str(node.target)) in concrete:
            skipped.add(node)
        elif node.op != "output" and node.all_input_nodes and all(n in skipped for n in node.all_input_nodes):
            skipped.add(node)
    return skipped


def _scopes(node: fx.Node) -> tuple[str, ...]:
    stack = node.meta.get("nn_module_stack") or {}
    scopes = []
    for key, value in stack.items():
        path = value[0] if isinstance(value, tuple) and isinstance(value[0], str) else key
        path = _SCOPE_SUFFIX.sub("", path if re.fullmatch(r"[\w.]*", path) else key)
        if path and path not in scopes:
            scopes.append(path)
    return tuple(scopes)


def _common(node: fx.Node) -> dict:
    file, line = node.meta.get("source") or source_of_trace(node.stack_trace)
    extra = {"autograd_function": node.meta["autograd_function"]} if node.meta.get("autograd_function") else {}
    return {"scopes": _scopes(node), "file": file, "line": line, "fx_op": node.op, **extra}


def _add_attribute(builder: GraphBuilder, node: fx.Node, model, parameters, buffers, baked) -> None:
    target = str(node.target)
    common = _common(node)
    if target in parameters:
        common["scopes"] = param_scopes(target)
        builder.add(node.name, kind="param", op="param", target=target,
                    learned=parameters[target].requires_grad, **common)
        return
    value = baked.get(target) if target in baked else _fetch_attr(model, target)
    shape = tuple(value.shape) if isinstance(value, torch.Tensor) else None
    builder.add(node.name, kind="const", op="const", target=target, baked=target in baked,
                buffer=target in buffers, shape=shape, **common)


def _add_call(builder: GraphBuilder, node: fx.Node, model, training: bool) -> None:
    common = _common(node)
    operands = _operands(node)
    if node.op == "call_module":
        module = model.get_submodule(str(node.target))
        # trace() put every module in `training` mode; by now the user's modes are restored
        kind, op = op_kind(normalise_module(module), random_active=training, module=True)
        learned = any(p.requires_grad for p in module.parameters())
        builder.add(node.name, kind=kind, op=op, operands=operands, target=str(node.target),
                    learned=learned, **common)
        if getattr(module, "inplace", False) is True and operands and isinstance(operands[0], Ref):
            builder.mutated(operands[0].node, node.name)  # nn.ReLU(inplace=True): later reads see it
        return
    name = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", str(node.target))
    if node.target is autograd_function:
        builder.add(node.name, kind="op", op="autograd_function", operands=operands[:1], target=node.args[1],
                    **common)
        return
    if node.target is passthrough:
        builder.add(node.name, kind="op", op="passthrough", operands=operands, target=common["scopes"][-1], **common)
        return
    op, reflected, inplace = call_traits(name)
    if reflected and len(operands) >= 2:
        operands = (operands[1], operands[0], *operands[2:])
    if op in ("getitem", "getattr"):
        op = _selection_op(builder, node)
    kind, op = op_kind(op, random_active=_dropout_active(node, op))
    selection = selection_of(op, node.args, node.kwargs)
    if selection is not None:
        common["selection"] = selection
    split = split_of(op, node.args, node.kwargs)
    if split is not None:
        common["split"] = split  # which slice each element is: a symbol bound by `slice:` may be one
    builder.add(node.name, kind=kind, op=op, operands=operands, target=name, **common)
    if (inplace or op == "setitem") and operands and isinstance(operands[0], Ref):
        builder.mutated(operands[0].node, node.name)
        _write_through(builder, operands[0].node, node.name, common)


def _write_through(builder: GraphBuilder, view: str, written: str, common: dict) -> None:
    """`h[:, :2].add_(y)` changes h: later reads of the view's base see a `setitem` of the write."""
    base = view
    while True:
        data = builder.g.nodes[base]
        refs = [o.node for o in data["operands"] if isinstance(o, Ref)]
        is_view = data["op"] in VIEW_OPS and not (data["op"] == "getitem" and len(refs) > 1)
        is_element = data["op"] == "getitem_tuple" and refs and builder.node_op(refs[0]) in VIEW_TUPLE_OPS
        if not refs or not (is_view or is_element):
            break
        base = refs[0]
    if base != view:
        setitem = builder.add(builder.fresh("setitem"), kind="op", op="setitem",
                              operands=(Ref(base), None, Ref(written)), target="write through a view", **common)
        builder.mutated(base, setitem)


def _selection_op(builder: GraphBuilder, node: fx.Node) -> str:
    """What `a[i]` / `a.attr` means, judged from what produced `a` (fx records no types)."""
    source, key = node.args[0], node.args[1]
    source_op = builder.node_op(source.name) if isinstance(source, fx.Node) and source.name in builder.g else ""
    if node.target is getattr:
        return {"shape": "size", "T": "t", "mT": "t", "data": "detach"}.get(key) or (
            "getitem_tuple" if source_op in TUPLE_OPS else "getattr")
    if source_op in ("size", "shape_getitem", "dim", "numel"):
        return "shape_getitem"
    if source_op in TUPLE_OPS:
        return "getitem_tuple"
    return "getitem_key" if isinstance(key, str) else "getitem"


def _dropout_active(node: fx.Node, op: str) -> bool:
    if op != "dropout":
        return True
    for name in ("training", "train"):  # F.dropout(x, p, training), torch.dropout(x, p, train)
        if name in node.kwargs:
            return bool(node.kwargs[name])
    if len(node.args) > 2 and isinstance(node.args[2], bool):
        return node.args[2]
    return True  # F.dropout defaults to training=True


def _operands(node: fx.Node) -> tuple[Any, ...]:
    operands: list[Any] = []
    for arg in node.args:
        items = arg if isinstance(arg, (list, tuple)) and any(isinstance(a, fx.Node) for a in arg) else [arg]
        operands.extend(_operand(a) for a in items)
    for value in node.kwargs.values():
        items = value if isinstance(value, (list, tuple)) else [value]
        operands.extend(Ref(a.name) for a in items if isinstance(a, fx.Node))
    return tuple(operands)


def _operand(value: Any) -> Any:
    if isinstance(value, fx.Node):
        return Ref(value.name)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    return None


def flatten_output(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(key, value) pairs of a forward output: dict keys, namedtuple and dataclass field names, tuple
    and list indices, nested with dots."""
    fields = _fields(value)
    if fields is None:
        return [(prefix.rstrip(".") or "output", value)]
    flat = []
    for key, item in fields:
        key = f"{prefix}{key}"
        flat.extend(flatten_output(item, f"{key}.") if _fields(item) is not None else [(key, item)])
    return flat


def _fields(value: Any) -> list[tuple[Any, Any]] | None:
    """The named or numbered parts of a container output; None for a leaf (a tensor, a number)."""
    if isinstance(value, dict):
        return list(value.items())
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # namedtuple: bind by field name
        return list(zip(value._fields, value))
    if isinstance(value, (tuple, list)):
        return list(enumerate(value))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [(f.name, getattr(value, f.name)) for f in dataclasses.fields(value)]
    return None


def _is_record_constructor(node: fx.Node) -> bool:
    cls = node.target
    return node.op == "call_function" and isinstance(cls, type) and (
        (issubclass(cls, tuple) and hasattr(cls, "_fields")) or dataclasses.is_dataclass(cls))


def _containers(value: Any) -> Any:
    """fx records a returned namedtuple or dataclass as a call of its class: give back its fields."""
    if isinstance(value, fx.Node) and _is_record_constructor(value):
        cls = value.target
        if issubclass(cls, tuple) and hasattr(cls, "_fields"):
            return dict(zip(cls._fields, map(_containers, value.args)))
        if dataclasses.is_dataclass(cls):
            names = [f.name for f in dataclasses.fields(cls)]
            fields = {**dict(zip(names, value.args)), **value.kwargs}
            return {name: _containers(fields[name]) for name in names if name in fields}
    if isinstance(value, dict):
        return {k: _containers(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)) and not hasattr(value, "_fields"):
        return type(value)(_containers(v) for v in value)
    return value


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
