"""Read and intervene on design symbols by running the real model, with no traced graph.

A symbol bound to a forward output is read from what forward returns; a symbol bound to a
module output is read by a forward hook on that module. To *intervene* (add δ to U_I, make it
a leaf to differentiate through), a forward hook rewrites the output of the module that produces
the tensor. For a forward output, that module is found by a discovery run that records every
module call's output tensors and matches forward's output by identity (or as an identical view
of the same storage). An output computed inside forward itself, by no submodule, cannot be
intervened on: that raises `SymbolError` saying why, and the probe fails rather than passes.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

import torch

from alignguard.spec.model import SymbolBinding

Edit = Callable[[torch.Tensor], torch.Tensor]


class SymbolError(Exception):
    """A symbol that cannot be read or intervened on; the message says why (for a FAIL)."""


class ForwardError(Exception):
    """The model's own forward raised; `original` is the user's exception."""

    def __init__(self, original: BaseException):
        super().__init__(f"{type(original).__name__}: {original}")
        self.original = original


@dataclass(frozen=True)
class Site:
    """Where a symbol's tensor is produced: the `call`-th call of `module`, element `index`."""

    module: str
    index: int | None  # element of a tuple/list output; None: the output itself
    call: int  # 0-based call number (the last call when a module is called several times)

    def describe(self) -> str:
        return f"output of module '{self.module}'" + (f"[{self.index}]" if self.index is not None else "")


def forward_value(outputs: Any, key: str) -> Any:
    """forward's output `key`: a dict key, an attribute, or a tuple index."""
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


class SymbolRunner:
    """Runs the model on given inputs, reading and editing symbols by their spec bindings."""

    def __init__(self, model: torch.nn.Module, bindings: Mapping[str, SymbolBinding]):
        self.model = model
        self.bindings = dict(bindings)
        self._sites: dict[tuple[str, bool], Site] = {}
        self._recorded: dict[tuple, tuple[list[tuple[str, int, Any]], Any, Any]] = {}

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

    def run(self, inputs: Mapping[str, Any], *, train: bool = False, seed: int = 0,
            observe: Iterable[str] = (), edits: Mapping[str, Edit] | None = None) -> dict[str, torch.Tensor]:
        """Run forward once; return the observed symbols (plus '__outputs__': forward's result)."""
        observe, edits = list(observe), dict(edits or {})
        sites = {name: self.site(name, inputs, train=train, seed=seed) for name in edits}
        hooked = {n for n in observe if self.binding(n).module is not None} | set(sites)
        by_module: dict[str, list[str]] = {}
        for name in hooked:
            path = sites[name].module if name in sites else self.binding(name).module
            by_module.setdefault(path, []).append(name)
        seen: dict[str, torch.Tensor] = {}
        calls: dict[str, int] = {}

        def make_hook(path: str):
            def hook(module, args, output):
                number = calls[path] = calls.get(path, -1) + 1
                for name in by_module[path]:
                    site = sites.get(name)
                    if site is not None and site.call == number:
                        value = _select(output, site.index, site.describe())
                        output = _replace(output, site.index, edits[name](value))
                    if name in observe and self.binding(name).module is not None:
                        binding = self.binding(name)
                        seen[name] = _select(output, binding.index, binding.describe())  # last call wins
                return output
            return hook

        with ExitStack() as stack:
            for path in by_module:
                stack.callback(self._module(path).register_forward_hook(make_hook(path)).remove)
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
        seen["__outputs__"] = outputs
        return seen

    def site(self, name: str, inputs: Mapping[str, Any], *, train: bool, seed: int) -> Site:
        """The module call that produces the symbol's tensor (memoised per symbol and mode)."""
        key = (name, train)
        if key not in self._sites:
            self._sites[key] = self._find_site(name, inputs, train, seed)
        return self._sites[key]

    def _find_site(self, name: str, inputs: Mapping[str, Any], train: bool, seed: int) -> Site:
        binding = self.binding(name)
        if binding.module is not None:
            self._module(binding.module)
            events, _ = self._record_calls(inputs, train, seed, only=binding.module)
            calls = [output for _, _, output in events]
            if not calls:
                raise SymbolError(f"module '{binding.module}' is never called in forward: matched nothing")
            _select(calls[-1], binding.index, binding.describe())
            return Site(binding.module, binding.index, len(calls) - 1)
        # One recording run per inputs and mode serves every output-bound symbol.
        key = (train, seed, tuple((k, id(v)) for k, v in inputs.items()))
        if key not in self._recorded:  # the entry keeps `inputs` alive, so their ids stay unique
            self._recorded[key] = (*self._record_calls(inputs, train, seed), inputs)
        events, outputs, _ = self._recorded[key]
        target = forward_value(outputs, binding.output)
        if not isinstance(target, torch.Tensor):
            raise SymbolError(f"forward output '{binding.output}' is a {type(target).__name__}, not a tensor")
        found = None
        for path, number, output in events:  # in the order calls finish: the last match is the outermost
            for index, element in _elements(output):
                if isinstance(element, torch.Tensor) and _same_tensor(element, target):
                    found = Site(path, index, number)
        if found is None:
            raise SymbolError(
                f"forward output '{binding.output}' is computed in forward itself, not returned by any "
                f"submodule, so it cannot be intervened on; compute it in a submodule, or bind the symbol "
                f"to the module that produces it (`module: PATH`)")
        return found

    def _record_calls(self, inputs, train, seed, only: str | None = None) -> tuple[list[tuple[str, int, Any]], Any]:
        """(path, call number, output) of every module call, in the order the calls finish."""
        events: list[tuple[str, int, Any]] = []
        counts: dict[str, int] = {}

        def make_hook(path: str):
            def hook(module, args, output):
                counts[path] = counts.get(path, -1) + 1
                events.append((path, counts[path], output))
            return hook

        with ExitStack() as stack:
            for path, module in self.model.named_modules():
                if path and (only is None or path == only):
                    stack.callback(module.register_forward_hook(make_hook(path)).remove)
            outputs = self._forward(inputs, train, seed)
        return events, outputs

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
