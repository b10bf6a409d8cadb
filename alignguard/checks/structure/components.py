"""component.called and component.on_path: each design component is a module that forward
calls, and whose output reaches the symbols the spec names.
"""

from __future__ import annotations

from typing import Iterable

from alignguard.checks.base import Check
from alignguard.checks.context import CheckContext
from alignguard.checks.modules import module_exists, suggest_module
from alignguard.checks.structure.symbols import resolve_symbol
from alignguard.results import CheckResult, Where, failed, passed


def _child_called(path: str, called: set[str]) -> bool:
    return any(name.startswith(path + ".") for name in called)


class ComponentCheck(Check):
    ids = ("component.called", "component.on_path")
    explanations = {
        "component.called": (
            "The module that implements a design component exists at the spec's module path and is "
            "called during forward (train mode). A module that is built but never called contributes "
            "nothing: the seed's information bottleneck was exactly that. Fix: call the module in "
            "forward, or correct the module path in the spec."
        ),
        "component.on_path": (
            "The component's output reaches every symbol listed in its `reaches` in the captured data-flow "
            "graph; a component whose result is computed but discarded fails. Fix: feed its output into "
            "the computation of that symbol."
        ),
    }

    def applies(self, spec) -> bool:
        return bool(spec.components)

    def run(self, context: CheckContext) -> Iterable[CheckResult]:
        graph = context.graph
        called = graph.called_modules()
        for name, component in context.spec.components.items():
            element = f"component {name}"
            path = component.module
            if not module_exists(context.model, path):
                yield failed("component.called", element, f"a module at '{path}'", "no such module",
                             fix=suggest_module(context.model, path), where=Where(module=path))
                continue
            # '' is the root (forward itself); a container (ModuleList/ModuleDict) is never called itself,
            # only its children are: it counts as called when one of them is
            if component.called and path and path not in called and not _child_called(path, called):
                yield failed("component.called", element, f"'{path}' called in forward",
                             "the module is built but never called (matched nothing in the graph)",
                             fix=f"call self.{path} in forward on the path to the prediction",
                             where=Where(module=path))
                continue
            if component.called:
                yield passed("component.called", element, f"'{path}' called in forward",
                             f"{len(graph.index.scopes.get(path, ())) or 1} node(s) in its scope",
                             where=Where(module=path))
            yield from self._on_path(context, name, component)

    def _on_path(self, context: CheckContext, name: str, component) -> Iterable[CheckResult]:
        graph = context.graph
        produced = graph.module_nodes(component.module)
        for symbol in component.reaches:
            element = f"component {name}"
            expected = f"output of '{component.module}' reaches {symbol}"
            target = resolve_symbol(context, symbol)
            if target.node is None:
                yield failed("component.on_path", element, expected,
                             f"symbol {symbol} is not bound ({target.found}): matched nothing",
                             fix=f"bind {symbol} first (see symbol.bound)", where=Where(module=component.module))
            elif not len(produced):
                yield failed("component.on_path", element, expected, "the module produced no graph nodes",
                             fix=f"call self.{component.module} in forward", where=Where(module=component.module))
            elif graph.reach_mask([target.node], reverse=True)[produced].any():
                yield passed("component.on_path", element, expected, f"path to node {target.node}",
                             where=Where(module=component.module))
            else:
                yield failed("component.on_path", element, expected,
                             f"no data-flow path from '{component.module}' to {symbol} (node {target.node})",
                             fix=f"use the output of {component.module} when computing {symbol}",
                             where=Where(module=component.module))
