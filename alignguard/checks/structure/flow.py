"""flow.required and flow.forbidden: data-flow paths between inputs, symbols and components.

`x -> z_I -> U_I -> logit` must exist; `c -> z_I` must not (the encoder must never see the cell
context, or z_I cannot be swap-invariant). A forbidden path is reported as its whole chain of
nodes, shortest first, each with its source line; a missing one says which hop breaks.
"""

from __future__ import annotations

from typing import Iterable

from alignguard.checks.base import Check
from alignguard.checks.context import CheckContext
from alignguard.checks.structure.symbols import Resolution, design_names, element_nodes, symbol_where
from alignguard.graph.analysis import render_chain, shortest_chain
from alignguard.results import CheckResult, failed, passed


class FlowCheck(Check):
    ids = ("flow.required", "flow.forbidden")
    explanations = {
        "flow.required": (
            "Proves that the captured forward graph has a data-flow path from the rule's `from` element "
            "through each `via` element, in order, to its `to` element (elements are inputs, symbols or "
            "components; a component stands for every node computed inside its module). It cannot prove the "
            "path carries useful signal, only that values flow. Fails, saying which hop breaks, when the "
            "design's pipeline is cut (e.g. U_I computed from h instead of z_I). Fix: compute the later element "
            "from the earlier one, or correct the symbol bindings."
        ),
        "flow.forbidden": (
            "Proves that no data-flow path exists between the two elements (e.g. `c -> z_I`: the invariant "
            "encoder must never see the cell context). A violation is reported as the whole shortest chain of "
            "nodes with file:line, up to three chains entering the target at different places. Shape-only "
            "reads (`randn_like(c)`, `c.size(0)`) are not data flow. Fix: remove the forbidden input from the "
            "chain (usually a concatenation at the first reported line), or add an explicit invariance loss "
            "if the design allows it."
        ),
    }

    def applies(self, spec) -> bool:
        return bool(spec.flow.required or spec.flow.forbidden)

    def run(self, context: CheckContext) -> Iterable[CheckResult]:
        for rule in context.spec.flow.required:
            yield self._judge(context, rule, required=True)
        for rule in context.spec.flow.forbidden:
            yield self._judge(context, rule, required=False)

    def _judge(self, context: CheckContext, rule, required: bool) -> CheckResult:
        check_id = "flow.required" if required else "flow.forbidden"
        element = f"flow {rule.describe()}"
        expected = f"a data-flow path {rule.describe()}" if required else f"no data-flow path {rule.describe()}"
        ends = [(name, element_nodes(context, name)) for name in rule.endpoints()]
        for name, nodes in ends:
            if isinstance(nodes, Resolution):
                return failed(check_id, element, expected, f"'{name}' matched nothing: {nodes.found}",
                              fix=f"bind or implement '{name}' (see symbol.bound / component.called)")
        graph = context.graph
        sets = [nodes for _, nodes in ends]
        chains = shortest_chain(graph, sets[0], sets[1:-1], sets[-1], limit=1 if required else 3)
        names = design_names(context)
        if required and chains:
            return passed(check_id, element, expected, f"{len(chains[0])}-node path "
                          f"{render_chain(names, [chains[0][0], chains[0][-1]])}",
                          where=symbol_where(graph, chains[0][-1]), details={"chain": chains[0]})
        if required:
            return failed(check_id, element, expected, self._break(context, rule, sets),
                          fix=f"compute each element of {rule.describe()} from the one before it"
                          + (f" ({rule.why})" if rule.why else ""))
        if not chains:
            return passed(check_id, element, expected, f"'{rule.target}' never depends on '{rule.source}'")
        shown = "; or ".join(render_chain(names, chain) for chain in chains)
        entry = chains[0][1] if len(chains[0]) > 1 else chains[0][0]
        return failed(check_id, element, expected, f"{rule.source} flows into {rule.target}: {shown}",
                      fix=f"remove {rule.source} from this chain; it first enters at "
                      f"{graph.where_text(entry) or entry}" + (f" ({rule.why})" if rule.why else ""),
                      where=symbol_where(graph, entry), details={"chains": chains})

    def _break(self, context: CheckContext, rule, sets: list) -> str:
        """Which hop of a required path is missing: the first element the previous ones cannot reach."""
        reached = sets[0]
        names = rule.endpoints()
        for index in range(1, len(sets)):
            following = sets[index][context.graph.index.reach(reached)[sets[index]]]
            if len(following) == 0:
                return (f"no data-flow path from {' -> '.join(names[:index])} to {names[index]}"
                        if index > 1 else f"{names[index]} does not depend on {names[0]}")
            reached = following
        return "no path"

