"""component.effect: a component's `reaches` holds numerically: perturbing the component's own
parameters moves every symbol it reaches.

component.on_path reads the graph: a module that is called and whose output has a data path to the
symbol passes, even when it returns its input unchanged (a bypassed frozen EMA target), or when its
output reaches the symbol only through something that discards it. Gradient rules see neither for a
frozen module (requires_grad=False, no_grad): it has no gradient by design. So this probe runs the real
model on the probe rows (fixed seed; eval mode, then train mode for a symbol that did not move: a
noise scale reaches the sample only there), once as built and once with random noise added to
the component's floating-point parameters and buffers (σ = `RELATIVE`·rms of each tensor, at least
`FLOOR`: a zero-initialised layer moves too), and asks every symbol in `reaches` to change by more
than rounding. Parameters are swapped through `.data` for one forward and restored, whatever happens;
`.data` keeps their versions, so the recorded calls that do not hold the component are replayed
(`hold=`: probes/replay.py), and a component beside a large encoder costs less than a whole forward.
The unperturbed values are the same for every component: all components' symbols are read together
once per mode, and a pending replay capture of that read is confirmed at once (perturbed runs hold the
component and never confirm one): k components cost 2 + k runs in eval, not 3k. The noise is drawn in
float32 (float64 for a float64 tensor), each tensor its own draw from the seeded generator.

A correct model can hide an effect at the point it is built: a zero-initialised layer downstream
multiplies it by 0, a ReLU is dead on these rows, an argmin/index symbol does not flip for small
noise. A symbol that did not move is retried at a generic nearby point (every other parameter
perturbed too, so zero layers are no longer zero) with noise the size of the parameters themselves;
only a symbol that never moves fails. A component with no floating-point parameter or buffer has its
output perturbed instead (its output must be used).
"""

from __future__ import annotations

from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Iterable, Iterator

from alignguard.checks.base import Check
from alignguard.checks.context import CheckContext
from alignguard.checks.modules import module_exists
from alignguard.checks.probes.support import probe_inputs, probe_seed, runner, user_forward
from alignguard.results import CheckResult, Where, failed, passed

ID = "component.effect"
RELATIVE, FLOOR = 0.05, 1e-3  # first attempt: σ = max(5% of the tensor's rms, 1e-3)
# retries at a generic point: (σ of every other tensor, σ of the component's): a zero layer downstream
# becomes non-zero, a dead ReLU or an argmin meets noise as large as the parameters themselves
RETRIES = (((0.05, 0.02), (0.5, 0.02)), ((0.05, 0.02), (2.0, 0.1)))
TOLERANCE = 1e-5  # a symbol moved when max |Δ| > TOLERANCE · max(1e-3, max |symbol|): float rounding stays below


class ComponentEffectCheck(Check):
    ids = (ID,)
    explanations = {
        ID: (
            "Every symbol in a component's `reaches` must move when the component's own parameters move. "
            "With the spec's seed, on the probe rows, in eval mode and then (for a symbol that did not move) "
            "in train mode, where a noise scale reaches its sample, random noise is added to the component's floating-point parameters and persistent "
            "buffers (σ = 5% of each tensor's rms, at least 1e-3, so a zero-initialised layer moves too), through `.data`, so it works the same for a frozen module "
            "(requires_grad=False, called under no_grad) that no gradient rule can see. A symbol that does not "
            "change by more than 1e-5 of its scale is retried at a generic nearby point (every other "
            "parameter perturbed as well, so a zero-initialised layer downstream no longer hides the effect) "
            "with noise the size of the parameters (a dead ReLU, an argmin/index symbol); it fails only if it "
            "never moves. A component with no floating-point parameter has its output perturbed instead. "
            "component.on_path proves a data path in the graph; this proves the path carries the component's "
            "computation: a module bypassed (forward returns its input), short-circuited or whose output is "
            "discarded fails here. Fix: make the module's computation, not its input, produce the symbol "
            "(call it and use its result), or remove the symbol from `reaches` if the design does not "
            "route it there."
        )
    }

    def applies(self, spec) -> bool:
        return any(component.reaches for component in spec.components.values())

    def run(self, context: CheckContext) -> Iterable[CheckResult]:
        inputs = probe_inputs(context)
        seed = probe_seed(context)
        judged = {name: component for name, component in context.spec.components.items()
                  if component.reaches and module_exists(context.model, component.module)}
        # every judged component's symbols, read together as built: one unperturbed read serves them all
        everything = list(dict.fromkeys(s for component in judged.values() for s in component.reaches))
        for name, component in judged.items():  # component.called reports a missing module
            element, where = f"component {name}", Where(module=component.module)
            symbols = list(dict.fromkeys(component.reaches))
            with user_forward(context):
                outcome = _measure(context, component.module, symbols, everything, inputs, seed)
            if isinstance(outcome, str):
                yield failed(ID, element, f"perturbing '{component.module}' moves {', '.join(symbols)}", outcome,
                             fix="bind every symbol in `reaches` to a forward output or module output that exists",
                             where=where)
                continue
            moved, attempts, what = outcome
            for symbol in symbols:
                expected = f"perturbing {what} of '{component.module}' moves {symbol}"
                change, attempt = moved[symbol], attempts[symbol]
                details = {"max_abs_change": change, "moved_in": attempt.describe() if attempt else None}
                if attempt is not None:
                    later = "" if attempt is ATTEMPTS[0] else f" (in {attempt.describe()}: not in {ATTEMPTS[0].describe()})"
                    yield passed(ID, element, expected, f"max |Δ{symbol}| = {change:.3g}{later}",
                                 where=where, details=details)
                else:
                    yield failed(ID, element, expected,
                                 f"{symbol} did not move (max |Δ{symbol}| = {change:.3g}) when {what} of "
                                 f"'{component.module}' were perturbed, in eval and train mode, as built and at "
                                 f"{len(RETRIES)} generic nearby points with noise up to twice their size: the "
                                 "component is bypassed (its forward returns its input), short-circuited, or its "
                                 f"output is discarded before {symbol}",
                                 fix=f"compute {symbol} from the result of '{component.module}' (not from its input "
                                 f"or a copy made before it runs), or remove {symbol} from components.{name}.reaches "
                                 "if the design does not route it there",
                                 where=where, details=details)


@dataclass(frozen=True)
class Attempt:
    """One comparison: the mode, and the point (as built, or every other tensor perturbed by `rest`)."""

    train: bool
    own: tuple[float, float]  # (relative, floor) of the component's noise
    rest: tuple[float, float] | None = None

    def describe(self) -> str:
        mode = "train mode" if self.train else "eval mode"
        return f"{mode}, as built" if self.rest is None else f"{mode}, at a generic nearby point"


# As built in eval mode first (the replayed, cheap case), then train mode (a noise scale reaches z only
# there), then generic nearby points: a zero layer downstream becomes non-zero, a dead ReLU or an argmin
# meets noise as large as the parameters themselves.
ATTEMPTS = (Attempt(False, (RELATIVE, FLOOR)), Attempt(True, (RELATIVE, FLOOR)),
            *(Attempt(train, own, rest) for rest, own in RETRIES for train in (False, True)))


def _measure(context, path: str, symbols: list[str], everything: list[str], inputs: dict, seed: int):
    """({symbol: largest change seen}, {symbol: the Attempt that moved it or None}, what was perturbed),
    or why the symbols could not be read in either mode. `everything`: the symbols of every component the
    check judges, read together as built."""
    import torch

    from alignguard.probes.runtime import SymbolError

    model = context.model
    own = _tensors(model.get_submodule(path))
    what = "the parameters" if own else "the output"
    generator = torch.Generator().manual_seed(seed)
    run = runner(context)
    own_ids = {id(t) for t in own}

    def others() -> list:  # only a retry at a generic point needs them (a walk of every module)
        return [t for t in _tensors(model) if id(t) not in own_ids]

    def read(train: bool, hold: tuple = (), observe: list[str] = symbols) -> dict:
        # An eval run under no_grad replays the recorded calls that do not hold the component (an encoder
        # the other components do not touch runs once: probes/replay.py); a train run keeps the model's
        # buffers (running statistics) as they were.
        with (torch.no_grad() if not train else _buffers_kept(model)):
            values = run.run(inputs, train=train, seed=seed, observe=observe, param_grads=False, hold=hold)
        return {s: values[s].detach() for s in observe}

    def confirm() -> None:
        run.confirm_capture(inputs, seed)

    def as_built(train: bool) -> dict:
        # The same for every component: read once per check run, all components' symbols together (one
        # symbol only train mode returns makes that read fail: then each component's own, as before).
        together = context.memo(f"effect:as_built:{train}", lambda: _as_built(read, confirm, train, everything))
        if not isinstance(together, str):
            return {s: together[s] for s in symbols}
        return context.memo(f"effect:as_built:{train}:{','.join(symbols)}", lambda: _as_built(read, confirm, train, symbols))

    moved: dict[str, float] = {s: 0.0 for s in symbols}
    attempts: dict[str, Attempt | None] = {s: None for s in symbols}
    unreadable: dict[bool, str] = {}
    for attempt in ATTEMPTS:
        waiting = [s for s in symbols if attempts[s] is None]
        if not waiting:
            break
        if attempt.train in unreadable:
            continue
        try:
            # at a generic point every tensor moved: no recorded call may be replayed ('' holds them all)
            held = ("",) if attempt.rest else ()
            with _shifted(others() if attempt.rest else [], *(attempt.rest or (0.0, 0.0)), generator):
                # as built, the unperturbed values are the same for every component: read once per check run
                base = read(attempt.train, hold=held) if attempt.rest else as_built(attempt.train)
                if isinstance(base, str):
                    raise SymbolError(base)
                with _perturbed(model, path, own, *attempt.own, generator):
                    changed = read(attempt.train, hold=held or (path,))
        except SymbolError as exc:  # e.g. a symbol only train mode returns (an auxiliary head)
            unreadable[attempt.train] = str(exc)
            continue
        for s in waiting:
            moved[s] = max(moved[s], _change(base[s], changed[s]))
            if _moved(base[s], changed[s]):
                attempts[s] = attempt
    if len(unreadable) == 2:
        return unreadable[False]
    return moved, attempts, what


def _as_built(read, confirm, train: bool, observe: list[str]) -> dict | str:
    """The unperturbed values, or why they could not be read. In eval the first no_grad run on these inputs
    captures the input-only calls (or replays a capture an earlier check confirmed); a pending capture is
    confirmed at once, since the perturbed runs hold the component and never confirm one
    (probes/replay.py): every perturbed run after it replays the calls that do not hold the component."""
    from alignguard.probes.runtime import SymbolError

    try:
        values = read(train, observe=observe)
    except SymbolError as exc:  # memoised as such: the failing read is not repeated for every component
        return str(exc)
    if not train:
        confirm()
    return values


@contextmanager
def _buffers_kept(model) -> Iterator[None]:
    """The model's floating-point buffers restored after the block (a train forward updates BatchNorm's)."""
    saved = [(b, b.detach().clone()) for b in model.buffers() if b.is_floating_point()]
    try:
        yield
    finally:
        for buffer, value in saved:
            buffer.data.copy_(value)


def _tensors(module) -> list:
    """The floating-point parameters and persistent buffers (state a checkpoint keeps: an EMA copy held as
    buffers, running statistics) of a module and its children, each once. Non-persistent buffers are
    derived (masks, positional tables), not the component's state."""
    buffers = [buffer for owner in module.modules() for name, buffer in owner._buffers.items()
               if buffer is not None and name not in owner._non_persistent_buffers_set]
    seen, out = set(), []
    for tensor in (*module.parameters(), *buffers):
        if tensor.is_floating_point() and id(tensor) not in seen:
            seen.add(id(tensor))
            out.append(tensor)
    return out


def _noise(tensor, relative: float, floor: float, generator):
    """tensor + N(0, σ²) elementwise, σ = max(relative · rms of its finite elements, floor); non-finite elements
    kept. Each call draws its own noise from `generator`, so two tensors never share a perturbation (two
    zero-initialised heads that are subtracted must not cancel)."""
    import math

    import torch

    data = tensor.detach()
    if not data.numel():
        return data.clone()
    # float32 arithmetic (float64 for a float64 tensor): σ needs no more, and float64 draws were most of the
    # check's time on a ResNet-50 encoder (24M draws); one temporary, the perturbed tensor itself
    work = torch.float64 if data.dtype == torch.float64 else torch.float32
    norm = float(torch.linalg.vector_norm(data, dtype=work))
    if not math.isfinite(norm):  # a NaN or ±inf element (an additive mask's -inf), or an overflowing square
        return _noise_where_finite(data, relative, floor, generator)
    sigma = max(relative * norm / math.sqrt(data.numel()), floor)
    draw = torch.randn(data.shape, generator=generator, dtype=work).to(data.device)
    return torch.add(data, draw, alpha=sigma, out=draw).to(data.dtype)  # a finite norm: every element is finite


def _noise_where_finite(data, relative: float, floor: float, generator):
    """_noise for a tensor with non-finite elements (or too large for a float32 norm): only finite elements
    move (a -inf of an additive mask stays -inf); rms in float64."""
    import torch

    from alignguard.gradients.measure import dot64

    finite = data.isfinite()
    values = data[finite]
    rms = (dot64(values, values) / values.numel()) ** 0.5 if values.numel() else 0.0
    sigma = max(relative * rms, floor)
    draw = torch.randn(data.shape, generator=generator, dtype=torch.float64).to(data.device)
    return torch.where(finite, draw.mul_(sigma).add_(data), data.double()).to(data.dtype)


@contextmanager
def _shifted(tensors: list, relative: float, floor: float, generator) -> Iterator[None]:
    """The tensors replaced by noisy copies (through .data: versions and identities kept) for the block."""
    saved = [t.data for t in tensors]
    try:
        for t in tensors:
            t.data = _noise(t, relative, floor, generator)
        yield
    finally:
        for t, data in zip(tensors, saved):
            t.data = data


@contextmanager
def _perturbed(model, path: str, own: list, relative: float, floor: float, generator) -> Iterator[None]:
    """The component's tensors perturbed; a component without any, its output perturbed by a hook."""
    if own:
        with _shifted(own, relative, floor, generator):
            yield
        return
    import torch

    def hook(_module, _args, output):
        if isinstance(output, torch.Tensor):
            return _noise(output, relative, floor, generator) if output.is_floating_point() else output
        if isinstance(output, (tuple, list)):
            return type(output)(_noise(o, relative, floor, generator)
                                if isinstance(o, torch.Tensor) and o.is_floating_point() else o for o in output)
        return output

    with ExitStack() as stack:
        stack.callback(model.get_submodule(path).register_forward_hook(hook).remove)
        yield


def _change(before, after) -> float:
    """max |after - before| over finite pairs; inf when the shape or a non-finite element changed."""
    if before.shape != after.shape:
        return float("inf")
    if not before.numel():
        return 0.0
    a, b = before.double(), after.double()
    finite = a.isfinite() & b.isfinite()
    same_nonfinite = (a == b) | (a.isnan() & b.isnan())
    if bool((~finite & ~same_nonfinite).any()):
        return float("inf")
    diff = (a - b).abs()[finite]
    return float(diff.max()) if diff.numel() else 0.0


def _moved(before, after) -> bool:
    change = _change(before, after)
    values = before.double().abs()
    values = values[values.isfinite()]
    scale = max(float(values.max()) if values.numel() else 0.0, 1e-3)
    return change > TOLERANCE * scale
