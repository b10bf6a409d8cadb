"""noise.present and noise.eval: the information bottleneck draws noise while training
(`z_I = mu + sigma * eps`, eps ~ N(0, I)) and behaves as documented in eval mode.

The seed's failure was exactly this: "no random noise injection: z_I is a deterministic function
z_I = f(x)". Only a random *call* counts: fx executes `torch.randn(4, 16)` once at trace time and
bakes the draw into the graph as a constant; when that happens the eager recorder, which sees
every call, decides.
"""

from __future__ import annotations

from typing import Iterable

from alignguard.checks.base import Check
from alignguard.checks.context import CheckContext
from alignguard.checks.modules import module_exists
from alignguard.spec.model import SliceFitError
from alignguard.checks.structure.symbols import design_names, resolve_symbol, symbol_where
from alignguard.graph.capture import eval_graph
from alignguard.graph.model_graph import ModelGraph
from alignguard.graph.noise_paths import fixed_tensors, noise_sources, trace_noise
from alignguard.results import CheckResult, failed, passed


class NoiseCheck(Check):
    ids = ("noise.present", "noise.eval", "noise.reparameterised")
    explanations = {
        "noise.present": (
            "Proves that, in train mode, a random draw (randn, normal, rand, rsample ...; not a dropout mask) "
            "made inside the component's module reaches the bound symbol, and (with through_scale) passes a "
            "product with a learned scale on the way: the reparameterisation z = mu + sigma * eps. A tensor "
            "baked into the trace, a fixed tensor attribute, noise computed but unused, noise added without a "
            "learned sigma, or noise drawn in another module all fail. It cannot prove the noise has the right "
            "distribution or magnitude (the noise probe measures that). Fix: draw eps = torch.randn_like(std) "
            "inside the component's forward and return mu + std * eps."
        ),
        "noise.eval": (
            "Proves the documented eval-mode behaviour: `deterministic` means that in eval mode no random "
            "draw reaches the symbol (re-captured in eval mode) and two eval passes on the same batch agree; "
            "`stochastic` means a random draw still reaches it. The seed's design allows the mean (or an "
            "average of samples) at evaluation. Fix: branch on self.training (return mu in eval), or change "
            "the documented behaviour in the spec."
        ),
        "noise.reparameterised": (
            "For a symbol with `stochastic:` (a sample wherever it is drawn), proves with autograd on the real model "
            "in train mode that the sample carries a gradient: the symbol has a grad_fn, and, when `scale` names the "
            "learned sigma, d symbol / d scale is non-zero. `torch.distributions`' `.sample()` draws under no_grad "
            "(named finding: `.sample()` where `.rsample()` was needed), and a detached sigma gives exactly 0: the "
            "noise is there, but no loss can shape sigma through the sample. Fix: `dist.rsample()`, or "
            "z = mu + std * eps with std not detached."
        ),
    }

    def applies(self, spec) -> bool:
        return any(c.stochastic for c in spec.components.values()) or bool(spec.stochastic_symbols())

    def run(self, context: CheckContext) -> Iterable[CheckResult]:
        # In report order, but every eval judgement before any train-mode run (noise.reparameterised's): a
        # train run drops the runner's replay capture of the probe inputs, which the eval pair replays.
        results, later = [], []
        for name, component in context.spec.components.items():
            if component.stochastic is None:
                continue
            results.append(self._present(context, f"component {name}", component.module, component.stochastic))
            if component.stochastic.eval != "any":
                results.append(self._eval(context, f"component {name}", component.stochastic))
        for name, noise in context.spec.stochastic_symbols().items():
            requirement = _SymbolRequirement(name, noise.through_scale, noise.eval)
            results.append(self._present(context, f"symbol {name}", None, requirement))
            if noise.eval != "any":
                results.append(self._eval(context, f"symbol {name}", requirement))
            later.append(len(results))
            results.append((name, noise))
        for position in later:
            results[position] = self._reparameterised(context, *results[position])
        yield from results

    # ---- noise.present --------------------------------------------------------------------
    def _present(self, context: CheckContext, element: str, path: str | None, requirement) -> CheckResult:
        symbol = requirement.symbol
        place = f"inside '{path}'" if path else "anywhere in forward (a submodule, a method, a function)"
        expected = (f"random noise drawn {place} reaching {symbol}"
                    + (" through a product with a learned scale (z = mu + sigma * eps)"
                       if requirement.through_scale else ""))
        target = resolve_symbol(context, symbol).node
        if target is None:
            return failed("noise.present", element, expected, f"symbol {symbol} matched nothing in the graph",
                          fix=f"bind {symbol} first (see symbol.bound)")
        return self._judge(context, context.graph, element, expected, path, symbol, target, requirement)

    def _judge(self, context, graph: ModelGraph, element, expected, path, symbol, target, requirement) -> CheckResult:
        names = design_names(context, graph)
        exists = not path or module_exists(context.model, path)
        # no module (a symbol's requirement) or the root module (''): a draw anywhere in forward counts
        in_scope = [n for n in noise_sources(graph)
                    if exists and (not path or path in graph.node(n).get("scopes", ()))]
        inside = trace_noise(graph, in_scope, target)
        good = [p for p in inside if p.reaches and (p.scale or not requirement.through_scale)]
        if good:
            p = good[0]
            how = (f" through {names.describe(p.scale)} ({graph.where_text(p.scale)})" if p.scale else "")
            return passed("noise.present", element, expected,
                          f"{graph.node(p.source)['op']} at {graph.where_text(p.source)} reaches {symbol}{how}",
                          where=symbol_where(graph, p.source))
        reaching = [p for p in inside if p.reaches]
        if reaching:
            p = reaching[0]
            return failed("noise.present", element, expected,
                          f"noise from {graph.node(p.source)['op']} ({graph.where_text(p.source)}) reaches {symbol} "
                          f"without a product with a learned scale: {symbol} = {names.describe(target)}",
                          fix="multiply the noise by a learned sigma, e.g. std = exp(0.5 * logvar) from a head "
                          "of the encoder output, then z = mu + std * eps", where=symbol_where(graph, p.source))
        elsewhere = [p for p in trace_noise(graph, noise_sources(graph), target) if p.reaches]
        unused = (f"noise computed but unused: {graph.node(inside[0].source)['op']} at "
                  f"{graph.where_text(inside[0].source)} never reaches {symbol}") if inside else ""
        if elsewhere:
            p = elsewhere[0]
            return failed("noise.present", element, expected,
                          f"the noise reaching {symbol} is drawn outside '{path}', in "
                          f"'{graph.node(p.source).get('scope') or 'forward'}' at {graph.where_text(p.source)}"
                          + (f"; inside '{path}' the {unused}" if unused else ""),
                          fix=f"draw the noise inside {path}.forward, or point the component at the module that "
                          "draws it", where=symbol_where(graph, p.source))
        if inside:
            return failed("noise.present", element, expected, f"{unused} ({symbol} = {names.describe(target)})",
                          fix=f"use the draw when computing {symbol}: z = mu + std * eps",
                          where=symbol_where(graph, inside[0].source))
        fixed = fixed_tensors(graph, target)
        missing = "" if exists else f"there is no module '{path}'; "
        if fixed:
            return failed("noise.present", element, expected,
                          f"{missing}{symbol} receives no random draw; the fixed tensor "
                          f"'{graph.node(fixed[0]).get('target') or fixed[0]}' (created once, the same on every call) "
                          "stands in for the noise",
                          fix="draw fresh noise on every call: eps = torch.randn_like(std)",
                          where=symbol_where(graph, fixed[0]))
        upstream = graph.reachable([target], reverse=True)
        inputs = ", ".join(name for name, node in graph.inputs.items() if node in upstream) or "nothing"
        return failed("noise.present", element, expected,
                      f"{missing}no noise injection: no random draw reaches {symbol}, so {symbol} = f({inputs}) is a "
                      f"deterministic function ({symbol} = {names.describe(target)})",
                      fix=f"implement the information bottleneck in '{path}': mu, logvar = heads(h); "
                      f"{symbol} = mu + exp(0.5 * logvar) * torch.randn_like(mu) while training",
                      where=symbol_where(graph, target))

    # ---- noise.eval ----------------------------------------------------------------------
    def _eval(self, context: CheckContext, element: str, requirement) -> CheckResult:
        symbol, mode = requirement.symbol, requirement.eval
        expected = (f"in eval mode no random draw reaches {symbol} and two eval passes agree"
                    if mode == "deterministic" else f"in eval mode a random draw still reaches {symbol}")
        binding = context.spec.symbols[symbol]
        graph = eval_graph(context)
        target = resolve_symbol(context, symbol, graph).node
        if target is None:
            return failed("noise.eval", element, expected, f"symbol {symbol} matched nothing in the eval-mode graph",
                          fix=f"bind {symbol} first (see symbol.bound)")
        live = [p.source for p in trace_noise(graph, noise_sources(graph), target) if p.reaches]
        live += [n for n in graph.reachable([target], reverse=True)
                 if graph.node(n)["kind"] == "random" and n not in live]  # dropout left active, too
        difference = eval_passes(context, symbol, binding)
        where = symbol_where(graph, live[0]) if live else symbol_where(graph, target)
        draws = ", ".join(f"{graph.node(n)['op']} at {graph.where_text(n) or n}" for n in live[:3])
        seen = f"{draws} still reaches {symbol} in eval mode" if live else f"no random draw reaches {symbol} in eval mode"
        runs = (f"two eval passes differ by up to {difference:.3g}" if difference
                else "two eval passes agree") if difference is not None else "the eval passes could not be compared"
        found = f"{seen}; {runs} ({graph.capture})"
        deterministic = not live and not difference
        if mode == "deterministic" and deterministic:
            return passed("noise.eval", element, expected, found, where=where)
        if mode == "stochastic" and (live or difference):
            return passed("noise.eval", element, expected, found, where=where)
        fix = ("branch on self.training: draw noise only while training and return the mean (mu) in eval"
               if mode == "deterministic" else "keep drawing noise in eval mode, or document eval: deterministic")
        return failed("noise.eval", element, expected, found, fix=fix, where=where,
                      details={"max_abs_difference": difference})


    # ---- noise.reparameterised ----------------------------------------------------------------
    def _reparameterised(self, context: CheckContext, symbol: str, noise) -> CheckResult:
        element = f"symbol {symbol}"
        scale = noise.scale
        expected = (f"{symbol} is a reparameterised sample: it carries a gradient in train mode"
                    + (f" and d{symbol}/d{scale} != 0" if scale else ""))
        measured = context.memo(f"reparameterised:{symbol}", lambda: _sample_gradient(context, symbol, scale))
        if measured["error"]:
            return failed("noise.reparameterised", element, expected, f"matched nothing: {measured['error']}",
                          fix=f"bind {symbol} to a tensor forward computes (see symbol.bound)")
        if not measured["has_grad"]:
            return failed("noise.reparameterised", element, expected,
                          f"non-reparameterised sample: {symbol} carries no gradient in train mode (drawn with "
                          "`.sample()`, under no_grad, or detached), so no loss reaches the parameters of its "
                          "distribution through it: `.sample()` where `.rsample()` was needed",
                          fix=f"draw {symbol} with `dist.rsample()` (or mu + std * torch.randn_like(std))")
        if scale and not measured["scale_grad"] > 0:
            return failed("noise.reparameterised", element, expected,
                          f"d{symbol}/d{scale} = 0: the sample does not depend on the learned scale through autograd "
                          f"({scale} is detached on the way, or the sample is drawn from a detached distribution), so "
                          f"no loss that reads {symbol} can shape {scale}",
                          fix=f"use {scale} itself, not {scale}.detach(), in {symbol} = mu + {scale} * eps")
        found = f"{symbol} has a grad_fn" + (f"; |d{symbol}/d{scale}| = {measured['scale_grad']:.3g}" if scale else "")
        return passed("noise.reparameterised", element, expected, found)


class _SymbolRequirement:
    """A symbol's noise requirement in the shape `_present` / `_eval` read (symbol, through_scale, eval)."""

    def __init__(self, symbol: str, through_scale: bool, eval: str):
        self.symbol, self.through_scale, self.eval = symbol, through_scale, eval


def _sample_gradient(context: CheckContext, symbol: str, scale: str | None) -> dict:
    """Does the train-mode sample carry a gradient, and how large is d(sum symbol * r)/d scale?"""
    import torch

    from alignguard.checks.running import probe_inputs, runner, user_forward
    from alignguard.probes.runtime import SymbolError

    observe = [symbol] + ([scale] if scale else [])
    try:
        with user_forward(context), torch.enable_grad():
            seen = runner(context).run(probe_inputs(context), train=True, seed=context.spec.entry_points.seed,
                                       observe=observe, whole=True)
    except SymbolError as exc:
        return {"error": str(exc), "has_grad": False, "scale_grad": 0.0}
    sample = context.spec.symbols[symbol].select(seen[symbol])
    has_grad = bool(sample.requires_grad and sample.grad_fn is not None)
    scale_grad = 0.0
    if has_grad and scale and seen[scale].requires_grad:  # a scale no autograd graph holds (a constant) moves nothing
        probe = torch.randn(sample.shape, generator=torch.Generator().manual_seed(0)).to(sample)
        (grad,) = torch.autograd.grad((sample * probe).sum(), [seen[scale]], allow_unused=True, retain_graph=True)
        if grad is not None:
            scale_grad = float(context.spec.symbols[scale].select(grad).double().norm())
    return {"error": "", "has_grad": has_grad, "scale_grad": scale_grad}


def eval_passes(context: CheckContext, symbol: str, binding) -> float | None:
    """Largest |difference| of the symbol between two eval-mode passes on the probe inputs, at seeds s
    and s+1 (the runs probe.noise judges too: `checks/running.py::eval_pair`); differences within float
    jitter (non-deterministic GPU kernels) count as none. None when the symbol's value cannot be read from
    a run (e.g. a module output that is not a tensor) or its slice does not fit the tensor."""
    import torch

    from alignguard.checks.running import eval_pair

    kind, values = eval_pair(context, symbol)
    if kind != "values":
        return None
    first, second = values
    if not isinstance(first, torch.Tensor) or not isinstance(second, torch.Tensor) or first.shape != second.shape:
        return None
    try:  # a symbol bound to a slice: the noise of the other elements is not its noise
        first, second = binding.select(first), binding.select(second)
    except SliceFitError:
        return None
    if not first.numel():
        return 0.0
    difference = float((first.float() - second.float()).abs().max())
    tolerance = 1e-6 * (1.0 + float(first.float().abs().max()))  # non-deterministic GPU kernels jitter
    return difference if difference > tolerance else 0.0
