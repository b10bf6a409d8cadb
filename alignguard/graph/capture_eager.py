"""Capture the forward graph by *running* the model on example batches (the torchview approach).

A `TorchFunctionMode` sees every torch call the user's code makes (operators, `Tensor` methods,
`torch.*` and `F.*` functions, random factories such as `torch.randn(4, 16)`), and module
forward hooks give module scopes and what each module returned. torch.nn built-in modules are
recorded as one call each, exactly like fx's leaf modules, so both captures share one graph form.

It works where fx cannot (data-dependent `if`, `torch.distributions`, `len()` on a tensor, forward
hooks) but sees only the path each batch took: run it on several batches to union their paths.

A tensor the recorder never saw produced but which aliases the memory of one it did (what
`torch.autograd.Variable(t)` or autograd's own bookkeeping returns) holds that tensor's value, so it
is that tensor's node, not a constant. A custom autograd.Function's outputs each get one
`autograd_function` node, as under fx.
"""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any, Sequence

import torch
import torch.fx as fx
from torch.overrides import TorchFunctionMode, resolve_name

from alignguard.graph.builder import GraphBuilder, op_kind
from alignguard.graph.capture_context import autograd_function_boundaries, uncompiled
from alignguard.graph.capture_fx import flatten_output
from alignguard.graph.model_graph import ModelGraph, Ref
from alignguard.graph.sources import param_scopes, source_of_frame
from alignguard.graph.vocabulary import call_traits, normalise_module
from alignguard.modelfile.loader import forward_inputs
from alignguard.spec.selection import selection_of, split_of

_LEAF_TEST = fx.Tracer()  # fx's own rule for which modules stay leaves


class _Session:
    """State shared by the function mode and the module hooks during one capture."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.builder = GraphBuilder()
        self.paths: dict[torch.nn.Module, str] = {}
        for path, module in model.named_modules(remove_duplicate=False):
            self.paths.setdefault(module, path)  # a shared module keeps its first path, as in fx
        self.params = {id(p): (name, p) for name, p in model.named_parameters()}
        self.buffers = {id(b): name for name, b in model.named_buffers()}
        self.tensors: dict[int, str] = {}  # id(tensor) -> node holding its value now
        self.memory: dict[tuple, str] = {}  # storage, offset, shape, stride, dtype -> node holding it now
        self.elements: dict[int, tuple] = {}  # id(tuple element) -> (tuple node, indices, op, where) until used
        self.element_nodes: dict[tuple[str, int], str] = {}  # (tuple node, index) -> its getitem node
        self.scalars: dict[float, str] = {}  # a float read out of a tensor (.item()) -> its item node
        self.escapes: dict[str, None] = {}  # where values left torch as ints, lists or arrays
        self.alive: list[Any] = []  # keeps recorded tensors alive so ids are never reused
        self.scopes: list[str] = []
        self.leaf_depth = 0
        self.muted = 0  # > 0 while alignguard's own hooks run: their tensor reads are not the model's
        self.leaf_operands: list[tuple[Any, ...]] = []
        self.sites: dict[tuple, str] = {}  # call site -> node id, shared across batches
        self.seen: Counter = Counter()  # occurrences of each call site in the current batch
        self.functions: set[str] = set()
        self.function_stack: list[str] = []  # the custom autograd.Functions whose forward is running

    # ---- nodes -------------------------------------------------------------------------------
    def node(self, op: str, kind: str, operands: tuple[Any, ...], target: str, name: str = "",
             at: tuple[tuple[str, ...], str | None, int | None] | None = None, **extra: Any) -> str:
        """Add (or, on a later batch, re-find) the node of one call site; `at` overrides scope and line."""
        scopes, file, line = at or (tuple(self.scopes), *source_of_frame(sys._getframe(1)))
        site = (op, scopes, file, line, target)
        self.seen[site] += 1
        key = (*site, self.seen[site])
        if key in self.sites:
            return self.builder.merge(self.sites[key], operands)
        if self.function_stack and "autograd_function" not in extra:
            extra["autograd_function"] = self.function_stack[-1]
        if extra.get("autograd_function"):
            self.functions.add(extra["autograd_function"])
        node_id = self.builder.add(self.builder.fresh(name or op), kind=kind, op=op, operands=operands, scopes=scopes,
                                   file=file, line=line, target=target, fx_op="eager", **extra)
        self.sites[key] = node_id
        return node_id

    def ref(self, tensor: torch.Tensor) -> Ref:
        """The node for a tensor argument; a tensor never produced by a recorded call is a param or const."""
        known = self.tensors.get(id(tensor))
        if known is not None:
            return Ref(known)
        if id(tensor) in self.elements:  # first use of a tuple element: its getitem node(s), like fx's
            node_id, indices, op, at = self.elements.pop(id(tensor))
            for index in indices:  # (1, 0) for `h` in an LSTM's `out, (h, c)`
                key = (node_id, index)
                if key not in self.element_nodes:
                    self.element_nodes[key] = self.node("getitem_tuple", "op", (Ref(node_id), index),
                                                        f"{op}[{index}]", at=at)
                node_id = self.element_nodes[key]
            self.bind(tensor, node_id)
            return Ref(node_id)
        alias = self.memory.get(_memory_key(tensor))
        if alias is not None:  # Variable(t), autograd's view of a returned input: t's value
            self.bind(tensor, alias)
            return Ref(alias)
        if id(tensor) in self.params:
            name, param = self.params[id(tensor)]
            node_id = name.replace(".", "_")
            if node_id not in self.builder.g:
                self.builder.add(node_id, kind="param", op="param", target=name, scopes=param_scopes(name),
                                 learned=param.requires_grad, fx_op="eager")
        else:
            name = self.buffers.get(id(tensor), "")
            node_id = self.node("const", "const", (), name, baked=False, buffer=bool(name),
                                shape=tuple(tensor.shape))
        self.bind(tensor, node_id)
        return Ref(node_id)

    def location(self, node_id: str) -> tuple[tuple[str, ...], str | None, int | None]:
        data = self.builder.g.nodes[node_id]
        return data["scopes"], data["file"], data["line"]

    def bind(self, tensor: torch.Tensor, node_id: str) -> None:
        self.tensors[id(tensor)] = node_id
        self.alive.append(tensor)  # alive, so neither its id nor its memory is reused during capture
        key = _memory_key(tensor)
        if key is not None:
            self.memory[key] = node_id

    def operands(self, args: Sequence[Any], kwargs: dict) -> tuple[Any, ...]:
        flat: list[Any] = []
        for arg in args:
            items = arg if isinstance(arg, (list, tuple)) and any(isinstance(a, torch.Tensor) for a in arg) else [arg]
            flat.extend(self.operand(a) for a in items)
        for value in kwargs.values():
            items = value if isinstance(value, (list, tuple)) else [value]
            flat.extend(self.ref(a) for a in items if isinstance(a, torch.Tensor))
        return tuple(flat)

    def operand(self, value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return self.ref(value)
        if isinstance(value, float) and value in self.scalars:
            return Ref(self.scalars[value])
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
        return None

    def bind_outputs(self, node_id: str, op: str, out: Any, operands: tuple[Any, ...]) -> None:
        """Map a call's result tensors to nodes: one per tuple element, like fx's getitem nodes."""
        if isinstance(out, torch.Tensor):
            self.bind(out, node_id)
        elif isinstance(out, (tuple, list)):
            refs = [o for o in operands if isinstance(o, Ref)]
            for index, item in enumerate(out):
                if op == "broadcast_tensors" and index < len(refs) and isinstance(item, torch.Tensor):
                    element = self.node("broadcast", "op", (refs[index],), "broadcast_tensors")  # input i only
                    self.bind(item, element)
                else:
                    self.pending_element(item, node_id, (index,), op)

    def pending_element(self, item: Any, node_id: str, indices: tuple[int, ...], op: str) -> None:
        """A tuple element's node is created on first use, so unused ones (max's indices) add none."""
        if isinstance(item, torch.Tensor):
            self.elements[id(item)] = (node_id, indices, op, self.location(node_id))
            self.alive.append(item)
        elif isinstance(item, (tuple, list)):
            for index, inner in enumerate(item):
                self.pending_element(inner, node_id, (*indices, index), op)

    def run_function(self, cls: type, forward, args: tuple, kwargs: dict) -> Any:
        """A custom autograd.Function's forward: its ops are recorded and tagged, then each returned
        tensor gets one `autograd_function` node (an identity Function is not its input)."""
        self.function_stack.append(cls.__name__)
        try:
            out = forward(*args, **kwargs)
        finally:
            self.function_stack.pop()
        if self.leaf_depth:
            return out
        self.muted += 1
        try:
            inputs = {id(a) for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)}
            values = out if isinstance(out, tuple) else [out]
            items = [self.function_output(cls.__name__, v, id(v) in inputs) for v in values]
        finally:
            self.muted -= 1
        return tuple(items) if isinstance(out, tuple) else items[0]

    def function_output(self, name: str, value: Any, is_input: bool) -> Any:
        if not isinstance(value, torch.Tensor):
            return value
        source = self.ref(value)
        if is_input:  # autograd would return a view of it anyway; made here, it gets its own node
            value = value.view_as(value)
        self.bind(value, self.node("autograd_function", "op", (source,), name, autograd_function=name))
        return value

    # ---- calls -------------------------------------------------------------------------------
    def record(self, func: Any, args: Sequence[Any], kwargs: dict, out: Any) -> None:
        name = resolve_name(func) or getattr(func, "__qualname__", None) or getattr(func, "__name__", str(func))
        op, reflected, inplace = call_traits(name)
        if isinstance(out, float) and not out.is_integer() and args and isinstance(args[0], torch.Tensor):
            # `scale = y.mean().item()`; `x * scale`: the float carries y's value, as fx's item node does
            self.scalars[out] = self.node("item", "op", (self.ref(args[0]),), name)
            return
        if op in _ESCAPES and not _has_tensor(out) and args and isinstance(args[0], torch.Tensor):
            file, line = source_of_frame(sys._getframe(1))
            self.escapes.setdefault(f"{op}() at {file}:{line}", None)
        if not _has_tensor(out) and op != "setitem":
            return  # x.dim(), x.shape, bool(t): no value flows on
        operands = self.operands(args, kwargs)
        if reflected and len(operands) >= 2:
            operands = (operands[1], operands[0], *operands[2:])
        if op == "getitem":
            op = "getitem_key" if isinstance(args[1] if len(args) > 1 else None, str) else "getitem"
        kind, op = op_kind(op, random_active=_dropout_active(op, args, kwargs))
        selection, split = selection_of(op, args, kwargs), split_of(op, args, kwargs)
        extra = {**({"selection": selection} if selection else {}), **({"split": split} if split else {})}
        node_id = self.node(op, kind, operands, name, **extra)
        if op == "setitem" or (inplace and args and isinstance(args[0], torch.Tensor)):
            self.bind(args[0], node_id)  # later reads of the mutated tensor see this node
            base = args[0]._base
            if base is not None:  # `h[:, :2].add_(y)` writes through the view into h
                written = (self.ref(base), None, Ref(node_id))
                self.bind(base, self.node("setitem", "op", written, "write through a view"))
        if op != "setitem":
            self.bind_outputs(node_id, op, out, operands)

    # ---- module hooks ------------------------------------------------------------------------
    # A module call runs: [our enter_scope] user pre-hooks [our enter_forward] forward
    # [our forward_returned] user forward hooks [our leave_scope]. The user's hooks are recorded, in
    # the module's scope; the module call returns what the hooks made of forward's result.
    def register(self, module: torch.nn.Module) -> list:
        return [module.register_forward_pre_hook(self.muting(self.enter_scope), with_kwargs=True, prepend=True),
                module.register_forward_pre_hook(self.muting(self.enter_forward), with_kwargs=True),
                module.register_forward_hook(self.muting(self.forward_returned), with_kwargs=True, prepend=True),
                module.register_forward_hook(self.muting(self.leave_scope), with_kwargs=True)]

    def muting(self, hook):
        def muted(*args):
            self.muted += 1
            try:
                return hook(*args)
            finally:
                self.muted -= 1
        return muted

    def enter_scope(self, module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        path = self.paths.get(module, "")
        if path and not self.leaf_depth:
            self.scopes.append(path)

    def enter_forward(self, module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        if _LEAF_TEST.is_leaf_module(module, self.paths.get(module, "")):
            self.leaf_depth += 1
            if self.leaf_depth == 1:
                self.leaf_operands.append(self.operands(args, kwargs))

    def forward_returned(self, module: torch.nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        path = self.paths.get(module, "")
        if not _LEAF_TEST.is_leaf_module(module, path):
            return
        self.leaf_depth -= 1
        if self.leaf_depth == 0:
            operands = self.leaf_operands.pop()
            kind, op = op_kind(normalise_module(module), random_active=module.training, module=True)
            learned = any(p.requires_grad for p in module.parameters())
            node_id = self.node(op, kind, operands, path, name=path.replace(".", "_"), learned=learned)
            self.bind_outputs(node_id, op, output, operands)

    def leave_scope(self, module: torch.nn.Module, args: tuple, kwargs: dict, output: Any) -> Any:
        path = self.paths.get(module, "")
        if not path or self.leaf_depth:
            return None
        owned = self.own_output(path, output)
        self.builder.add_module_call(path, self.output_nodes(owned))
        self.scopes.pop()
        return None if owned is output else owned  # a forward hook's result replaces the output

    def own_output(self, path: str, value: Any) -> Any:
        """A module that returns a tensor computed outside it (its input: a pass-through, an eval-mode
        noise layer) returns it through a `passthrough` node in its own scope, as under fx."""
        if isinstance(value, torch.Tensor):
            source = self.ref(value).node
            if path in self.builder.g.nodes[source]["scopes"]:
                return value
            owned = value.view_as(value)
            self.bind(owned, self.node("passthrough", "op", (Ref(source),), path))
            return owned
        if isinstance(value, (tuple, list)) and not hasattr(value, "_fields"):
            items = [self.own_output(path, v) for v in value]
            return value if all(a is b for a, b in zip(items, value)) else type(value)(items)
        if isinstance(value, dict):
            items = {k: self.own_output(path, v) for k, v in value.items()}
            return value if all(items[k] is value[k] for k in value) else items
        return value

    def output_nodes(self, output: Any) -> tuple[str | None, ...]:
        values = output.values() if isinstance(output, dict) else output if isinstance(output, (tuple, list)) else [output]
        return tuple(self.ref(v).node if isinstance(v, torch.Tensor) else None for v in values)


class _Recorder(TorchFunctionMode):
    def __init__(self, session: _Session) -> None:
        super().__init__()
        self.session = session

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self.session.leaf_depth or self.session.muted:
            return out  # inside an nn built-in (recorded as one module call) or alignguard's own hooks
        if getattr(func, "__name__", "") == "__iter__":  # `for row in t`: rows are unbind's outputs
            rows = list(out)
            self.session.record(torch.unbind, args, {}, tuple(rows))
            return iter(rows)
        self.session.record(func, args, kwargs, out)
        return out


def capture_eager(model: torch.nn.Module, batches: dict | Sequence[dict], training: bool = True,
                  note: str = "") -> ModelGraph:
    """Run the model on each batch under the recorder; the graph is the union of the paths taken."""
    batches = [batches] if isinstance(batches, dict) else list(batches)
    with uncompiled(model) as model:
        session = _Session(model)
        _run(model, session, batches, training)
    builder = session.builder
    for name in sorted(session.functions):
        builder.notes.append(f"custom autograd.Function {name} was inlined by the capture (its backward is "
                             "not in the graph): gradient facts come from autograd on the real model")
    if session.escapes:
        builder.notes.append("values left torch where the recorder cannot follow them (" + ", ".join(
            list(session.escapes)[:3]) + "): if they feed the computation, the graph lacks that edge")
    if note:
        builder.notes.insert(0, note)
    mode = "train" if training else "eval"
    plural = "es" if len(batches) > 1 else ""
    return builder.build(f"eager recorder (TorchFunctionMode + module hooks, {mode} mode, "
                         f"{len(batches)} batch{plural})", training)


def _run(model: torch.nn.Module, session: _Session, batches: list[dict], training: bool) -> None:
    modes = {m: m.training for m in model.modules()}
    handles = []
    try:
        model.train(training)
        for module in dict.fromkeys(session.paths):
            handles.extend(session.register(module))
        with preserved_rng(model), autograd_function_boundaries(session.run_function):
            for batch in batches:  # capturing must not shift the user's random stream
                _run_once(model, session, batch)
    finally:
        for handle in handles:
            handle.remove()
        for module, mode in modes.items():
            module.training = mode


def _run_once(model: torch.nn.Module, session: _Session, batch: dict) -> None:
    session.seen.clear()
    session.scopes.clear()
    session.leaf_depth = 0
    inputs = forward_inputs(model, batch)
    for name, value in inputs.items():
        if isinstance(value, torch.Tensor):
            node_id = session.builder.inputs.get(name) or session.builder.add_input(name, name, fx_op="eager")
            session.bind(value, node_id)
    with _Recorder(session):
        output = model(**inputs)
    for key, value in flatten_output(output):
        if isinstance(value, torch.Tensor):
            session.builder.set_output(key, session.ref(value).node)
    session.tensors.clear()
    session.memory.clear()
    session.elements.clear()
    session.element_nodes.clear()
    session.scalars.clear()
    session.alive.clear()


def preserved_rng(model: torch.nn.Module):
    """Restore the CPU and (for a model on CUDA) the CUDA random state afterwards."""
    devices = sorted({p.device.index or 0 for p in model.parameters() if p.is_cuda})
    return torch.random.fork_rng(devices=devices)


# Tensor methods that hand a value to Python; a non-integral float is followed (see `scalars`).
_ESCAPES = frozenset({"item", "tolist", "numpy", "int"})


def _memory_key(tensor: torch.Tensor) -> tuple | None:
    """Two tensors with this key hold the same values: the same memory, read the same way."""
    if tensor.layout is not torch.strided or tensor.numel() == 0:
        return None
    try:
        storage = tensor.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError):  # tensors without storage (functorch wrappers, meta)
        return None
    return storage, tensor.storage_offset(), tuple(tensor.shape), tensor.stride(), tensor.dtype, tensor.device


def _has_tensor(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return True
    return isinstance(value, (tuple, list)) and any(isinstance(v, torch.Tensor) for v in value)


def _dropout_active(op: str, args: Sequence[Any], kwargs: dict) -> bool:
    if op != "dropout":
        return True
    for name in ("training", "train"):
        if name in kwargs:
            return bool(kwargs[name])
    return bool(args[2]) if len(args) > 2 and isinstance(args[2], bool) else True
