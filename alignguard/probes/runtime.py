"""Read and intervene on design symbols by running the real model, with no traced graph.

A symbol bound to a forward output is read from what forward returns; a symbol bound to a
module output is read by a forward hook on that module. To *intervene* (add δ to U_I, make it
a leaf to differentiate through), the tensor is rewritten where it is produced:

* by a forward hook on the module that returns it (a discovery run records every module call's
  outputs and matches forward's output by identity), or, when no submodule returns it,
* by a `TorchFunctionMode` that rewrites the result of the torch call that created it inside
  forward (e.g. `R_E = softplus(head(z_E)).squeeze(-1)`: the `squeeze`), found in the same
  discovery run by its position in the sequence of torch calls.

A tensor no torch call produced (an input returned as is) cannot be intervened on: that raises
`SymbolError` saying why, and the probe fails rather than passes.

A read-only eval run that varies only some inputs (positivity varies the context c) may run on a
*slice*: the smallest submodule call, recorded in the discovery run, that takes forward inputs
only (those it varies among them) and returns every observed symbol, e.g. CMDN's modulator(c) for
M and T, so the probe never runs the encoder. The slice is kept only when it reproduces, bit for
bit, the whole model's symbols on the example batch with the inputs it does not read moved (so
state forward sets from them is caught); otherwise the whole model runs, and
`plan(...).describe()` says which ran and why.

Discovery is paid once: one recording locates every bound symbol and every tensor forward returns,
the first eval capture doubles as that recording, and a site or slice found on the example rows is
reused at another batch size (checked there: same call counts for a site, bit-for-bit agreement
with the whole model for a slice) instead of recording a whole forward of the larger batch.
"""

from __future__ import annotations

import os
import sys
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping

import torch
from torch.overrides import TorchFunctionMode

from alignguard.errors import SpecError
from alignguard.probes.replay import Replays
from alignguard.seeding import manual_seed
from alignguard.spec.model import SliceFitError, SymbolBinding

Edit = Callable[[torch.Tensor], torch.Tensor]
_TORCH_DIR = os.path.dirname(torch.__file__)


class SymbolError(Exception):
    """A symbol that cannot be read or intervened on; the message says why (for a FAIL)."""


class ForwardError(Exception):
    """The model's own forward raised; `original` is the user's exception."""

    def __init__(self, original: BaseException):
        super().__init__(f"{type(original).__name__}: {original}")
        self.original = original


@dataclass(frozen=True)
class Site:
    """Where a symbol's tensor is produced: the `call`-th call of `module` (element `index`), or,
    with `op` set, the `op`-th torch call of forward (`op_name`, at `file`:`line`)."""

    module: str | None
    index: int | None  # element of a tuple/list output; None: the output itself
    call: int = 0  # 0-based call number of the module (the last call when called several times)
    also: tuple[int, ...] = ()  # other elements holding the very same tensor (eval's z_I is mu), edited alike
    op: int | None = None
    op_name: str = ""
    file: str | None = None
    line: int | None = None
    # In the recording that located it: calls of `module`, or torch calls of forward (for an `op` site).
    # A run at another input shape may use the site when it makes as many (see SymbolRunner._edit_sites).
    total: int = 0

    def describe(self) -> str:
        element = f"[{self.index}]" if self.index is not None else ""
        if self.op is not None:
            return f"the result{element} of `{self.op_name}` in forward" + (f" ({self.location()})" if self.file else "")
        return f"output of module '{self.module}'{element}"

    def location(self) -> str:
        return f"{self.file}:{self.line}" if self.file else ""


@dataclass(frozen=True)
class Slice:
    """What a read-only run executes: `module` ('' = the whole model) on `args`/`kwargs`, where an
    entry ("input", name) is that forward input and ("value", v) a recorded constant; `picks` maps
    each forward-output symbol to its element of the module's output. `why`: why the whole model."""

    module: str = ""
    args: tuple = ()
    kwargs: tuple = ()
    picks: tuple = ()  # ((symbol, element index or None), ...)
    why: str = ""

    def describe(self) -> str:
        if self.module:
            reads = ", ".join(dict.fromkeys(v for kind, v in (*self.args, *(a for _, a in self.kwargs)) if kind == "input"))
            return f"sliced: module '{self.module}' on input(s) {reads} (the rest of the model is not run)"
        return f"whole model: {self.why}" if self.why else "whole model"


class _TorchCalls(TorchFunctionMode):
    """Counts forward's torch calls; records their tensor results, or rewrites chosen ones."""

    def __init__(self, record: bool = False, edits: Mapping[int, list[tuple["Site", Edit]]] | None = None):
        super().__init__()
        self.count, self.paused = -1, False
        self.record = record
        self.events: list[tuple[int, Any, str, str | None, int | None]] = []
        self.edits = dict(edits or {})

    def __torch_function__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        if self.paused:
            return result
        self.count += 1
        if self.record and any(isinstance(e, torch.Tensor) for _, e in _elements(result)):
            self.events.append((self.count, result, getattr(func, "__name__", str(func)), *_caller()))
        for site_edit in self.edits.get(self.count, ()):  # two symbols may be slices of one result
            result = _edit(result, site_edit, "a torch call")
        return result

    @contextmanager
    def pause(self) -> Iterator[None]:
        """Torch calls our own hooks make must not shift forward's call numbering."""
        self.paused, was = True, self.paused
        try:
            yield
        finally:
            self.paused = was


def _edit(output: Any, site_edit: tuple["Site", Edit], where: str) -> Any:
    """The output with the site's element (and every position holding the same tensor) edited once."""
    site, edit = site_edit
    value = edit(_select(output, site.index, where))
    for index in (site.index, *site.also):
        output = _replace(output, index, value)
    return output


def _caller() -> tuple[str | None, int | None]:
    """file:line of the innermost frame outside torch and this module (the user's line)."""
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename
        if not name.startswith(_TORCH_DIR) and name != __file__:
            return name, frame.f_lineno
        frame = frame.f_back
    return None, None


def forward_value(outputs: Any, key: str) -> Any:
    """forward's output `key`: a dict key, an attribute, or a tuple index; a dotted path
    (`0.1`, `heads.mu`) walks nested outputs one step at a time when no element has the whole key."""
    if "." in key and not _has(outputs, key):
        value = outputs
        for part in key.split("."):
            value = _forward_value(value, part)
        return value
    return _forward_value(outputs, key)


def _has(outputs: Any, key: str) -> bool:
    return key in outputs if isinstance(outputs, Mapping) else hasattr(outputs, key)


def _forward_value(outputs: Any, key: str) -> Any:
    if isinstance(outputs, torch.Tensor) and key == "output":
        return outputs  # a forward that returns one tensor: the capture names it 'output'
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


def _positions(output: Any, same: Callable[[torch.Tensor], bool]) -> tuple:
    """Every element index of `output` holding the tensor (None for a bare tensor)."""
    return tuple(i for i, e in _elements(output) if isinstance(e, torch.Tensor) and same(e))


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


def _recording_key(inputs: Mapping[str, Any], train: bool, seed: int) -> tuple:
    return (train, seed, tuple((k, id(v)) for k, v in inputs.items()))


def _place(binding: SymbolBinding) -> tuple:
    """Where a binding points: symbols bound alike (a spec symbol, translation's partner of the same
    forward output) share one located site."""
    return (binding.module, binding.output, binding.index)


def _signature(inputs: Mapping[str, Any]) -> tuple:
    return tuple((k, tuple(v.shape), v.dtype) if isinstance(v, torch.Tensor) else (k, type(v)) for k, v in inputs.items())


class SymbolRunner:
    """Runs the model on given inputs, reading and editing symbols by their spec bindings."""

    def __init__(self, model: torch.nn.Module, bindings: Mapping[str, SymbolBinding],
                 locate: Callable[[str, str], str] | None = None):
        self.model = model
        self.bindings = dict(bindings)
        self.locate = locate  # (symbol, binding key) -> where the spec says it, for a slice that does not fit
        self._sites: dict[tuple, Site] = {}
        self._recorded: dict[tuple, tuple] = {}
        self._slices: dict[tuple, Slice] = {}
        self._replays = Replays(model)
        self._refused: set[tuple] = set()  # replay keys whose replayed run did not reproduce the whole one
        self._quiet = False  # see _without_discovery
        self._mode = _Mode(model)

    def extended(self, extra: Mapping[str, SymbolBinding]) -> "SymbolRunner":
        """A runner that also knows `extra` bindings and shares this one's located sites."""
        other = SymbolRunner(self.model, {**self.bindings, **extra}, self.locate)
        other._sites, other._recorded = self._sites, self._recorded
        other._replays, other._refused = self._replays, self._refused
        other._mode = self._mode  # one model: the extended runner's runs are this one's to settle
        return other

    def drop_recording(self) -> None:
        """Free the kept discovery recording (every module output of one forward): a phase that needs
        the memory more (the gradient measurement) calls this; a later discovery records again."""
        self._recorded.clear()

    def binding(self, name: str) -> SymbolBinding:
        if name not in self.bindings:
            raise SymbolError(f"matched nothing: '{name}' is not a bound symbol")
        return self.bindings[name]

    def part(self, name: str, value: torch.Tensor, whole: bool = False) -> torch.Tensor:
        """The symbol's part of the tensor read at its place (`whole`: the tensor, its fit checked)."""
        binding = self.binding(name)
        if binding.part_key is None:
            return value
        self._fits(name, value)
        return value if whole else binding.select(value)

    def _fits(self, name: str, value: Any) -> None:
        """A slice/chunk that cannot be taken of the real tensor is a spec error (exit 2), located."""
        binding = self.binding(name)
        if binding.part_key is None or not isinstance(value, torch.Tensor):
            return
        try:
            binding.selection(value.shape)
        except SliceFitError as exc:
            where = self.locate(name, binding.part_key) if self.locate else f"symbols.{name}.{binding.part_key}"
            raise SpecError(f"symbol '{name}': {exc}", where=where,
                            fix=f"write a slice that fits shape {list(value.shape)} (dimension 0 is usually the "
                            "batch), e.g. \"[:, :k]\" and \"[:, k:]\" for two halves of the last dimension, or bind "
                            f"{name} to the tensor that holds it") from None

    def _edit_of(self, name: str, edit: Edit) -> Edit:
        """An edit of the symbol as an edit of the tensor it is read from: only its slice changes."""
        binding = self.binding(name)
        if binding.part_key is None:
            return edit

        def spliced(whole: torch.Tensor) -> torch.Tensor:
            self._fits(name, whole)
            return binding.splice(whole, edit(binding.select(whole)))
        return spliced

    def _module(self, path: str) -> torch.nn.Module:
        try:
            return self.model.get_submodule(path)
        except AttributeError:
            raise SymbolError(f"matched nothing: the model has no module '{path}'") from None

    # ---- running ------------------------------------------------------------------------
    def run(self, inputs: Mapping[str, Any], *, train: bool = False, seed: int = 0,
            observe: Iterable[str] = (), edits: Mapping[str, Edit] | None = None,
            whole: bool = False, vary: Iterable[str] | None = None, param_grads: bool = True,
            hold: Iterable[str] = ()) -> dict[str, Any]:
        """Run forward once; return the observed symbols (plus '__outputs__': forward's result).

        A symbol bound to a slice (or chunk) is returned as that slice, or (`whole`) as the tensor it is a
        slice of: the one autograd differentiates (a fresh view is on no path to the loss). An edit of
        such a symbol receives its slice and returns the new slice; the rest of the tensor is kept.
        With `vary` (the inputs this run changes from the example batch), a read-only eval run may
        execute the smallest validated slice instead (see `plan`); it then returns no '__outputs__'.
        A run that differentiates only with respect to its own leaves (inputs, or a symbol an edit makes a
        leaf) passes `param_grads=False`: no autograd graph is built through the parameters upstream.
        `hold`: module paths the caller changed for this run (parameters swapped through `.data`, which
        keeps their versions): a replayed call that holds one of them runs instead.
        """
        try:
            return self._run(inputs, train, seed, observe, edits, whole, vary, param_grads, tuple(hold))
        except ForwardError:
            if param_grads:
                raise
            # A forward that fails with its parameters frozen (one differentiating them itself) runs as it is.
            return self._run(inputs, train, seed, observe, edits, whole, vary, True, tuple(hold))

    def _run(self, inputs, train, seed, observe, given_edits, whole, vary, param_grads, hold=()) -> dict[str, Any]:
        observe, edits = list(observe), {name: self._edit_of(name, e) for name, e in (given_edits or {}).items()}
        if vary is not None and not edits and not whole:
            part = self.plan(observe, inputs, train=train, seed=seed, vary=vary)
            if part.module:
                return self._run_slice(part, inputs, train, seed, observe, param_grads)
        sites, borrowed = self._edit_sites(edits, inputs, train, seed)
        op_edits: dict[int, list] = {}
        for name, site in sites.items():
            if site.op is not None:
                op_edits.setdefault(site.op, []).append((site, edits[name]))
        calls_mode = _TorchCalls(edits=op_edits) if op_edits else None
        replay, capture, changed, any_seed = self._replay_plan(inputs, train, seed, edits, observe, hold, param_grads)
        capture = capture and not hold  # a capture must hold the model as it is, not as the caller changed it
        if capture:
            calls_mode = _TorchCalls()  # numbers the captured calls' torch calls as the recording does
        by_module: dict[str, list[str]] = {}
        for name in observe:
            if self.binding(name).module is not None:
                by_module.setdefault(self.binding(name).module, []).append(name)
        for name, site in sites.items():
            if site.op is None:
                by_module.setdefault(site.module, []).append(name)
        seen: dict[str, Any] = {}
        calls: dict[str, int] = {}

        def make_hook(path: str):
            def hook(module, args, output):
                number = calls[path] = calls.get(path, -1) + 1
                with calls_mode.pause() if calls_mode else _nothing():
                    for name in dict.fromkeys(by_module[path]):
                        site = sites.get(name)
                        if site is not None and site.op is None and site.call == number:
                            output = _edit(output, (site, edits[name]), site.describe())
                        binding = self.binding(name)
                        if name in observe and binding.module is not None:
                            seen[name] = _select(output, binding.index, binding.describe())  # last call wins
                return output
            return hook

        with ExitStack() as stack:
            for path in by_module:
                stack.callback(self._module(path).register_forward_hook(make_hook(path)).remove)
            stack.enter_context(_frozen(self.model, not param_grads))  # before the mode: it must not count these
            if replay:
                stack.enter_context(self._replays.replaying(calls_mode, lambda call: self._touches(
                    call, sites, [n for n in observe if self.binding(n).module is not None]) or any(
                    not path or call.holds(path=path) for path in hold)  # '' is the root: it holds every call
                    or bool(call.reads & changed) or (torch.is_grad_enabled() and any(
                        getattr(inputs[n], "requires_grad", False) for n in call.reads)), any_seed))
            if capture and not self._located(train):
                # Nothing is located yet: this capture is also the discovery recording (batch_independence's
                # symbol_where, identifiability's first edit recorded a forward more); other shapes borrow.
                self._recorded.clear()
                recording = self._record(inputs, train, seed, param_grads,
                                         lambda mode, forward: self._replays.capture(inputs, mode, forward))
                self._recorded[_recording_key(inputs, train, seed)] = (*recording, inputs)
                outputs = recording[2]
            elif capture:
                outputs = self._replays.capture(inputs, calls_mode,
                                                lambda: self._forward(inputs, train, seed, mode=calls_mode))
            else:
                outputs = self._forward(inputs, train, seed, mode=calls_mode)
        if borrowed:
            ops = calls_mode.count + 1 if calls_mode is not None else 0
            wrong = [n for n in borrowed if sites[n].total != (ops if sites[n].op is not None
                                                               else calls.get(sites[n].module, -1) + 1)]
            signature = _signature(inputs)
            for name in borrowed:
                if name not in wrong:
                    self._sites[(_place(self.binding(name)), train, signature)] = sites[name]
            if wrong:  # forward differs at this shape: locate the sites on these inputs and run again
                for name in wrong:
                    place = _place(self.binding(name))
                    self._sites[(place, train, signature)] = self._find_site(self.binding(name), inputs, train, seed)
                return self._run(inputs, train, seed, observe, given_edits, whole, vary, param_grads, hold)
        for name in observe:
            binding = self.binding(name)
            if binding.output is not None:
                value = forward_value(outputs, binding.output)
                if not isinstance(value, torch.Tensor):
                    raise SymbolError(f"forward output '{binding.output}' is a {type(value).__name__}, not a tensor")
                seen[name] = value
            elif name not in seen:
                raise SymbolError(f"module '{binding.module}' is never called in forward: matched nothing")
            seen[name] = self.part(name, seen[name], whole)
        seen["__outputs__"] = outputs
        if capture:  # confirmed only if a later run on the same inputs wants it (most inputs run once)
            self._replays.hold(self._replays.key_of(inputs, seed), inputs, (observe, dict(seen)))
            if _recording_key(inputs, train, seed) in self._recorded:
                self._locate_all(inputs, train, seed)
        return seen

    def _located(self, train: bool) -> bool:
        """Whether some site was located in this mode (or none is wanted from this run)."""
        return self._quiet or any(t == train for _, t, _ in self._sites)

    @contextmanager
    def _without_discovery(self) -> Iterator[None]:
        """Runs that only confirm something (a slice) record nothing: a recording holds every activation
        (positivity's 16-row confirmation of the modulator slice recorded the whole transformer, 156 MiB)."""
        was, self._quiet = self._quiet, True
        try:
            yield
        finally:
            self._quiet = was

    # ---- replaying (see replay.py) ------------------------------------------------------
    def _replay_plan(self, inputs, train: bool, seed: int, edits, observe, hold=(),
                     param_grads: bool = True) -> tuple[bool, bool, frozenset, bool]:
        """(replay captured calls, capture them in this run, the inputs changed from the capture's: calls
        taking them run, at another seed than the capture's: only calls that drew nothing replay). Eval runs
        only; captures under no_grad only. A grad-enabled run may replay when it
        differentiates with respect to its own leaves only (`param_grads=False`): a captured output holds no
        graph, and a call taking an input that requires grad runs. A run that holds modules the caller
        changed neither confirms a capture nor takes one (both must see the model as it is)."""
        replays, none = self._replays, frozenset()
        grad = torch.is_grad_enabled()
        if train or (grad and param_grads):
            return False, False, none, False
        key = replays.key_of(inputs, seed)
        if replays.crossing is not None:  # one of _confirm_across's two runs
            changed = replays.changed(key, inputs)
            return replays.crossing == "replay" and changed is not None, False, changed or none, False
        if replays.seeding is not None:  # one of _confirm_seed's two runs
            return replays.seeding == "replay" and replays.other_seed(key), False, none, True
        if not grad and replays.pending is not None and replays.key == key and not hold:
            self._confirm(inputs, seed)
        if replays.ready(key):
            return True, False, none, False
        if replays.other_seed(key) and not replays.seeds_crossed and not hold:
            if not grad and replays.pending is not None:  # the capture itself first, at its own seed
                self._confirm(inputs, replays.key[0])
            if replays.other_seed(key):
                self._confirm_seed(inputs, seed, observe)
        if replays.ready_seed(key):
            return True, False, none, True
        changed = replays.changed(key, inputs)
        if changed is not None and not replays.crossed and not hold and replays.differs(inputs, changed):
            self._confirm_across(inputs, seed, changed, observe)
        changed = replays.ready_across(key, inputs)
        if changed is not None:
            return True, False, changed, False
        return False, not grad and not edits and key not in self._refused, none, False

    def _touches(self, call, sites: Mapping[str, Site], hooked: list[str]) -> bool:
        """Whether the run edits, or reads by a hook, something inside the captured call."""
        return (any(call.holds(op=site.op) if site.op is not None else call.holds(path=site.module)
                    for site in sites.values())
                or any(call.holds(path=self.binding(n).module) for n in hooked))

    def confirm_capture(self, inputs: Mapping[str, Any], seed: int) -> None:
        """Confirm now a capture still pending on these inputs (nothing when there is none), for a caller whose
        next runs all hold modules it changed (component.effect): held runs never confirm, and a second read
        only to confirm cost a forward more of everything not replayed."""
        if self._replays.pending is not None and self._replays.key == self._replays.key_of(inputs, seed):
            with torch.no_grad():
                self._confirm(inputs, seed)

    def _confirm(self, inputs, seed: int) -> None:
        """Keep the capture only if a replayed run reproduces the captured whole run bit for bit."""
        replays = self._replays
        (observe, whole), replays.pending, replays.valid = replays.pending, None, True
        key = replays.key
        try:
            again = self._run(inputs, False, seed, observe, {}, False, None, True)
            same = all(_identical(again[n], whole[n]) for n in observe) and _same_outputs(
                again["__outputs__"], whole["__outputs__"])
        except (SymbolError, ForwardError):
            same = False
        if not same:
            replays.drop()
            self._refused.add(key)

    def _confirm_across(self, inputs, seed: int, changed: frozenset, observe) -> None:
        """Replay across inputs the calls do not take only if, on these inputs (`changed` differ in value from
        the captured run's), the whole model run for real and with the calls replayed agree bit for bit: state
        flowing from a changed input into a captured call (an attribute set from c that the encoder reads)
        shows there. The replayed run goes first, so state the skipped calls would have set is the captured
        run's, not this run's: state a call sets that depends on the changed inputs shows too. Symbols read by
        hooks are left out (a hook inside a call keeps it from being replayed)."""
        replays = self._replays
        if self._replay_agrees(inputs, seed, observe, "crossing"):
            replays.crossed, replays.valid, replays.pending = True, True, None
        else:
            replays.drop()
            replays.cross_refused = True

    def _confirm_seed(self, inputs, seed: int, observe) -> None:
        """Replay the calls that drew nothing at another seed than the capture's only if, at this seed, the
        whole model run with them replayed and run for real agree bit for bit (replayed first, as in
        `_confirm_across`): a call whose output depends on the seed without moving a stream we watch (a
        generator of the model's own) shows there. Symbols read by hooks are left out, as there."""
        same = self._replay_agrees(inputs, seed, observe, "seeding")
        self._replays.seeds_crossed, self._replays.seeds_refused = same, not same

    def _replay_agrees(self, inputs, seed: int, observe, phase: str) -> bool:
        """Whether the whole model run with the captured calls replayed, then run for real, gives the same
        outputs and observed forward outputs bit for bit; `phase` ('crossing' or 'seeding') is the Replays
        attribute that tells the two runs apart while they run."""
        replays = self._replays
        names = [n for n in observe if self.binding(n).output is not None]
        try:
            with torch.no_grad():
                setattr(replays, phase, "replay")
                again = self._run(inputs, False, seed, names, {}, False, None, True)
                setattr(replays, phase, "real")
                real = self._run(inputs, False, seed, names, {}, False, None, True)
            return all(_identical(again[n], real[n]) for n in names) and _same_outputs(
                again["__outputs__"], real["__outputs__"])
        except (SymbolError, ForwardError):
            return False
        finally:
            setattr(replays, phase, None)

    # ---- slicing ------------------------------------------------------------------------
    def plan(self, observe: Iterable[str], inputs: Mapping[str, Any], *, train: bool, seed: int,
             vary: Iterable[str]) -> Slice:
        """The smallest recorded module call that serves a read-only run of `observe` (memoised per
        symbols, mode, varied inputs and input shapes), or the whole model and why."""
        observe, vary = tuple(dict.fromkeys(observe)), tuple(sorted(set(vary)))
        key = (observe, train, vary, _signature(inputs))
        if key not in self._slices:
            # A slice found at another input shape (the example rows) is tried first: finding it again
            # records a whole forward of these inputs (positivity's 16-row search). It is still
            # confirmed bit for bit on these inputs, as a newly found one is.
            known = next((part for (o, t, v, _), part in self._slices.items()
                          if (o, t, v) == key[:3] and part.module), None)
            part = self._validated(known, inputs, train, seed, observe) if known is not None else None
            self._slices[key] = part if part is not None and part.module else self._find_slice(
                observe, inputs, train, seed, vary)
        return self._slices[key]

    def _find_slice(self, observe, inputs, train, seed, vary) -> Slice:
        if train:
            return Slice(why="train mode runs the whole model (its noise and batch statistics are model-wide)")
        if not observe:
            return Slice(why="nothing observed")
        try:
            module_events, _, outputs = self._recording(inputs, train, seed)
            targets = {n: forward_value(outputs, self.binding(n).output) for n in observe
                       if self.binding(n).output is not None}
        except (SymbolError, ForwardError):
            return Slice(why="the symbols could not be located by running the model")
        names = {id(v): k for k, v in inputs.items() if isinstance(v, torch.Tensor)}
        sizes = {path: sum(p.numel() for p in m.parameters()) for path, m in self.model.named_modules()}
        candidates = []
        for path, number, output, args, kwargs in module_events:
            arguments = _as_inputs(args, names), tuple((k, _as_input(v, names)) for k, v in kwargs.items())
            if arguments[0] is None or any(a is None for _, a in arguments[1]):
                continue  # an argument computed inside forward: this call is not a slice of the inputs
            read = {v for kind, v in (*arguments[0], *(a for _, a in arguments[1])) if kind == "input"}
            picks = {n: _positions(output, lambda a, t=t: a is t) for n, t in targets.items()}
            inside = all(self.binding(n).module == path or (self.binding(n).module or "").startswith(path + ".")
                         for n in observe if self.binding(n).module is not None)
            if set(vary) <= read and all(picks.values()) and inside:
                pick = tuple((n, picks[n][0]) for n in targets)
                candidates.append((sizes.get(path, 0), path.count("."), Slice(path, arguments[0], arguments[1], pick)))
        if not candidates:
            return Slice(why=f"no submodule call takes forward inputs only (including {', '.join(vary) or 'none'}) "
                         f"and returns {', '.join(observe)}")
        best = min(candidates, key=lambda c: c[:2])[2]
        return self._validated(best, inputs, train, seed, observe)

    def _validated(self, best: Slice, inputs, train, seed, observe) -> Slice:
        """`best` if it reproduces the whole model on these inputs, else the whole model and why."""
        read = {v for kind, v in (*best.args, *(a for _, a in best.kwargs)) if kind == "input"}
        # The slice must reproduce the whole model's symbols bit for bit, and with the inputs it does
        # not read moved: state forward sets from them (an attribute the module reads) shows there.
        moved = {k: (_moved(v) if k not in read else v) for k, v in inputs.items()}
        try:  # values only: no autograd graph (positivity's search plans with grad on, leaves in its inputs)
            with torch.no_grad(), self._without_discovery():
                sliced = self._run_slice(best, inputs, train, seed, observe)
                whole = self.run(moved, train=train, seed=seed, observe=observe)
        except (SymbolError, ForwardError):
            return Slice(why=f"module '{best.module}' could not be run on its own")
        if not all(_identical(sliced[n], whole[n]) for n in observe):
            return Slice(why=f"module '{best.module}' run on its own does not reproduce {', '.join(observe)} "
                         "(it reads state the rest of forward sets)")
        return best

    def _run_slice(self, part: Slice, inputs, train: bool, seed: int, observe: list[str],
                   param_grads: bool = True) -> dict[str, Any]:
        module = self._module(part.module)
        value = lambda entry: inputs[entry[1]] if entry[0] == "input" else entry[1]  # noqa: E731
        call = lambda: module(*map(value, part.args), **{k: value(a) for k, a in part.kwargs})  # noqa: E731
        hooked = [n for n in observe if self.binding(n).module is not None]
        seen: dict[str, Any] = {}
        with ExitStack() as stack:
            for name in hooked:
                binding = self.binding(name)

                def hook(_module, _args, output, name=name, binding=binding):
                    seen[name] = _select(output, binding.index, binding.describe())
                stack.callback(self._module(binding.module).register_forward_hook(hook).remove)
            stack.enter_context(_frozen(self.model, not param_grads))
            output = self._forward(inputs, train, seed, call=call)
        for name, index in part.picks:
            seen[name] = _select(output, index, f"module '{part.module}'")
        missing = [n for n in observe if n not in seen]
        if missing:
            raise SymbolError(f"module '{part.module}' did not produce {', '.join(missing)}")
        for name in observe:  # a symbol bound to a slice is that slice, as in a whole-model run
            seen[name] = self.part(name, seen[name])
        return seen

    # ---- locating -----------------------------------------------------------------------
    def site(self, name: str, inputs: Mapping[str, Any], *, train: bool, seed: int) -> Site:
        """Where the symbol's tensor is produced (memoised per place it is bound to, mode and input shapes)."""
        binding = self.binding(name)
        signature = _signature(inputs)
        key = (_place(binding), train, signature)
        if key not in self._sites:
            self._sites[key] = self._find_site(binding, inputs, train, seed)
            self._locate_all(inputs, train, seed)
        return self._sites[key]

    def _locate_all(self, inputs, train: bool, seed: int) -> None:
        """Every bound symbol's and every returned tensor's site from the one recording of these inputs:
        a later probe on another symbol (identifiability's M, B, T, symbol_where, translation_symmetry's
        partners) then records nothing again. Errors are raised when the symbol is asked for."""
        signature = _signature(inputs)
        outputs = self._recording(inputs, train, seed)[2]
        for other in [*self.bindings.values(), *(SymbolBinding(output=k) for k in output_tensors(outputs))]:
            if (_place(other), train, signature) not in self._sites:
                try:
                    self._sites[(_place(other), train, signature)] = self._find_site(other, inputs, train, seed)
                except SymbolError:
                    pass

    def _edit_sites(self, names, inputs, train: bool, seed: int) -> tuple[dict[str, Site], set[str]]:
        """The sites of the edited symbols, and which of them were located at another input shape.

        modulation runs 64 (x, c) pairs, positivity's search 16 rows: recording those forwards only to
        find a site already found on the example rows cost a whole forward of the large batch, holding
        every module output. Such a borrowed site is kept only if the run makes as many calls of its
        module (as many torch calls, for a site inside forward) as the recording did; `_run` checks
        that and otherwise locates it on this run's inputs and runs again."""
        signature, sites, borrowed = _signature(inputs), {}, set()
        for name in names:
            place = _place(self.binding(name))
            if (place, train, signature) not in self._sites:
                other = next((site for (n, t, _), site in self._sites.items() if n == place and t == train), None)
                if other is not None and other.total:
                    sites[name] = other
                    borrowed.add(name)
                    continue
            sites[name] = self.site(name, inputs, train=train, seed=seed)
        return sites, borrowed

    def _find_site(self, binding: SymbolBinding, inputs: Mapping[str, Any], train: bool, seed: int) -> Site:
        if binding.module is not None:
            self._module(binding.module)
            module_events, _, _ = self._recording(inputs, train, seed)
            calls = [output for path, _, output, *_ in module_events if path == binding.module]
            if not calls:
                raise SymbolError(f"module '{binding.module}' is never called in forward: matched nothing")
            _select(calls[-1], binding.index, binding.describe())
            return Site(binding.module, binding.index, len(calls) - 1, total=len(calls))
        module_events, op_events, outputs = self._recording(inputs, train, seed)
        forward_calls = self._recorded_ops(inputs, train, seed)
        target = forward_value(outputs, binding.output)
        if not isinstance(target, torch.Tensor):
            raise SymbolError(f"forward output '{binding.output}' is a {type(target).__name__}, not a tensor")
        # Identity first: a view of the same storage (gradient reversal's view_as) is not the producer.
        for fallback, same in ((False, lambda a: a is target), (True, lambda a: _same_tensor(a, target))):
            matches = [(path, number, positions) for path, number, output, *_ in module_events
                       if (positions := _positions(output, same))]
            if matches:  # calls finish inner-first: the last identity match is the outermost wrapper;
                path, number, positions = matches[0] if fallback else matches[-1]  # a view's earliest is its producer
                total = sum(1 for event in module_events if event[0] == path)
                return Site(path, positions[0], number, also=positions[1:], total=total)
            ops = [(count, name, file, line, positions) for count, result, name, file, line in op_events
                   if (positions := _positions(result, same))]
            if ops:  # the call that created the tensor, not a later view of it
                count, op_name, file, line, positions = ops[0]
                return Site(None, positions[0], 0, positions[1:], count, op_name, file, line, total=forward_calls)
        raise SymbolError(
            f"forward output '{binding.output}' is not produced by any torch call or submodule in forward (an "
            "input returned as is?), so it cannot be intervened on; bind the symbol to the module that "
            "produces it (`module: PATH`)")

    def _recording(self, inputs, train, seed):
        """(module events, torch-call events, outputs) of one forward, for the latest inputs and mode only.

        A recording holds every module output and torch-call result of a forward (the transformer's
        were most of its check's memory), and it is read only while sites and slices are located,
        which are memoised: so one recording is kept, the previous one is dropped, and it is taken
        with the parameters frozen, so it holds no autograd graph through the model."""
        key = _recording_key(inputs, train, seed)
        if key not in self._recorded:  # the entry keeps `inputs` alive, so their ids stay unique
            self._recorded.clear()
            self._recorded[key] = (*self._record_calls(inputs, train, seed), inputs)
        return self._recorded[key][:3]

    def _recorded_ops(self, inputs, train, seed) -> int:
        """How many torch calls forward made in the recording of these inputs."""
        self._recording(inputs, train, seed)
        return self._recorded[_recording_key(inputs, train, seed)][3]

    def _record_calls(self, inputs, train, seed):
        try:
            return self._record(inputs, train, seed, param_grads=False)
        except ForwardError:  # a forward that fails with its parameters frozen is recorded as it is
            return self._record(inputs, train, seed, param_grads=True)

    def _record(self, inputs, train, seed, param_grads: bool, around: Callable | None = None):
        """One recorded forward; `around(mode, forward)`, when given, runs the forward (a replay capture)."""
        events: list[tuple[str, int, Any, tuple, dict]] = []  # path, call number, output, args, kwargs
        counts: dict[str, int] = {}

        def make_hook(path: str):
            def hook(module, args, kwargs, output):
                counts[path] = counts.get(path, -1) + 1
                events.append((path, counts[path], output, args, kwargs))  # args: what a slice re-runs
            return hook

        with ExitStack() as stack:
            for path, module in self.model.named_modules():
                if path:
                    stack.callback(module.register_forward_hook(make_hook(path), with_kwargs=True).remove)
            stack.enter_context(_frozen(self.model, not param_grads))  # before the mode: it must not count these
            calls_mode = _TorchCalls(record=True)
            forward = lambda: self._forward(inputs, train, seed, mode=calls_mode)  # noqa: E731
            outputs = around(calls_mode, forward) if around is not None else forward()
        return events, calls_mode.events, outputs, calls_mode.count + 1

    def _forward(self, inputs: Mapping[str, Any], train: bool, seed: int, call: Callable[[], Any] | None = None,
                 mode: "_TorchCalls | None" = None) -> Any:
        """forward (or `call`) in the mode under the seed; `mode` counts only the model's own torch calls
        (entered inside the RNG fork, whose own torch calls vary with the process's history)."""
        replays = self._replays
        if replays.key is not None and (train or self._elsewhere(replays.key_of(inputs, seed), inputs)):
            replays.drop()  # another forward may change state a replayed call would have set
        self._mode.enter(train)
        with torch.random.fork_rng(devices=[]), self._replays.own():
            manual_seed(seed)
            try:
                with mode if mode is not None else _nothing():
                    return call() if call is not None else self.model(**inputs)
            except SymbolError:
                raise
            except Exception as exc:
                raise ForwardError(exc) from exc

    def _elsewhere(self, key: tuple, inputs) -> bool:
        """Whether a run on `key` is neither the capture's inputs nor a confirmed (or confirming) crossing."""
        replays = self._replays
        if key == replays.key:
            return False
        return (replays.crossing is None and replays.ready_across(key, inputs) is None
                and replays.seeding is None and not replays.ready_seed(key))

    def settle(self) -> None:
        """Put the model back in the mode it had before this runner's runs (see `_Mode`)."""
        self._mode.settle()


class _Mode:
    """The model's train/eval mode for a series of runs.

    A run leaves the model in its own mode, so consecutive eval runs pay no switch, and the mode the
    model had before the series is restored once, by `settle()` (api's `_run_one` calls it after each
    check, before anything else uses the model). `Module.train` walks every submodule through
    `__setattr__` (0.49 s of a 12-layer transformer's check when every run switched and switched
    back); it is skipped when every module's flag is already what the last `train(mode)` left. A
    user's `train()` may leave some flags apart (a frozen BatchNorm), so all the flags it produced
    are compared, not the root's alone."""

    def __init__(self, model: torch.nn.Module):
        self.model = model
        self.restore: bool | None = None  # the root's mode before the runs since the last settle()
        self.produced: dict[bool, tuple] = {}  # every module's flag after the last model.train(mode)

    def enter(self, train: bool) -> None:
        if self.restore is None:
            self.restore = self.model.training
        self._set(train)

    def settle(self) -> None:
        if self.restore is not None:
            restore, self.restore = self.restore, None
            self._set(restore)

    def _set(self, train: bool) -> None:
        if self.produced.get(train) == self._flags():
            return
        self.model.train(train)
        self.produced[train] = self._flags()

    def _flags(self) -> tuple:
        """Every module's flag, depth first (a walk of `_modules`: `modules()` builds every module's name,
        ten times the cost, twice per run)."""
        flags, stack = [], [self.model]
        while stack:
            module = stack.pop()
            flags.append(module.training)
            stack.extend(child for child in module._modules.values() if child is not None)
        return tuple(flags)


@contextmanager
def _nothing() -> Iterator[None]:
    yield


@contextmanager
def _frozen(model: torch.nn.Module, freeze: bool = True) -> Iterator[None]:
    """With `freeze`, the parameters' requires_grad off for the block, restored afterwards whatever
    happens, so autograd records only what depends on the run's own leaves."""
    trainable = [p for p in model.parameters() if p.requires_grad] if freeze else []
    try:
        for p in trainable:
            p.requires_grad_(False)
        yield
    finally:
        for p in trainable:
            p.requires_grad_(True)


def _as_input(value: Any, names: Mapping[int, str]) -> tuple | None:
    """("input", name) for a forward input passed as is, ("value", v) for a constant, None otherwise."""
    if isinstance(value, torch.Tensor):
        return ("input", names[id(value)]) if id(value) in names else None
    if isinstance(value, (str, int, float, bool, type(None))):
        return ("value", value)
    return None  # a container may hold computed tensors: not a slice


def _as_inputs(args: tuple, names: Mapping[int, str]) -> tuple | None:
    entries = tuple(_as_input(a, names) for a in args)
    return None if any(e is None for e in entries) else entries


def _moved(value: Any) -> Any:
    """Another value of the same shape and dtype: floats scaled and shifted, integers rolled by a row."""
    if not isinstance(value, torch.Tensor) or value.dim() == 0:
        return value
    return value * 1.5 + 0.5 if value.is_floating_point() else value.roll(1, 0)


def _same_outputs(a: Any, b: Any) -> bool:
    """Every tensor forward returned identical in both runs."""
    left, right = output_tensors(a), output_tensors(b)
    return left.keys() == right.keys() and all(_identical(left[k], right[k]) for k in left)


def _identical(a: Any, b: Any) -> bool:
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
        return False
    return a.shape == b.shape and a.dtype == b.dtype and bool(torch.equal(a.nan_to_num(0.5), b.nan_to_num(0.5))
                                                                and torch.equal(a.isnan(), b.isnan()))
