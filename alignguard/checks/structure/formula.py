"""formula: each design equation (e.g. `logit = (M * U_I + B) / T`) is what the graph computes at
the node its left-hand symbol is bound to.

+ and * match in any order and grouping, shape-only ops are skipped, and symbols match exactly
the nodes the spec binds them to. A failure shows the closest partial match: what was found,
what was not, and what the implementation computes instead (e.g. `div(sub(U_I, R_E), T)`).
"""

from __future__ import annotations

from typing import Iterable

from alignguard.checks.base import Check
from alignguard.checks.context import CheckContext
from alignguard.checks.structure.symbols import design_names, resolve_symbol, symbol_where
from alignguard.graph.formula_match import FormulaMatcher, Match, expr_size
from alignguard.graph.model_graph import Ref
from alignguard.results import CheckResult, failed, passed


class FormulaCheck(Check):
    ids = ("formula",)
    explanations = {
        "formula": (
            "Proves that the node bound to the equation's left-hand symbol computes the right-hand side from "
            "the nodes bound to its symbols: + and * commutative and associative, shape-only ops (view, "
            "squeeze, casts ...) skipped, `a - b` also as `a + neg(b)`, `a / b` also as `a * reciprocal(b)`. "
            "It proves the structure, not the values of learned functions (a symbol bound to the wrong tensor "
            "matches the wrong thing: check the bindings). A failure shows the closest partial match and what "
            "the implementation computes instead, e.g. `div(sub(U_I, R_E), T)` for the seed's additive head. "
            "Fix: compute the design equation, or bind the symbols to the tensors that play those roles."
        ),
    }

    def applies(self, spec) -> bool:
        return bool(spec.formulas)

    def run(self, context: CheckContext) -> Iterable[CheckResult]:
        for formula in context.spec.formulas:
            yield self._judge(context, formula)

    def _judge(self, context: CheckContext, formula) -> CheckResult:
        equation = formula.parsed
        element = f"formula {equation.lhs}"
        expected = equation.text
        fix_why = f" ({formula.why})" if formula.why else ""
        graph = context.graph
        lhs = resolve_symbol(context, equation.lhs).node
        if lhs is None:
            return failed("formula", element, expected, f"{equation.lhs} matched nothing in the graph",
                          fix=f"bind {equation.lhs} first (see symbol.bound)")
        symbols = {name: resolve_symbol(context, name).node for name in sorted(equation.symbols() - {equation.lhs})}
        matcher = FormulaMatcher(graph, symbols)
        names = design_names(context)
        computed = f"{equation.lhs} = {names.describe(lhs)}"
        match = matcher.match(equation.rhs, Ref(lhs))
        where = symbol_where(graph, graph.skip_transparent(lhs))
        details = {"matched": match.skeleton, "score": f"{match.score}/{expr_size(equation.rhs)}"}
        if match.ok and not match.wildcards:
            return passed("formula", element, expected, f"{computed} ({graph.where_text(lhs)})", where=where,
                          details=details)
        if match.ok:
            unbound = ", ".join(sorted(set(match.wildcards)))
            return failed("formula", element, expected,
                          f"the structure matches ({computed}) but {unbound} are not bound, so their roles are "
                          "unproven", fix=f"bind {unbound} in the spec's symbols", where=where, details=details)
        elsewhere = self._elsewhere(graph, matcher, equation.rhs, lhs)
        if elsewhere:
            return failed("formula", element, expected,
                          f"the design expression is computed at {names.label(elsewhere)}, but {computed}",
                          fix=f"return that expression as {equation.lhs}, or bind {equation.lhs} to it{fix_why}",
                          where=symbol_where(graph, elsewhere), details=details)
        return failed("formula", element, expected, f"{computed} ({graph.where_text(lhs)}); "
                      f"{self._partial(names, graph, match, graph.where_text(lhs))}",
                      fix=f"compute {equation.text}{fix_why}",
                      where=self._miss_where(graph, match) or where, details=details)

    @staticmethod
    def _elsewhere(graph, matcher: FormulaMatcher, rhs, lhs: str) -> str | None:
        """A full match of the right-hand side upstream of the symbol (nearest first), if any."""
        order = {n: i for i, n in enumerate(graph.graph)}  # capture order: later is nearer the output
        for node in sorted(graph.reachable([lhs], reverse=True) - {lhs}, key=lambda n: -order[n]):
            match = matcher.match(rhs, Ref(node))
            if match.ok and not match.wildcards:
                return node
        return None

    @staticmethod
    def _partial(names, graph, match: Match, lhs_at: str) -> str:
        found = "matched nothing of it" if match.skeleton == "?" else f"matched {match.skeleton}"
        missing = []
        for miss in match.misses[:4]:
            if miss.node is None:
                missing.append(f"{miss.expr} (no operand there)")
            else:
                at = graph.where_text(miss.node)
                missing.append(f"{miss.expr}: the implementation computes {names.describe(miss.node, top=True)} "
                               f"instead{f' ({at})' if at and at != lhs_at else ''}")
        return f"{found}; not found: " + "; ".join(missing) if missing else found

    @staticmethod
    def _miss_where(graph, match: Match):
        for miss in match.misses:
            if miss.node is not None:
                return symbol_where(graph, miss.node)
        return None

