"""identifiability: the formula's own symmetries, and whether the implementation leaves them free.

`logit = (M*U_I + B)/T` predicts the same after (M, B, T) -> k·(M, B, T). Whether that makes T
meaningless depends on what k may depend on: each moved symbol must stay a function of the inputs it
reads, so k can depend only on the inputs (or named input parts; for an input without parts, the
disjoint slices forward reads) *every* moved symbol reads. A gauge
that can depend on a non-constant input is a finding (T(c) is then arbitrary within the orbit and
cannot be read as chromatin sharpness); a global constant gauge is a note; a symbol the spec lists
under `identifiable` fails on any gauge. A symmetry that must move a symbol no trainable parameter
reaches (a frozen bias model's output) is pinned: a note. A translation between a term derived from
`left` only and one from `right` only is the `additive_mix` a forbidden pattern names (the seed's
U_I − R_E head); pattern.forbidden reports it when its scan sees it, so it is reported once.

The symmetries come from the formula (alignguard.spec.symmetry), the dependencies from the captured
graph, and each reported gauge is confirmed on the real model: the moved symbols are set by
intervention (forward hooks) and the output must not change, while moving one symbol alone does.
When the implementation computes something other than the formula, the expression it does compute
at the formula's left-hand symbol (e.g. `(U_I − R_E)/T`) is analysed too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from alignguard.checks.base import Check
from alignguard.checks.context import CheckContext
from alignguard.checks.structure.symbols import Resolution, design_names, element_nodes, resolve_symbol, symbol_where
from alignguard.results import CheckResult, failed, passed
from alignguard.spec.formula import FUNCTIONS, BinOp, Call, Const, Expr, Neg, Symbol
from alignguard.spec.model import SymbolBinding
from alignguard.spec.symmetry import ONE, Symmetry, find_symmetries

CHECK_ID = "identifiability"
GAUGE_STEP = 0.5  # size of the finite move (k = e^±0.5, δ = ±0.5) used to confirm a symmetry on the model
TOLERANCE = 1e-4  # relative: an output change below this is "unchanged"
_ARITHMETIC = {"add": "add", "sub": "sub", "mul": "mul", "div": "div"}


@dataclass
class Analysed:
    """One expression to analyse: the spec's formula or the one the implementation computes."""

    lhs: str
    rhs: Expr
    leaves: dict[str, str]  # symbol -> graph node
    source: str  # "formula" or "implementation"
    bindings: dict[str, SymbolBinding]  # how to intervene on each leaf in the real model


class IdentifiabilityCheck(Check):
    ids = (CHECK_ID,)
    explanations = {
        CHECK_ID: (
            "Finds each design formula's continuous symmetries, scalings and compensated shifts of its symbols "
            "(for logit = (M*U_I + B)/T: (M, B, T) -> k·(M, B, T), (U_I+δ, B−M·δ), (k·M, U_I/k), (U_I, B, T) -> "
            "k·(U_I, B, T)), numerically from the formula. From the captured graph it finds which inputs, or named "
            "input parts (an input without parts: the disjoint slices forward reads, c[:, :-1] and c[:, -1:]), each "
            "moved symbol depends on: the gauge k can depend only on inputs every moved symbol "
            "reads (a move that needs a symbol the moved one cannot see, like B+U_I·δ with B blind to x, is not "
            "available). A gauge that can depend on a non-constant input fails: 'M, B and T are determined only up "
            "to k(c)', so T(c) cannot be read as sharpness. A global constant gauge is a note, unless a moved "
            "symbol is listed under `identifiable:` in the spec. A symmetry that moves a symbol training cannot move "
            "(every parameter it reads is frozen, by `gradients.frozen` or requires_grad=False, or it reads none) is "
            "pinned, a note that names what pins it: ChromBPNet's (acc_profile+δ, bias_profile−δ) with the bias "
            "model frozen; a symmetry among the other symbols is judged on its own. A translation between a term "
            "derived only from a forbidden pattern's `left` and one derived only from its `right` (the seed's U_I − "
            "R_E head: (U_I+δ, R_E+δ)) is that `additive_mix` pattern: reported once, by pattern.forbidden when its "
            "add/sub scan finds it (a note here), and here when it cannot (through exp or a division). Each reported gauge is confirmed on the real model by "
            "setting the moved symbols (forward hooks, eval mode): the output must stay within 1e-4 while moving one "
            "symbol alone changes it. When the graph computes something else at the formula's left-hand symbol, "
            "that expression (e.g. (U_I − R_E)/T) is analysed as well. Limits: it searches scalings, shifts "
            "compensated by a term linear in another symbol, and shifts compensated by a scaling (exp(a)·b's "
            "log-scale shift (a+δ, e^(−δ)·b)), not every Lie symmetry (a move whose rate is non-linear in a symbol "
            "is not found); it cannot see a normalisation that pins a constant (T = 1 at a reference input), so "
            "`identifiable: [T]` fails on such a design too. Fix: let the moved symbols see disjoint "
            "inputs so the gauge can only be a constant (e.g. M from the cell descriptor only, T from "
            "accessibility only, with flow.forbidden rules to keep it so), and fix the constant by a normalisation "
            "(T = 1 at a reference accessibility)."
        ),
    }

    def applies(self, spec) -> bool:
        return bool(spec.formulas)

    def run(self, context: CheckContext) -> Iterable[CheckResult]:
        for formula in context.spec.formulas:
            yield from self._judge_formula(context, formula)

    # ---- what to analyse ---------------------------------------------------------------------
    def _judge_formula(self, context: CheckContext, formula) -> Iterable[CheckResult]:
        from alignguard.graph.formula_match import FormulaMatcher
        from alignguard.graph.model_graph import Ref

        equation = formula.parsed
        graph = context.graph
        element = f"formula {equation.lhs}"
        lhs = resolve_symbol(context, equation.lhs).node
        if lhs is None:
            yield failed(CHECK_ID, element, "the formula's symmetries pinned", f"{equation.lhs} matched nothing",
                         fix=f"bind {equation.lhs} first (see symbol.bound)")
            return
        names = sorted(equation.symbols() - {equation.lhs})
        nodes = {name: resolve_symbol(context, name).node for name in names}
        spec_bindings = dict(context.spec.symbols)
        analysed = []
        unbound = [name for name, node in nodes.items() if node is None]
        if not unbound:
            analysed.append(Analysed(equation.lhs, equation.rhs, nodes, "formula", spec_bindings))
        if unbound or not FormulaMatcher(graph, nodes).match(equation.rhs, Ref(lhs)).ok:
            implementation = implementation_expression(context, lhs)
            if implementation is not None:
                rhs, leaves = implementation
                bindings = {name: spec_bindings.get(name) or SymbolBinding(output=name) for name in leaves}
                analysed.append(Analysed(equation.lhs, rhs, leaves, "implementation", {**spec_bindings, **bindings}))
        if not analysed:
            yield failed(CHECK_ID, element, "the formula's symmetries pinned",
                         f"cannot judge: {', '.join(unbound)} matched nothing, and what the graph computes at "
                         f"{equation.lhs} is not an arithmetic expression of named tensors",
                         fix=f"bind {', '.join(unbound)} in the spec's symbols", where=symbol_where(graph, lhs))
            return
        for item in analysed:
            yield from self._judge(context, item)

    # ---- judging one expression --------------------------------------------------------------
    def _judge(self, context: CheckContext, item: Analysed) -> Iterable[CheckResult]:
        expression = f"{item.lhs} = {render(item.rhs)}"
        element = f"formula {item.lhs}" + (" (as implemented)" if item.source == "implementation" else "")
        depends = dependencies(context, item.leaves)
        symmetries = find_symmetries(item.rhs)
        inputs = set(context.spec.inputs)
        pins = pinned_symbols(context, item)
        reported, broken, held = [], [], []
        for symmetry in symmetries:
            if set(symmetry.support) & inputs:
                continue  # moving an input is not a gauge: the data is given
            stuck = [s for s in symmetry.support if s in pins]
            if stuck:  # training cannot move these, so the whole orbit is held (sub-symmetries are found on their own)
                held.append((symmetry, stuck))
                continue
            needs = {s: {r for r in symmetry.coefficient_symbols[s] if not depends[r] <= depends[s]}
                     for s in symmetry.support}
            if any(needs.values()):
                broken.append(f"{symmetry.describe('')} (needs " + "; ".join(
                    f"{s} to see {', '.join(sorted(set().union(*(depends[r] for r in rs)) - depends[s]))}"
                    for s, rs in needs.items() if rs) + ")")
                continue
            gauge = set.intersection(*(depends[s] for s in symmetry.support))
            reported.append((symmetry, gauge))
        if not symmetries:
            yield passed(CHECK_ID, element, "no free gauge", f"{expression} has no scaling or shift symmetry")
            return
        details = {"expression": expression, "analysed": item.source,
                   "dependencies": {s: sorted(d) for s, d in depends.items()}, "broken_by_dependencies": broken,
                   "pinned": pins}
        for symmetry, gauge in reported:
            yield self._result(context, item, element, expression, symmetry, gauge, details)
        for symmetry, stuck in held:
            yield self._pinned(context, item, element, expression, symmetry, stuck, pins, details)
        if not reported and not held:
            yield passed(CHECK_ID, element, "no free gauge",
                         f"every symmetry of {expression} is broken by what its symbols see: " + "; ".join(broken),
                         details=details)

    @staticmethod
    def _pinned(context, item: Analysed, element, expression, symmetry: Symmetry, stuck: list[str], pins, details):
        moved = list(symmetry.support)
        why = "; ".join(f"{s} is pinned by {pins[s]}" for s in stuck)
        return passed(CHECK_ID, element, f"no free gauge of {_list(moved)}",
                      f"note: {symmetry.describe('')} predicts the same, but {why}: training cannot move "
                      f"{'it' if len(stuck) == 1 else 'them'} (no trainable parameter reaches "
                      f"{'it' if len(stuck) == 1 else 'them'}), and the move needs {_list(moved)} to move together",
                      where=symbol_where(context.graph, item.leaves[stuck[0]]),
                      details={**details, "symmetry": {s: dict(t) for s, t in symmetry.xi.items()}, "moved": moved,
                               "pinned_by": {s: pins[s] for s in stuck}})

    def _result(self, context, item: Analysed, element, expression, symmetry: Symmetry, gauge: set,
                details) -> CheckResult:
        spec = context.spec
        moved = list(symmetry.support)
        argument = f"({', '.join(display_inputs(spec, gauge))})" if gauge else ""
        move = symmetry.describe(argument)
        confirmed, evidence = confirm(context, item, symmetry, bool(gauge))
        where = symbol_where(context.graph, item.leaves[moved[-1]])
        record = {**details, "symmetry": {s: dict(t) for s, t in symmetry.xi.items()}, "moved": moved,
                  "gauge_inputs": sorted(gauge), "confirmed": confirmed, "evidence": evidence}
        subject = _list(moved)
        if confirmed is False:
            return passed(CHECK_ID, element, f"no free gauge of {subject}",
                          f"{expression} is unchanged by {move}, but the model is not: {evidence}", where=where,
                          details=record)
        checked = f" (confirmed on the model: {evidence})" if confirmed else f" (not confirmed on the model: {evidence})"
        pattern = forbidden_mix(context, item, symmetry)
        if pattern is not None and reported_by_pattern(context, pattern):
            return passed(CHECK_ID, element, f"no translation between a {pattern.left}-only and a {pattern.right}-only "
                          f"term (forbidden pattern {pattern.name})",
                          f"note: {expression} is translation-symmetric, {move} gives the same prediction{checked}; "
                          f"this is the forbidden pattern {pattern.name}, reported once, by pattern.forbidden",
                          where=where, details={**record, "reported_by": "pattern.forbidden"})
        if pattern is not None:  # a translation the pattern's add/sub scan cannot see (through exp, a division)
            why = f" ({pattern.why})" if pattern.why else ""
            return failed(CHECK_ID, element, f"no translation between a {pattern.left}-only and a {pattern.right}-only "
                          f"term (forbidden pattern {pattern.name})",
                          f"{expression} is translation-symmetric: {move} gives the same prediction, so {subject} are "
                          f"not identifiable{checked}",
                          fix="modulate multiplicatively, e.g. logit = (M(c) * U_I + B(c)) / T(c), so that the shift "
                          f"needs a context-dependent compensation{why}", where=where, details=record)
        if gauge:
            cut = ", ".join(f"{part} -> {s}" for part in display_inputs(spec, gauge) for s in moved[-1:])
            return failed(CHECK_ID, element, f"{subject} determined by the data (any gauge a constant)",
                          f"{subject} are determined only up to {'k' if symmetry.is_scaling else 'δ'}{argument}: "
                          f"{move} predicts the same, so the learned {moved[-1]} is one arbitrary member of that "
                          f"orbit{checked}",
                          fix=f"pin the gauge: let the moved symbols see disjoint inputs so it can only be a constant "
                          f"(every one of {subject} reads {', '.join(display_inputs(spec, gauge))}; cut it from one, "
                          f"e.g. compute {moved[-1]} without it and add flow.forbidden {cut}), then fix the constant "
                          f"by a normalisation (e.g. {moved[-1]} = 1 at a reference input)", where=where, details=record)
        demanded = [s for s in moved if s in spec.identifiable]
        if demanded:
            return failed(CHECK_ID, element, f"{_list(demanded)} identifiable outright (spec: identifiable)",
                          f"{_list(demanded)} is determined only up to a global constant: {move} predicts the same"
                          f"{checked}",
                          fix=f"fix the constant by construction, e.g. normalise {demanded[0]} to 1 at a reference "
                          f"input, and drop it from `identifiable` (the check cannot see a normalisation), or pin it "
                          f"with a fixed value", where=where, details=record)
        return passed(CHECK_ID, element, f"no gauge of {subject} that depends on an input",
                      f"note: a global constant gauge only, {move}{checked}; it moves every example alike, so "
                      "differences and orderings of the learned values are meaningful", where=where, details=record)


def _list(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


# ---- dependencies ------------------------------------------------------------------------------
def pinned_symbols(context: CheckContext, item: Analysed) -> dict[str, str]:
    """Leaf symbols training cannot move (every parameter they read is frozen, or they read none), with why."""
    from alignguard.checks.structure.trainable import trainability

    state = trainability(context)
    return {s: state.why_pinned(context, node) for s, node in item.leaves.items()
            if s not in context.spec.inputs and not state.can_move(context, node)}


def input_elements(spec) -> list[str]:
    """The finest inputs to speak of: an input's named parts where it has them, the input itself too."""
    elements = []
    for name, input_spec in spec.inputs.items():
        elements += list(input_spec.parts)
        elements.append(name)
    return elements


def dependencies(context: CheckContext, leaves: dict[str, str]) -> dict[str, set[str]]:
    """Per leaf symbol, the inputs (or parts) a data-flow path reaches it from. An input with parts counts
    only where none of its parts does (a node reading columns outside every part)."""
    graph = context.graph
    spec = context.spec
    sources: dict[str, object] = {}
    for name, input_spec in spec.inputs.items():
        slices = {} if input_spec.parts else slices_read(context, name)
        if slices:  # the input then stands only for the nodes that read it whole
            sources.update({element: graph.index.positions(nodes) for element, nodes in slices.items()})
        else:
            sources.update({element: element_nodes(context, element) for element in [*input_spec.parts, name]})
    reach = {element: None if isinstance(nodes, Resolution) else graph.index.reach(nodes)
             for element, nodes in sources.items()}
    result = {}
    for symbol, node in leaves.items():
        position = graph.index.positions([node])[0]
        found = {e for e, mask in reach.items() if mask is not None and mask[position]}
        for name, input_spec in spec.inputs.items():
            if set(input_spec.parts) & found:
                found.discard(name)
        result[symbol] = found
    return result


def slices_read(context: CheckContext, input_name: str) -> dict[str, list[str]]:
    """An input without named parts, as the disjoint slices forward reads (`c[:, :-1]`, `c[:, -1:]`): each
    slice's readers, and the input's own name for the nodes that read it whole. Nothing when forward
    reads it only whole or its slices overlap (the input is then one element, as before). Without this a
    spec that does not name parts (what `init` writes) would see M(descriptor) and T(accessibility) both
    read 'c' and report a gauge k(c) the model cannot realise."""
    from alignguard.spec.selection import overlaps, read_elements, render

    readers = context.graph.input_readers(input_name)
    value = context.batch(0).get(input_name)
    shape = tuple(getattr(value, "shape", ()))
    groups: dict[str, tuple[object, list[str]]] = {}
    whole = []
    for node, selection in readers:
        if selection is None or read_elements(selection, shape) is None:
            whole.append(node)
        else:
            groups.setdefault(f"{input_name}{render(selection)}", (selection, []))[1].append(node)
    selections = [selection for selection, _ in groups.values()]
    if len(groups) < 2 or any(overlaps(a, b, shape) for i, a in enumerate(selections) for b in selections[i + 1:]):
        return {}
    elements = {name: nodes for name, (_, nodes) in groups.items()}
    if whole:
        elements[input_name] = whole
    return elements


def display_inputs(spec, elements: set[str]) -> list[str]:
    """Parts that cover every part of their input are shown as the input (k(c), not k(descriptor, accessibility))."""
    shown = set(elements)
    for name, input_spec in spec.inputs.items():
        if input_spec.parts and set(input_spec.parts) <= shown:
            shown -= set(input_spec.parts)
            shown.add(name)
    order = input_elements(spec)
    return sorted(shown, key=lambda e: order.index(e) if e in order else len(order))


def reported_by_pattern(context: CheckContext, pattern) -> bool:
    """pattern.forbidden fails on this pattern: its add/sub scan finds the mixing node itself."""
    from alignguard.checks.structure.patterns import additive_mix_hits

    hits = additive_mix_hits(context, pattern)
    return isinstance(hits, list) and bool(hits)


def forbidden_mix(context: CheckContext, item: Analysed, symmetry: Symmetry):
    """The additive_mix pattern a pure two-term translation is, if the spec forbids it."""
    xi = symmetry.xi
    if len(xi) != 2 or not all(set(t) == {ONE} for t in xi.values()):
        return None
    graph = context.graph
    for pattern in context.spec.forbidden_patterns:
        if pattern.kind != "additive_mix" or pattern.on_path_to != item.lhs:
            continue
        masks = {}
        for role in ("left", "right"):
            nodes = element_nodes(context, getattr(pattern, role))
            if isinstance(nodes, Resolution):
                break
            masks[role] = graph.index.reach(nodes)
        if len(masks) != 2:
            continue
        only = {}
        for symbol in xi:
            position = graph.index.positions([item.leaves[symbol]])[0]
            left, right = bool(masks["left"][position]), bool(masks["right"][position])
            only[symbol] = "left" if left and not right else "right" if right and not left else None
        if sorted(filter(None, only.values())) == ["left", "right"]:
            return pattern
    return None


# ---- the implementation's own expression -----------------------------------------------------
def implementation_expression(context: CheckContext, lhs: str):
    """(expression, leaf symbol -> node) of what the graph computes at `lhs` over named tensors
    (design symbols, then forward outputs), or None when it passes through anything but + - * /, unary
    minus and the formula language's functions."""
    graph = context.graph
    names = design_names(context)
    leaves: dict[str, str] = {}

    def walk(node: str, top: bool, depth: int):
        node = graph.skip_transparent(node)
        name = None if top else names.get(node)
        if name is not None:
            if leaves.get(name, node) != node:
                return None
            leaves[name] = node
            return Symbol(name)
        data = graph.node(node)
        op = data.get("op")
        operands = [o for o in data.get("operands", ()) if o is not None]
        if depth > 32 or data.get("kind") not in ("op", "module"):
            return None
        children = [operand(o, depth + 1) for o in operands[:2]]
        if any(c is None for c in children):
            return None
        if op in _ARITHMETIC and len(children) == 2:
            return BinOp(_ARITHMETIC[op], *children)
        if op == "neg" and len(children) == 1:
            return Neg(children[0])
        if op in FUNCTIONS and len(children) == 1:
            return Call(op, (children[0],))
        return None

    def operand(value, depth: int):
        from alignguard.graph.model_graph import Ref

        if isinstance(value, Ref):
            return walk(value.node, False, depth)
        return Const(float(value)) if isinstance(value, (int, float)) else None

    expression = walk(lhs, True, 0)
    if expression is None or not leaves:
        return None
    outputs = {node: key for key, node in graph.outputs.items()}
    symbols = set(context.spec.symbols)
    if any(name not in symbols and graph.skip_transparent(node) not in {graph.skip_transparent(n) for n in outputs}
           for name, node in leaves.items()):
        return None  # a leaf named after an input: not something a model learns
    return expression, leaves


def render(expr: Expr) -> str:
    """Infix text of an expression, e.g. `(U_I - R_E) / T`."""
    if isinstance(expr, Symbol):
        return expr.name
    if isinstance(expr, Const):
        return f"{expr.value:g}"
    if isinstance(expr, Neg):
        return f"-{_wrapped(expr.operand)}"
    if isinstance(expr, Call):
        return f"{expr.func}({', '.join(render(a) for a in expr.args)})"
    symbol = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**"}[expr.op]
    return f"{_wrapped(expr.left)} {symbol} {_wrapped(expr.right)}"


def _wrapped(expr: Expr) -> str:
    text = render(expr)
    return f"({text})" if isinstance(expr, BinOp) else text


# ---- confirmation on the real model ------------------------------------------------------------
def confirm(context: CheckContext, item: Analysed, symmetry: Symmetry, per_example: bool):
    """(True / False / None, evidence): the moved symbols set in the real model leave the output unchanged
    (True), change it (False: the model breaks the formula's symmetry), or could not be set (None)."""
    import torch

    from alignguard.checks.running import probe_inputs, probe_seed, runner as shared_runner, user_forward
    from alignguard.probes.runtime import ForwardError, SymbolError

    inputs, seed = probe_inputs(context), probe_seed(context)
    # The check run's runner (the spec's bindings, plus output bindings of implementation leaves), so
    # every item and the probes share one recording of the example rows and one replay of the encoder.
    runner = shared_runner(context).extended(item.bindings)
    moved = list(symmetry.support)
    needed = sorted(set(moved) | set().union(*symmetry.coefficient_symbols.values()))
    try:
        with torch.no_grad(), user_forward(context):
            base = runner.run(inputs, seed=seed, observe=[*needed, item.lhs])
            values = {name: base[name].detach() for name in needed}
            shapes = [tuple(v.shape) for v in values.values()]
            try:  # numpy's rule is torch's; torch.broadcast_shapes would import sympy (~0.9 s) on first use
                shape = torch.Size(np.broadcast_shapes(*shapes))
            except ValueError:  # e.g. a per-channel FiLM gamma (B, C) against features (B, C, L)
                return None, (f"the shapes of {_list(needed)} ({', '.join(map(str, shapes))}) do not broadcast "
                              "against each other as written, so the gauge could not be applied")
            rows = int(torch.Size(shape).numel())
            varying = per_example and all(v.shape == shape for v in values.values()) and rows > 1
            parameter = (torch.linspace(-GAUGE_STEP, GAUGE_STEP, rows) if varying
                         else torch.tensor([GAUGE_STEP]))
            expanded = {n: v.expand(shape).reshape(-1) for n, v in values.items()}
            new = symmetry.flow(expanded, parameter)
            targets = {n: _fit(new[n], values[n]) for n in moved}
            if any(t is None for t in targets.values()):
                return None, "a moved symbol's shape differs from the others' and the gauge could not be applied"
            reference = base[item.lhs]
            joint = runner.run(inputs, seed=seed, observe=[item.lhs],
                               edits={n: (lambda _t, v=targets[n]: v) for n in moved})[item.lhs]
            alone = runner.run(inputs, seed=seed, observe=[item.lhs],
                               edits={moved[0]: lambda _t, v=targets[moved[0]]: v})[item.lhs]
    except (SymbolError, ForwardError) as exc:
        return None, f"cannot set {_list(moved)} in the model: {exc}"
    scale = max(1.0, float(reference.detach().abs().max()))
    change = float((joint.double() - reference.double()).abs().max())
    single = float((alone.double() - reference.double()).abs().max())
    how = "varying by example" if varying else "one value for every example"
    parameter_text = f"{'k = e^' if symmetry.is_scaling else 'δ = '}±{GAUGE_STEP:g}, {how}"
    if change > TOLERANCE * scale:
        return False, (f"setting {_list(moved)} to the moved values ({parameter_text}) changes {item.lhs} by up to "
                       f"{change:.3g}: something else reads them")
    if single <= TOLERANCE * scale:
        return None, f"moving {moved[0]} alone does not change {item.lhs} either ({single:.3g}), so the probe cannot judge"
    return True, (f"max |Δ{item.lhs}| {change:.2g} with {parameter_text}, against {single:.3g} for moving "
                  f"{moved[0]} alone")


def _fit(value, original):
    """A moved value in the symbol's own shape (a shared scalar stays a scalar), or None if it cannot."""
    if value.numel() == original.numel():
        return value.reshape(original.shape).to(original.dtype)
    if original.numel() == 1:
        return value.reshape(-1)[:1].reshape(original.shape).to(original.dtype)
    return None
