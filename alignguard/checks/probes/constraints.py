"""weights.max_norm, probe.range, probe.dependence: constraints and index-level dependence,
probed on the real model.

* weights.max_norm: push the raw parameters far out (x `scale`), apply the model file's post-step
  hook if the spec names one, and read the effective weights back (through a
  torch.nn.utils.parametrize parametrization, if any): every slice along `dim` must have L2 norm
  <= max_norm. A constraint that lives only in a training script cannot be proven and fails.
* probe.range: a symbol stays in [min, max] (and sums to `sum_to` per example) on the example rows
  and on floating-point inputs scaled far out, in train and eval mode.
* probe.dependence: `causal`: changing the input at position p leaves the symbol unchanged at every
  position < p, and changes it somewhere (eval mode, random replacements); `none` (probes/independence.py):
  replacing the input, or only a named part of it, never changes the symbol.
"""

from __future__ import annotations

import copy
from fnmatch import fnmatchcase
from typing import Iterable

from alignguard.checks.probes.support import max_abs_diff, probe_inputs, probe_seed, runner, user_forward
from alignguard.checks.base import Check
from alignguard.results import CheckResult, Where, failed, matched_nothing, passed
from alignguard.checks.context import CheckContext


def effective_weights(model) -> dict[str, tuple[object, str]]:
    """{name: (module, attribute)} of every weight as forward reads it: plain parameters, and
    parametrized tensors by their public name (conv.weight, not conv.parametrizations.weight.original)."""
    found: dict[str, tuple[object, str]] = {}
    for path, module in model.named_modules():
        if ".parametrizations." in f".{path}." or path.endswith("parametrizations"):
            continue
        names = list(module._parameters)
        parametrized = getattr(module, "parametrizations", None)
        if parametrized is not None:
            names += list(parametrized.keys())
        for attr in names:
            if attr in module._parameters and module._parameters[attr] is None:
                continue
            found[f"{path}.{attr}" if path else attr] = (module, attr)
    return found


class ConstraintProbeCheck(Check):
    ids = ("weights.max_norm", "probe.range", "probe.dependence")
    explanations = {
        "weights.max_norm": (
            "A weight constraint the model keeps itself (DeepSEA's max-kernel-norm): on a copy of the model, every "
            "raw parameter is multiplied by `scale` (default 100), the model file's `hook(model)` is called if the "
            "spec names one (a post-step renorm), and each matched weight is read as forward reads it (through a "
            "torch.nn.utils.parametrize parametrization). Every slice along `dim` (dim 0: each output kernel) must "
            "have L2 norm <= max_norm. A missing constraint, or one that rescales the whole tensor by its global "
            "norm, leaves kernels above the bound. Fix: register a parametrization that renormalises each kernel, "
            "or name the post-step hook that does."
        ),
        "probe.range": (
            "A symbol stays within [min, max] and, with `sum_to`, sums to it along its last dimension per example "
            "(a gate's softmax over experts), on the example rows and with floating-point inputs scaled by `scale`, "
            "in train and eval mode. A softmax taken over the wrong dimension, a missing sigmoid, an unbounded head "
            "fail. It samples, so it cannot prove the range for every input (a structural squashing op does). "
            "Fix: produce the symbol through the squashing function over the right dimension."
        ),
        "probe.dependence": (
            "Index-level dependence of a symbol on an input, in eval mode with a fixed seed. `causal`: for each "
            "position p of the input along `dim`, `trials` random replacements at p (integers within the input's "
            "observed range, Gaussian draws for floats) must leave the symbol unchanged at every position < p "
            "(|Δ| <= tolerance), and some replacement must change it at p or later (else it does not depend on the "
            "input and the rule proves nothing). A GPT block without its causal mask, or with the mask off by one, "
            "fails with the first leaking position pair (fix: apply the causal mask, scores.masked_fill(~tril, -inf), "
            "before the softmax). `none`: the symbol must not depend on the input, or on a named part of it "
            "(`{symbol: M, input: accessibility, rule: none}` with `c: {parts: {accessibility: \"[:, -1]\"}}`): only "
            "that part's elements are replaced, `trials` times each way (other rows' values, Gaussian draws around "
            "their mean and spread, draws ten spreads out; random integers for integer inputs), the rest of the "
            "input and every other input held fixed, and the symbol must stay within tolerance·max(1, max|symbol|). "
            "It complements `flow.forbidden` on the same pair: the flow reads the captured graph, so it fails a "
            "model with a path of no effect (the part multiplied by a zero gate, read whole and cancelled) and "
            "misses a leak outside the graph (a Python number, `.item()`, state set outside the traced forward); "
            "the probe measures the effect on the real model, and cannot see a path whose effect is zero at "
            "initialisation (a zero-initialised weight), which the flow does. Fix: compute the symbol from the "
            "other parts only, e.g. a slice of c that excludes the part."
        ),
    }

    def applies(self, spec) -> bool:
        return bool(spec.weights or spec.ranges or spec.probes.dependence)

    def run(self, context: CheckContext) -> Iterable[CheckResult]:
        for rule in context.spec.weights:
            yield self._max_norm(context, rule)
        for rule in context.spec.ranges:
            yield self._range(context, rule)
        for rule in context.spec.probes.dependence:
            yield self._dependence(context, rule)

    # ---- weights.max_norm -------------------------------------------------------------------
    def _max_norm(self, context: CheckContext, rule) -> CheckResult:
        import torch

        element = f"weights {rule.params}"
        expected = f"every slice along dim {rule.dim} of '{rule.params}' has L2 norm <= {rule.max_norm:g}, " \
                   f"even after the raw parameters are scaled by {rule.scale:g}"
        model = copy.deepcopy(context.model)
        matched = {n: place for n, place in effective_weights(model).items() if fnmatchcase(n, rule.params)}
        if not matched:
            return failed("weights.max_norm", element, expected,
                          f"matched nothing: no weight is named like '{rule.params}'",
                          fix=f"weights: {', '.join(list(effective_weights(model))[:8])} ...")
        hook = None
        if rule.hook:
            hook = getattr(context.model_file.module, rule.hook, None)
            if not callable(hook):
                return failed("weights.max_norm", element, expected,
                              f"matched nothing: the model file defines no function `{rule.hook}`",
                              fix="define hook(model) that applies the constraint, or drop `hook`")
        with torch.no_grad():
            generator = torch.Generator().manual_seed(probe_seed(context))
            for p in model.parameters():
                noise = torch.randn(p.shape, generator=generator, dtype=torch.float32).to(p)
                p.mul_(rule.scale).add_(noise * rule.scale * (p.detach().float().std().nan_to_num(1.0).item() or 1.0))
            if hook is not None:
                hook(model)
            worst = []
            for name, (module, attr) in matched.items():
                weight = getattr(module, attr)
                if weight.dim() <= rule.dim:
                    continue
                norms = weight.detach().double().movedim(rule.dim, 0).reshape(weight.shape[rule.dim], -1).norm(dim=1)
                worst.append((float(norms.max()), name, int(norms.argmax()), int((norms > rule.max_norm * (1 + 1e-6)).sum()),
                              weight.shape[rule.dim]))
        if not worst:
            return failed("weights.max_norm", element, expected, f"matched nothing: no matched weight has a dim {rule.dim}",
                          fix="correct `dim`")
        over = [w for w in worst if w[0] > rule.max_norm * (1 + 1e-6)]
        details = {"norms": {name: top for top, name, *_ in worst}}
        if not over:
            top = max(worst)
            return passed("weights.max_norm", element, expected,
                          f"largest slice norm {top[0]:.4g} ({top[1]}) over {len(worst)} weight(s)", details=details)
        top, name, index, count, total = max(over)
        return failed("weights.max_norm", element, expected,
                      f"{name}: slice {index} has norm {top:.4g} > {rule.max_norm:g} ({count}/{total} slices over the "
                      f"bound; {len(over)}/{len(worst)} weight(s)): the model does not keep the constraint itself",
                      fix="register a parametrization that rescales each slice to at most max_norm "
                      "(torch.nn.utils.parametrize), or name the post-step `hook` that renormalises",
                      where=Where(module=name.rpartition(".")[0]), details=details)

    # ---- probe.range ------------------------------------------------------------------------
    def _range(self, context: CheckContext, rule) -> CheckResult:
        import torch

        from alignguard.probes.runtime import ForwardError, SymbolError

        bounds = [f">= {rule.min:g}" if rule.min is not None else "", f"<= {rule.max:g}" if rule.max is not None else "",
                  f"sums to {rule.sum_to:g} per example" if rule.sum_to is not None else ""]
        expected = f"{rule.symbol} " + ", ".join(b for b in bounds if b)
        element = f"symbol {rule.symbol}"
        inputs = probe_inputs(context)
        far = {k: v * rule.scale if isinstance(v, torch.Tensor) and v.is_floating_point() else v for k, v in inputs.items()}
        problems, seen_any = [], False
        for label, values in (("example rows", inputs), (f"inputs x{rule.scale:g}", far)):
            for train in (True, False):
                try:
                    with user_forward(context), torch.no_grad():
                        value = runner(context).run(values, train=train, seed=probe_seed(context),
                                                    observe=[rule.symbol])[rule.symbol]
                except (SymbolError, ForwardError) as exc:
                    return failed("probe.range", element, expected, matched_nothing(exc),
                                  fix=f"bind {rule.symbol} to a tensor forward computes")
                seen_any = True
                mode = "train" if train else "eval"
                value = value.detach().double()
                if rule.min is not None and float(value.min()) < rule.min:
                    problems.append(f"min {float(value.min()):.4g} ({label}, {mode})")
                if rule.max is not None and float(value.max()) > rule.max:
                    problems.append(f"max {float(value.max()):.4g} ({label}, {mode})")
                if rule.sum_to is not None:
                    sums = value.sum(-1)
                    miss = float((sums - rule.sum_to).abs().max())
                    if miss > 1e-4 * max(1.0, abs(rule.sum_to)):
                        problems.append(f"per-example sums off by up to {miss:.3g} ({label}, {mode})")
        if not seen_any:
            return failed("probe.range", element, expected, "matched nothing", fix="bind the symbol")
        if not problems:
            return passed("probe.range", element, expected, "within range on the example rows and far-out inputs, "
                          "train and eval mode")
        return failed("probe.range", element, expected, "; ".join(problems[:4]),
                      fix=f"produce {rule.symbol} through the squashing function over the right dimension "
                      "(softmax(dim=-1), sigmoid)")

    # ---- probe.dependence -------------------------------------------------------------------
    def _dependence(self, context: CheckContext, rule) -> CheckResult:
        import torch

        from alignguard.checks.probes.independence import independence
        from alignguard.probes.runtime import ForwardError, SymbolError

        if rule.rule == "none":
            return independence(context, rule)
        element = f"symbol {rule.symbol} on {rule.input}"
        expected = (f"{rule.symbol} at position t (dim {rule.dim}) does not depend on {rule.input} at positions > t, "
                    "and depends on it somewhere")
        inputs = probe_inputs(context)
        original = inputs.get(rule.input)
        if not isinstance(original, torch.Tensor) or original.dim() <= rule.dim:
            return failed("probe.dependence", element, expected,
                          f"matched nothing: forward takes no tensor '{rule.input}' with a dim {rule.dim}",
                          fix="correct `input` / `dim`")

        def value(values):
            with user_forward(context), torch.no_grad():
                return runner(context).run(values, train=False, seed=probe_seed(context),
                                           observe=[rule.symbol])[rule.symbol].detach().double()

        try:
            base = value(inputs)
        except (SymbolError, ForwardError) as exc:
            return failed("probe.dependence", element, expected, matched_nothing(exc),
                          fix=f"bind {rule.symbol} to a tensor forward computes")
        if base.dim() <= rule.dim:
            return failed("probe.dependence", element, expected,
                          f"matched nothing: {rule.symbol} has shape {tuple(base.shape)}, no dim {rule.dim}",
                          fix="correct `dim`")
        generator = torch.Generator().manual_seed(probe_seed(context))
        length = original.shape[rule.dim]
        leaks, depends = [], False
        for position in range(length):
            for _ in range(rule.trials):
                changed = original.clone()
                index = [slice(None)] * original.dim()
                index[rule.dim] = position
                if original.is_floating_point():
                    changed[tuple(index)] = torch.randn(changed[tuple(index)].shape, generator=generator).to(original)
                else:
                    low, high = int(original.min()), int(original.max()) + 1
                    changed[tuple(index)] = torch.randint(low, max(high, low + 2), changed[tuple(index)].shape,
                                                          generator=generator).to(original)
                delta = (value({**inputs, rule.input: changed}) - base).abs()
                per_position = delta.movedim(rule.dim, 0).reshape(delta.shape[rule.dim], -1).amax(dim=1)
                before = per_position[:min(position, len(per_position))]
                if len(before) and float(before.max()) > rule.tolerance:
                    leaks.append((position, int(before.argmax()), float(before.max())))
                if float(per_position[position:].max() if position < len(per_position) else 0) > rule.tolerance:
                    depends = True
            if leaks:
                break
        if leaks:
            source, target, size = leaks[0]
            what = (f"{rule.symbol} at position {target} changes by {size:.3g} when {rule.input} changes at position "
                    f"{source} > {target}: the future leaks into the past")
            return failed("probe.dependence", element, expected, what,
                          fix="mask attention scores above the diagonal (masked_fill(~tril, -inf)) before the softmax",
                          details={"leaks": leaks[:5]})
        if not depends:
            return failed("probe.dependence", element, expected,
                          f"matched nothing: {rule.symbol} never changes when {rule.input} changes, so causality is "
                          "not tested", fix="bind the symbol to a tensor computed from the input")
        return passed("probe.dependence", element, expected,
                      f"{length} positions x {rule.trials} replacements: no dependence on later positions")
