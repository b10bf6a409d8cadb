"""probe.dependence, `rule: none`: a symbol must not change when an input, or a named part of one
(`c: {parts: {accessibility: "[:, -1]"}}`), changes and everything else is held fixed.

Only the input's (or part's) elements are replaced, `trials` times each way, in eval mode with a
fixed seed:

* other rows: the same elements taken from a permutation of the example rows (values the model
  really meets);
* Gaussian: draws around the elements' observed mean and spread (integers: within their range);
* far out: the elements scaled ten times beyond their spread (floating-point inputs).

The symbol must stay within `tolerance`·max(1, max|symbol|). Where `flow.forbidden` judges the
captured graph (a path from the part to the symbol), this measures the real model: a gate that
multiplies the part by zero, or a layer that reads all of c and cancels the part, has a path but no
effect (the flow fails, the probe passes); a leak the graph cannot see (through a Python number,
`.item()`, state set outside the traced forward) has an effect but no path (the probe fails).
"""

from __future__ import annotations

from alignguard.checks.probes.support import probe_inputs, probe_seed, runner, symbol_where, user_forward
from alignguard.checks.context import CheckContext
from alignguard.results import CheckResult, failed, matched_nothing, passed

ID = "probe.dependence"
FAR = 10.0  # far-out replacements sit this many spreads from the mean


def independence(context: CheckContext, rule) -> CheckResult:
    import torch

    from alignguard.probes.runtime import ForwardError, SymbolError
    from alignguard.spec.selection import fit_problem, to_key

    spec = context.spec
    parts = spec.input_parts()
    input_name, text = parts[rule.input] if rule.input in parts else (rule.input, "")
    shown = f"part '{rule.input}' = {input_name}{text}" if text else f"input '{input_name}'"
    element = f"symbol {rule.symbol} on {rule.input}"
    expected = (f"{rule.symbol} unchanged (|Δ| <= {rule.tolerance:g}·max(1, max|{rule.symbol}|)) when only "
                f"{shown} is replaced, every other input{' and the rest of ' + input_name if text else ''} held fixed")
    inputs = probe_inputs(context)
    original = inputs.get(input_name)
    if not isinstance(original, torch.Tensor) or original.dim() == 0:
        return failed(ID, element, expected, f"matched nothing: forward takes no batched tensor '{input_name}'",
                      fix="name a forward argument (or one of its `parts`) in `input`")
    mask = torch.ones_like(original, dtype=torch.bool)
    if text:
        selection = spec.inputs[input_name].selection(rule.input)
        problem = fit_problem(selection, tuple(original.shape))
        if problem:
            return failed(ID, element, expected, f"matched nothing: {shown} does not fit {input_name} in the example "
                          f"batch: {problem}", fix=f"correct the slice of part '{rule.input}'")
        mask = torch.zeros_like(original, dtype=torch.bool)
        mask[to_key(selection)] = True

    def value(values):
        with user_forward(context), torch.no_grad():
            return runner(context).run(values, train=False, seed=probe_seed(context), observe=[rule.symbol],
                                       vary=[input_name])[rule.symbol].detach().double()

    try:
        base = value(inputs)
    except (SymbolError, ForwardError) as exc:
        return failed(ID, element, expected, matched_nothing(exc), fix=f"bind {rule.symbol} to a tensor forward computes")
    scale = max(1.0, float(base.abs().nan_to_num(0.0).max())) if base.numel() else 1.0
    worst: tuple[float, str] = (0.0, "")
    tried = 0
    for kind, changed in _replacements(original, mask, rule.trials, probe_seed(context)):
        if bool((changed == original).all()):
            continue  # e.g. every row holds the same part: a permutation changes nothing
        tried += 1
        moved = value({**inputs, input_name: changed})
        delta = float((moved - base).abs().nan_to_num(float("inf")).max()) if moved.shape == base.shape else float("inf")
        if delta > worst[0]:
            worst = (delta, kind)
        if delta > rule.tolerance * scale:
            break  # one replacement that moves the symbol decides; the rest would only cost forwards
    details = {"max_abs_change": worst[0], "replacements": tried, "scale": scale, "part": rule.input}
    where = symbol_where(context, rule.symbol, inputs)
    if tried == 0:
        return failed(ID, element, expected, f"matched nothing: no replacement changed {shown} (its elements are "
                      "constant across the example rows and cannot be drawn)", fix="pass examples that vary it",
                      where=where, details=details)
    if worst[0] <= rule.tolerance * scale:
        return passed(ID, element, expected, f"{tried} replacements of {shown} (other rows, Gaussian, far out): max "
                      f"|Δ{rule.symbol}| = {worst[0]:.3g}", where=where, details=details)
    return failed(ID, element, expected,
                  f"{rule.symbol} changes by {worst[0]:.3g} (max |{rule.symbol}| = {scale:.3g}) when only {shown} "
                  f"is replaced ({worst[1]} values), the rest held fixed: {rule.input} affects {rule.symbol}",
                  fix=f"compute {rule.symbol} without {rule.input}: read only the other elements of {input_name} on "
                  f"{rule.symbol}'s path (e.g. a slice that excludes {text or 'it'}), or drop this rule if the design "
                  f"lets {rule.input} reach {rule.symbol}", where=where, details=details)


def _replacements(original, mask, trials: int, seed: int):
    """(kind, input with only the masked elements replaced), `trials` of each kind."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    values = original[mask].double()
    mean = float(values.mean()) if values.numel() else 0.0
    spread = float(values.std()) if values.numel() > 1 else 0.0
    spread = spread if spread > 0 else 1.0
    rows = len(original)
    for _ in range(trials):
        order = torch.randperm(rows, generator=generator)
        if rows > 1 and bool((order == torch.arange(rows)).all()):
            order = order.roll(1)
        yield "other rows'", torch.where(mask, original[order], original)
        if original.is_floating_point():
            noise = torch.randn(original.shape, generator=generator, dtype=torch.float64)
            yield "Gaussian", torch.where(mask, (mean + spread * noise).to(original.dtype), original)
            far = torch.randn(original.shape, generator=generator, dtype=torch.float64).sign()
            yield "far-out", torch.where(mask, (mean + FAR * spread * far).to(original.dtype), original)
        else:
            low, high = int(values.min()), int(values.max()) + 1
            drawn = torch.randint(low, max(high, low + 2), original.shape, generator=generator).to(original.dtype)
            yield "random integer", torch.where(mask, drawn, original)
