"""pattern.forbidden: computations the design rules out, found anywhere on the path to a symbol.

`additive_mix`: an add/sub node on a path to `on_path_to` whose one operand derives from `left`
only and the other from `right` only, the seed's `U_I - R_E` head. Such a head is translation-
symmetric: (U_I + δ, R_E + δ) gives the same prediction, so the two terms are not identifiable
and their "disentanglement" is fake. Three reachability passes, whatever the graph size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from alignguard.checks.base import Check
from alignguard.checks.context import CheckContext
from alignguard.checks.structure.symbols import Resolution, design_names, element_nodes, resolve_symbol, symbol_where
from alignguard.graph.analysis import operand_refs
from alignguard.results import CheckResult, failed, passed


class PatternCheck(Check):
    ids = ("pattern.forbidden",)
    explanations = {
        "pattern.forbidden": (
            "Proves that no add/sub node on a data-flow path to the pattern's `on_path_to` symbol combines an "
            "operand derived from `left` only (e.g. the DNA input x) with one derived from `right` only (e.g. "
            "the cell context c). Such an additive head, like the seed's P = sigmoid((U_I - R_E)/T), is "
            "translation-symmetric: (U_I+δ, R_E+δ) gives the same prediction, so U_I and R_E are not "
            "identifiable. A sum of a mixed term and a pure one (M(c)*U_I + B(c)) is allowed. It cannot see "
            "symmetries hidden inside learned layers (the translation probe measures those); the identifiability "
            "check reports a translation between the two terms that passes through no add/sub (log(e^U_I / "
            "e^R_E)) and otherwise defers to this one, so the head is reported once. Fix: modulate "
            "multiplicatively, logit = (M(c) * U_I + B(c)) / T(c)."
        ),
    }

    def applies(self, spec) -> bool:
        return bool(spec.forbidden_patterns)

    def run(self, context: CheckContext) -> Iterable[CheckResult]:
        for pattern in context.spec.forbidden_patterns:
            yield self._judge(context, pattern)

    def _judge(self, context: CheckContext, pattern) -> CheckResult:
        element = f"pattern {pattern.name}"
        ops = "/".join(pattern.ops)
        expected = (f"no {ops} on the path to {pattern.on_path_to} between a term derived from {pattern.left} only "
                    f"and one derived from {pattern.right} only")
        hits = additive_mix_hits(context, pattern)
        if isinstance(hits, Unresolved):
            return failed("pattern.forbidden", element, expected, hits.found, fix=hits.fix)
        if not hits:
            return passed("pattern.forbidden", element, expected,
                          f"no {ops} on the path to {pattern.on_path_to} mixes a pure {pattern.left} term with a "
                          f"pure {pattern.right} term")
        graph = context.graph
        names = design_names(context)
        findings = [self._symmetry(names, graph, node) for node in hits]
        why = f" ({pattern.why})" if pattern.why else ""
        return failed("pattern.forbidden", element, expected, "; ".join(findings[:3]),
                      fix="modulate multiplicatively instead, e.g. logit = (M(c) * U_I + B(c)) / T(c): a product "
                      f"with a context-dependent scale breaks the symmetry{why}",
                      where=symbol_where(graph, hits[0]), details={"nodes": hits})

    @staticmethod
    def _symmetry(names, graph, node: str) -> str:
        a, b = (names.describe(r, depth=2, top=False) for r in operand_refs(graph, node))
        op = graph.node(node)["op"]
        sign, shift = ("-", f"({a}+δ, {b}+δ)") if op == "sub" else ("+", f"({a}+δ, {b}-δ)")
        return (f"{a} {sign} {b} at {graph.where_text(node) or node} is translation-symmetric: {shift} gives the "
                f"same prediction, so {a} and {b} are not identifiable")


@dataclass(frozen=True)
class Unresolved:
    """A pattern end that matched nothing: what was found, and how to fix it."""

    found: str
    fix: str


def additive_mix_hits(context: CheckContext, pattern) -> "list[str] | Unresolved":
    """The add/sub nodes (graph order) on the path to `on_path_to` that mix a `left`-only and a `right`-only
    operand, or Unresolved when an end matched nothing. Memoised: identifiability asks it too, so that a
    translation this pattern already reports is not reported twice."""
    return context.memo(f"additive_mix:{pattern.name}", lambda: _hits(context, pattern))


def _hits(context: CheckContext, pattern) -> "list[str] | Unresolved":
    ends = {}
    for role in ("left", "right"):
        nodes = element_nodes(context, getattr(pattern, role))
        if isinstance(nodes, Resolution):
            return Unresolved(f"{role} '{getattr(pattern, role)}' matched nothing: {nodes.found}",
                              f"bind or implement '{getattr(pattern, role)}'")
        ends[role] = nodes
    target = resolve_symbol(context, pattern.on_path_to).node
    if target is None:
        return Unresolved(f"{pattern.on_path_to} matched nothing", f"bind {pattern.on_path_to} first (see symbol.bound)")
    graph = context.graph
    index = graph.index
    from_left, from_right = index.reach(ends["left"]), index.reach(ends["right"])
    only_left, only_right = from_left & ~from_right, from_right & ~from_left
    first, second = index.operand_pair[:, 0], index.operand_pair[:, 1]
    binary = graph.reach_mask([target], reverse=True) & index.of_kind("op", pattern.ops) & (first >= 0)
    mixes = (only_left[first] & only_right[second]) | (only_right[first] & only_left[second])
    return index.names[binary & mixes].tolist()
