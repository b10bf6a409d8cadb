"""Read and intervene on design symbols by running the real model, with no traced graph.

A symbol bound to a forward output is read from what forward returns; a symbol bound to a
module output is read by a forward hook on that module. To *intervene* (add δ to U_I, make it
a leaf to differentiate through), the tensor is rewritten where it is produced:

* by a forward hook on the module that returns it (a discovery run records every module call's
  outputs and matches forward's output by identity), or, when no submodule returns it,
* by a `TorchFunctionMode` that rewrites the result of the torch call that created it inside
  forward (e.g. `R_E = softplus(head(z_E)).squeeze(-1)`: the `squeeze`), found in the same
  discovery run by its position in the sequence of torch calls.

A tensor no torch call produced (an input returned as is) cannot be intervened on: that raises
`SymbolError` saying why, and the probe fails rather than passes.
"""

from __future__ import annotations

import os
import sys
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping

import torch
from torch.overrides import TorchFunctionMode

from alignguard.spec.model import SymbolBinding

Edit = Callable[[torch.Tensor], torch.Tensor]
_TORCH_DIR = os.path.dirname(torch.__file__)


class SymbolError(Exception):
    """A symbol that cannot be read or intervened on; the message says why (for a FAIL)."""


class ForwardError(Exception):
    """The model's own forward raised; `original` is the user's exception."""

    def __init__(self, original: BaseException):
        super().__init__(f"{type(original).__name__}: {original}")
        self.original = original


@dataclass(frozen=True)
class Site:
    """Where a symbol's tensor is produced: the `call`-th call of `module` (element `index`), or,
    with `op` set, the `op`-th torch call of forward (`op_name`, at `file`:`line`)."""

    module: str | None
    index: int | None  # element of a tuple/list output; None: the output itself
    call: int = 0  # 0-based call number of the module (the last call when called several times)
    also: tuple[int, ...] = ()  # other elements holding the very same tensor (eval's z_I is mu), edited alike
    op: int | None = None
    op_name: str = ""
    file: str | None = None
    line: int | None = None

    def describe(self) -> str:
        element = f"[{self.index}]" if self.index is not None else ""
        if self.op is not None:
            return f"the result{element} of `{self.op_name}` in forward" + (f" ({self.location()})" if self.file else "")
        return f"output of module '{self.module}'{element}"

    def location(self) -> str:
        return f"{self.file}:{self.line}" if self.file else ""


class _TorchCalls(TorchFunctionMode):
    """Counts forward's torch calls; records their tensor results, or rewrites chosen ones."""

    def __init__(self, record: bool = False, edits: Mapping[int, tuple[int | None, Edit]] | None = None):
        super().__init__()
        self.count, self.paused = -1, False
        self.record = record
        self.events: list[tuple[int, Any, str, str | None, int | None]] = []
        self.edits = dict(edits or {})

    def __torch_function__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        if self.paused:
            return result
        self.count += 1
        if self.record and any(isinstance(e, torch.Tensor) for _, e in _elements(result)):
            self.events.append((self.count, result, getattr(func, "__name__", str(func)), *_caller()))
        if self.count in self.edits:
            result = _edit(result, self.edits[self.count], "a torch call")
        return result

    @contextmanager
    def pause(self) -> Iterator[None]:
        """Torch calls our own hooks make must not shift forward's call numbering."""
        self.paused, was = True, self.paused
        try:
            yield
        finally:
            self.paused = was


def _edit(output: Any, site_edit: tuple["Site", Edit], where: str) -> Any:
    """The output with the site's element (and every position holding the same tensor) edited once."""
    site, edit = site_edit
    value = edit(_select(output, site.index, where))
    for index in (site.index, *site.also):
        output = _replace(output, index, value)
    return output


def _caller() -> tuple[str | None, int | None]:
    """file:line of the innermost frame outside torch and this module (the user's line)."""
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename
        if not name.startswith(_TORCH_DIR) and name != __file__:
            return name, frame.f_lineno
        frame = frame.f_back
    return None, None


def forward_value(outputs: Any, key: str) -> Any:
    """forward's output `key`: a dict key, an attribute, or a tuple index; a dotted path
    (`0.1`, `heads.mu`) walks nested outputs one step at a time when no element has the whole key."""
    if "." in key and not _has(outputs, key):
        value = outputs
        for part in key.split("."):
            value = _forward_value(value, part)
        return value
    return _forward_value(outputs, key)


def _has(outputs: Any, key: str) -> bool:
    return key in outputs if isinstance(outputs, Mapping) else hasattr(outputs, key)


def _forward_value(outputs: Any, key: str) -> Any:
    if isinstance(outputs, torch.Tensor) and key == "output":
        return outputs  # a forward that returns one tensor: the capture names it 'output'
    if isinstance(outputs, Mapping):
        if key in outputs:
            return outputs[key]
        raise SymbolError(f"matched nothing: forward returns no key '{key}' (keys: {', '.join(map(str, outputs))})")
    if hasattr(outputs, key):
        return getattr(outputs, key)
    if isinstance(outputs, (tuple, list)) and key.isdigit() and int(key) < len(outputs):
        return outputs[int(key)]
    raise SymbolError(f"matched nothing: forward returns a {type(outputs).__name__} with no '{key}'")


def output_tensors(outputs: Any) -> dict[str, torch.Tensor]:
    """Every floating-point tensor forward returns, by key."""
    if isinstance(outputs, Mapping):
        items = outputs.items()
    elif isinstance(outputs, (tuple, list)):
        items = ((str(i), v) for i, v in enumerate(outputs))
    elif isinstance(outputs, torch.Tensor):
        items = (("output", outputs),)
    else:
        items = ((k, v) for k, v in vars(outputs).items() if not k.startswith("_"))
    return {str(k): v for k, v in items if isinstance(v, torch.Tensor) and v.is_floating_point()}


def _elements(output: Any) -> list[tuple[int | None, Any]]:
    if isinstance(output, (tuple, list)):
        return list(enumerate(output))
    return [(None, output)]


def _positions(output: Any, same: Callable[[torch.Tensor], bool]) -> tuple:
    """Every element index of `output` holding the tensor (None for a bare tensor)."""
    return tuple(i for i, e in _elements(output) if isinstance(e, torch.Tensor) and same(e))


def _same_tensor(a: torch.Tensor, b: torch.Tensor) -> bool:
    """b is a, or an identical view of a's storage (so editing a edits b element by element)."""
    if a is b:
        return True
    return (a.shape == b.shape and a.dtype == b.dtype and a.stride() == b.stride()
            and a.device == b.device and a.data_ptr() == b.data_ptr())


def _select(output: Any, index: int | None, where: str) -> torch.Tensor:
    if index is None:
        if isinstance(output, (tuple, list)):
            if len(output) != 1:
                raise SymbolError(f"{where} returns {len(output)} values; add `index:` to the binding")
            output = output[0]
    else:
        if not isinstance(output, (tuple, list)) or index >= len(output):
            count = len(output) if isinstance(output, (tuple, list)) else 1
            raise SymbolError(f"{where} returns {count} value(s), so index {index} matched nothing")
        output = output[index]
    if not isinstance(output, torch.Tensor):
        raise SymbolError(f"{where} is a {type(output).__name__}, not a tensor")
    return output


def _replace(output: Any, index: int | None, value: torch.Tensor) -> Any:
    if not isinstance(output, (tuple, list)):
        return value
    items = list(output)
    items[0 if index is None else index] = value
    if isinstance(output, list):
        return items
    return type(output)._make(items) if hasattr(output, "_make") else tuple(items)  # namedtuple or tuple


def _signature(inputs: Mapping[str, Any]) -> tuple:
    return tuple((k, tuple(v.shape), v.dtype) if isinstance(v, torch.Tensor) else (k, type(v)) for k, v in inputs.items())


class SymbolRunner:
    """Runs the model on given inputs, reading and editing symbols by their spec bindings."""

    def __init__(self, model: torch.nn.Module, bindings: Mapping[str, SymbolBinding]):
        self.model = model
        self.bindings = dict(bindings)
        self._sites: dict[tuple, Site] = {}
        self._recorded: dict[tuple, tuple] = {}

    def extended(self, extra: Mapping[str, SymbolBinding]) -> "SymbolRunner":
        """A runner that also knows `extra` bindings and shares this one's located sites."""
        other = SymbolRunner(self.model, {**self.bindings, **extra})
        other._sites, other._recorded = self._sites, self._recorded
        return other

    def binding(self, name: str) -> SymbolBinding:
        if name not in self.bindings:
            raise SymbolError(f"matched nothing: '{name}' is not a bound symbol")
        return self.bindings[name]

    def _module(self, path: str) -> torch.nn.Module:
        try:
            return self.model.get_submodule(path)
        except AttributeError:
            raise SymbolError(f"matched nothing: the model has no module '{path}'") from None

    # ---- running ------------------------------------------------------------------------
    def run(self, inputs: Mapping[str, Any], *, train: bool = False, seed: int = 0,
            observe: Iterable[str] = (), edits: Mapping[str, Edit] | None = None,
            whole: bool = False) -> dict[str, Any]:
        """Run forward once; return the observed symbols (plus '__outputs__': forward's result).

        A symbol bound to a chunk is returned as that chunk, or (`whole`) as the tensor it is a chunk
        of: the one autograd differentiates (a fresh chunk view is on no path to the loss)."""
        observe, edits = list(observe), dict(edits or {})
        sites = {name: self.site(name, inputs, train=train, seed=seed) for name in edits}
        op_edits = {site.op: (site, edits[name]) for name, site in sites.items() if site.op is not None}
        calls_mode = _TorchCalls(edits=op_edits) if op_edits else None
        by_module: dict[str, list[str]] = {}
        for name in observe:
            if self.binding(name).module is not None:
                by_module.setdefault(self.binding(name).module, []).append(name)
        for name, site in sites.items():
            if site.op is None:
                by_module.setdefault(site.module, []).append(name)
        seen: dict[str, Any] = {}
        calls: dict[str, int] = {}

        def make_hook(path: str):
            def hook(module, args, output):
                number = calls[path] = calls.get(path, -1) + 1
                with calls_mode.pause() if calls_mode else _nothing():
                    for name in dict.fromkeys(by_module[path]):
                        site = sites.get(name)
                        if site is not None and site.op is None and site.call == number:
                            output = _edit(output, (site, edits[name]), site.describe())
                        binding = self.binding(name)
                        if name in observe and binding.module is not None:
                            seen[name] = _select(output, binding.index, binding.describe())  # last call wins
                return output
            return hook

        with ExitStack() as stack:
            for path in by_module:
                stack.callback(self._module(path).register_forward_hook(make_hook(path)).remove)
            if calls_mode is not None:
                stack.enter_context(calls_mode)
            outputs = self._forward(inputs, train, seed)
        for name in observe:
            binding = self.binding(name)
            if binding.output is not None:
                value = forward_value(outputs, binding.output)
                if not isinstance(value, torch.Tensor):
                    raise SymbolError(f"forward output '{binding.output}' is a {type(value).__name__}, not a tensor")
                seen[name] = value
            elif name not in seen:
                raise SymbolError(f"module '{binding.module}' is never called in forward: matched nothing")
            if binding.chunk is not None and not whole:
                seen[name] = binding.select(seen[name])
        seen["__outputs__"] = outputs
        return seen

    # ---- locating -----------------------------------------------------------------------
    def site(self, name: str, inputs: Mapping[str, Any], *, train: bool, seed: int) -> Site:
        """Where the symbol's tensor is produced (memoised per symbol, mode and input shapes)."""
        key = (name, train, _signature(inputs))
        if key not in self._sites:
            self._sites[key] = self._find_site(name, inputs, train, seed)
        return self._sites[key]

    def _find_site(self, name: str, inputs: Mapping[str, Any], train: bool, seed: int) -> Site:
        binding = self.binding(name)
        if binding.module is not None:
            self._module(binding.module)
            module_events, _, _ = self._recording(inputs, train, seed)
            calls = [output for path, _, output in module_events if path == binding.module]
            if not calls:
                raise SymbolError(f"module '{binding.module}' is never called in forward: matched nothing")
            _select(calls[-1], binding.index, binding.describe())
            return Site(binding.module, binding.index, len(calls) - 1)
        module_events, op_events, outputs = self._recording(inputs, train, seed)
        target = forward_value(outputs, binding.output)
        if not isinstance(target, torch.Tensor):
            raise SymbolError(f"forward output '{binding.output}' is a {type(target).__name__}, not a tensor")
        # Identity first: a view of the same storage (gradient reversal's view_as) is not the producer.
        # Identity first: a view of the same storage (gradient reversal's view_as) is not the producer.
        for fallback, same in ((False, lambda a: a is target), (True, lambda a: _same_tensor(a, target))):
            matches = [(path, number, positions) for path, number, output in module_events
                       if (positions := _positions(output, same))]
            if matches:  # calls finish inner-first: the last identity match is the outermost wrapper;
                path, number, positions = matches[0] if fallback else matches[-1]  # a view's earliest is its producer
                return Site(path, positions[0], number, also=positions[1:])
            ops = [(count, name, file, line, positions) for count, result, name, file, line in op_events
                   if (positions := _positions(result, same))]
            if ops:  # the call that created the tensor, not a later view of it
                count, op_name, file, line, positions = ops[0]
                return Site(None, positions[0], 0, positions[1:], count, op_name, file, line)
        raise SymbolError(
            f"forward output '{binding.output}' is not produced by any torch call or submodule in forward (an "
            "input returned as is?), so it cannot be intervened on; bind the symbol to the module that "
            "produces it (`module: PATH`)")

    def _recording(self, inputs, train, seed):
        """(module events, torch-call events, outputs) of one forward; cached per inputs and mode."""
        key = (train, seed, tuple((k, id(v)) for k, v in inputs.items()))
        if key not in self._recorded:  # the entry keeps `inputs` alive, so their ids stay unique
            self._recorded[key] = (*self._record_calls(inputs, train, seed), inputs)
        return self._recorded[key][:3]

    def _record_calls(self, inputs, train, seed):
        events: list[tuple[str, int, Any]] = []
        counts: dict[str, int] = {}

        def make_hook(path: str):
            def hook(module, args, output):
                counts[path] = counts.get(path, -1) + 1
                events.append((path, counts[path], output))
            return hook

        with ExitStack() as stack:
            for path, module in self.model.named_modules():
                if path:
                    stack.callback(module.register_forward_hook(make_hook(path)).remove)
            calls_mode = stack.enter_context(_TorchCalls(record=True))
            outputs = self._forward(inputs, train, seed)
        return events, calls_mode.events, outputs

    def _forward(self, inputs: Mapping[str, Any], train: bool, seed: int) -> Any:
        was_training = self.model.training
        self.model.train(train)
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                try:
                    return self.model(**inputs)
                except SymbolError:
                    raise
                except Exception as exc:
                    raise ForwardError(exc) from exc
        finally:
            self.model.train(was_training)


@contextmanager
def _nothing() -> Iterator[None]:
    yield
