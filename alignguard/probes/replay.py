"""Reuse the part of forward an intervention does not touch, across read-only eval runs.

translation_symmetry and identifiability run forward twenty-odd times on the same inputs, each
time editing a symbol near the head (U_I + δ, R_E − δ): every run recomputed the whole encoder
for an output that cannot change. So the first eval, no-grad run on some inputs *captures* the
outermost submodule calls that take forward inputs only (`encoder(x)`, `modulator(c)`): their
outputs, the torch calls they made and the random state around them. A later run on the very
same input tensors, seed, parameters and buffers then returns the captured output in place of
such a call, unless the run edits or observes something inside it, the random state on entry
differs, or the output was changed in place since.

Forward may keep state between calls (an attribute a module sets and a later one reads): the
capture is dropped by any other forward of the model (a hook on the root module sees it), so a
replayed call's state is always the one its own inputs set. And a capture is used only after a
replayed run reproduced the captured run's outputs bit for bit; otherwise every run is whole. That
confirmation waits for the second run on the same inputs: most inputs a probe makes (batch
independence's halves, swap's shuffled contexts) run once, and confirming their capture straight
away ran the model twice for nothing (DeepSEA's first convolution is its only input-only call, so
each confirmation was a whole forward).

A capture also serves a run whose inputs differ only in inputs a captured call does not take
(modulation's sixteen contexts and swap's shuffled ones keep x, so `encoder(x)` need not rerun):
same tensor objects for the call's own arguments, same seed, parameters and buffers, input names
and shapes; the calls that take a changed input run. That is sound only if no state flows from
the other inputs into the call (a FiLM-like forward may set an attribute from c that the encoder
reads), so the first such run is confirmed by the runner: the whole model run for real and with the
calls replayed, on those inputs (changed in value, not only in identity), must agree bit for bit;
otherwise no capture is ever replayed across differing inputs for this model (`cross_refused`).

A capture also serves a run at another seed on the same inputs, parameters and buffers (the noise
checks' eval pair at seeds s and s+1), but only through the calls that drew no randomness: torch's CPU
generator, CUDA's generators when CUDA is initialised, numpy's and Python's global streams all as they
were on entry (`Call.drew`). Such a call is replayed without restoring the captured random state (the
run's own stream continues); a call that drew (the bottleneck's sample in train, dropout, a stochastic
eval) runs. The first such run is confirmed like a crossing of inputs (the replayed run first, then the
real one, on the new seed, bit for bit); one disagreement and no capture of this model is ever replayed
across seeds again (`seeds_refused`). A call that drew from numpy's or Python's stream, which the runner
does not seed, is never replayed at all: its captured draw would stand in for a fresh one.
"""

from __future__ import annotations

from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

import torch


@dataclass
class Call:
    """One captured submodule call: the `number`-th call of `path`."""

    path: str
    number: int
    output: Any
    versions: tuple  # each output tensor's version counter at capture (changed: edited in place)
    rng_before: torch.Tensor
    rng_after: torch.Tensor
    first_op: int  # forward's torch-call counter on entry; the call made ops first_op+1 .. first_op+ops
    ops: int
    reads: frozenset = frozenset()  # the forward inputs passed to the call (by name)
    drew: bool = True  # some random stream moved during the call (see `_streams`): never crosses seeds
    foreign: bool = False  # numpy's or Python's stream moved (the runner seeds neither): never replayed

    def holds(self, path: str | None = None, op: int | None = None) -> bool:
        """Whether a module at `path` or torch call number `op` runs inside this call."""
        if path is not None and (path == self.path or path.startswith(self.path + ".")):
            return True
        return op is not None and self.first_op < op <= self.first_op + self.ops

    def intact(self) -> bool:
        return _versions(self.output) == self.versions


class Replays:
    """The captured calls of one (inputs, seed, parameters) key; see the module docstring."""

    def __init__(self, model: torch.nn.Module):
        self.model = model
        self.key: tuple | None = None
        # The keyed inputs themselves: the key names them by id(), and CPython reuses a freed object's id
        # (a half batch made after the full one was freed got its id and was answered with the full
        # batch's encoder output). Held here, no other tensor can take those ids while the key lives.
        self.pinned: dict[str, Any] = {}
        self.calls: list[Call] = []
        self.valid = False
        self.pending: tuple | None = None  # what the captured run observed, until a replayed run confirms it
        self.crossed = False  # confirmed for runs whose inputs differ only in inputs the calls do not take
        self.cross_refused = False  # such a confirmation failed once: never again for this model
        self.crossing: str | None = None  # "real" / "replay" while the runner confirms a crossing
        self.seeds_crossed = False  # confirmed for runs at another seed (through the calls that drew nothing)
        self.seeds_refused = False  # such a confirmation failed once: never again for this model
        self.seeding: str | None = None  # "real" / "replay" while the runner confirms a seed crossing
        self._own = False  # a forward of ours is running: the root hook lets it through
        self._hook = None

    def key_of(self, inputs: Mapping[str, Any], seed: int) -> tuple:
        state = state_versions(self.model)
        shapes = tuple((k, id(v), tuple(getattr(v, "shape", ()))) for k, v in inputs.items())
        return (seed, shapes, state)

    def ready(self, key: tuple) -> bool:
        return self.valid and self.key == key and all(call.intact() for call in self.calls)

    def changed(self, key: tuple, inputs: Mapping[str, Any]) -> frozenset | None:
        """The tensor inputs a run on `key` changes from the capture's when that is all it changes (same
        seed, parameters and buffers, input names and shapes, non-tensor inputs) and some captured call
        takes none of them; None otherwise."""
        if self.key is None or self.cross_refused or key[0] != self.key[0] or key[2] != self.key[2]:
            return None
        mine, theirs = self.key[1], key[1]
        if [(k, s) for k, _, s in mine] != [(k, s) for k, _, s in theirs]:
            return None
        names = frozenset(k for (k, a, _), (_, b, _) in zip(mine, theirs) if a != b)
        if not names or not all(isinstance(inputs[k], torch.Tensor) and isinstance(self.pinned.get(k), torch.Tensor)
                                for k in names):
            return None
        return names if any(not call.reads & names for call in self.calls) else None

    def differs(self, inputs: Mapping[str, Any], names: frozenset) -> bool:
        """Whether some of the inputs `names` differs in value from the captured run's (a confirmation on
        equal values would not show state flowing from them)."""
        return any(not torch.equal(inputs[k], self.pinned[k]) for k in names)

    def ready_across(self, key: tuple, inputs: Mapping[str, Any]) -> frozenset | None:
        """The changed inputs when a run on `key` may replay the calls that take none of them."""
        names = self.changed(key, inputs)
        if names is None or not (self.valid and self.crossed) or not all(call.intact() for call in self.calls):
            return None
        return names

    def other_seed(self, key: tuple) -> bool:
        """Whether a run on `key` differs from the capture's in its seed only and some captured call drew
        nothing (so it may be replayed there, once confirmed)."""
        return (self.key is not None and not self.seeds_refused and key[0] != self.key[0]
                and key[1:] == self.key[1:] and any(not call.drew for call in self.calls))

    def ready_seed(self, key: tuple) -> bool:
        """Whether a run on `key` may replay the calls that drew nothing (confirmed at another seed)."""
        return self.seeds_crossed and self.other_seed(key) and all(call.intact() for call in self.calls)

    def hold(self, key: tuple, inputs: Mapping[str, Any], observed: tuple) -> None:
        """Keep the calls just captured for `key`, unconfirmed: `observed` is what the captured run saw."""
        self.key, self.valid, self.pinned, self.pending = key, False, dict(inputs), observed
        self.crossed = self.seeds_crossed = False
        self.watch()

    def drop(self) -> None:
        self.key, self.calls, self.valid, self.pinned, self.pending = None, [], False, {}, None
        self.crossed = self.seeds_crossed = False
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    @contextmanager
    def own(self) -> Iterator[None]:
        was, self._own = self._own, True
        try:
            yield
        finally:
            self._own = was

    def watch(self) -> None:
        """Drop the capture when the model runs outside our runs (its state may change there)."""
        if self._hook is None:
            self._hook = self.model.register_forward_pre_hook(lambda *_: None if self._own else self.drop())

    # ---- capturing ----------------------------------------------------------------------
    def capture(self, inputs: Mapping[str, Any], counter, forward: Callable[[], Any]) -> Any:
        """Run `forward` (under `counter`, a torch-call counting mode), capturing the outermost
        submodule calls whose arguments are forward inputs or constants; returns forward's result."""
        from alignguard.probes.runtime import _as_input, _as_inputs

        names = {id(v): k for k, v in inputs.items() if isinstance(v, torch.Tensor)}
        counts: dict[str, int] = {}
        opened: list[tuple] = []  # (module, path, number, first op, rng before) of the open outermost call
        calls: list[Call] = []

        def pre(path: str):
            def hook(module, args, kwargs):
                with counter.pause():  # our own tensor reads must not shift forward's call numbering
                    number = counts[path] = counts.get(path, -1) + 1
                    entries = _as_inputs(args, names)
                    keywords = [_as_input(v, names) for v in kwargs.values()]
                    if opened or entries is None or any(e is None for e in keywords):
                        return
                    reads = frozenset(v for kind, v in (*entries, *keywords) if kind == "input")
                    opened.append((module, path, number, counter.count, torch.get_rng_state(), _streams(), reads))
            return hook

        def post(module, args, kwargs, output):
            with counter.pause():
                if opened and opened[-1][0] is module:
                    _, path, number, first, rng, streams, reads = opened.pop()
                    if _capturable(output):
                        after, now = torch.get_rng_state(), _streams()
                        foreign = now[1:] != streams[1:]
                        drew = foreign or now[0] != streams[0] or not torch.equal(rng, after)
                        calls.append(Call(path, number, output, _versions(output), rng, after,
                                          first, counter.count - first, reads, drew, foreign))

        with ExitStack() as stack:
            for path, module in self.model.named_modules():
                if path:
                    stack.callback(module.register_forward_pre_hook(pre(path), with_kwargs=True).remove)
                    stack.callback(module.register_forward_hook(post, with_kwargs=True).remove)
            result = forward()
        self.calls = calls
        return result

    # ---- replaying ----------------------------------------------------------------------
    @contextmanager
    def replaying(self, counter, skip: Callable[[Call], bool], any_seed: bool = False) -> Iterator[None]:
        """Captured calls not `skip`ped return their output instead of running (advancing `counter`,
        when there is one, by the torch calls they made and the random state past them). `any_seed`: a run
        at another seed (confirmed): only the calls that drew nothing, the run's own random state kept."""
        chosen = [call for call in self.calls if not skip(call) and not call.foreign and not (any_seed and call.drew)]
        by_path: dict[str, dict[int, Call]] = {}
        for call in chosen:
            by_path.setdefault(call.path, {})[call.number] = call
        with ExitStack() as stack:
            for path, numbers in by_path.items():
                module = self.model.get_submodule(path)
                stack.enter_context(_patched(module, numbers, counter, any_seed))
            yield


def state_versions(model: torch.nn.Module) -> tuple:
    """Every parameter's and buffer's version counter (and identity: one replaced through setattr is
    another tensor), by a walk of `_modules`: `parameters()` builds every module's name and dedups by
    hash, 2 ms on a ResNet-50, and runs twice per probe run (0.27 s of its check)."""
    state, stack = [], [model]
    while stack:
        module = stack.pop()
        for tensors in (module._parameters, module._buffers):
            for t in tensors.values():
                if t is not None:
                    state.append((id(t), t._version))
        stack.extend(child for child in module._modules.values() if child is not None)
    return tuple(state)


@contextmanager
def _patched(module: torch.nn.Module, numbers: Mapping[int, Call], counter, any_seed: bool = False) -> Iterator[None]:
    original = module.forward
    had_own = "forward" in vars(module)
    seen = [-1]

    def forward(*args, **kwargs):
        seen[0] += 1
        call = numbers.get(seen[0])
        with counter.pause() if counter is not None else _nothing():
            usable = call is not None and call.intact() and (
                any_seed or torch.equal(torch.get_rng_state(), call.rng_before))
        if not usable:
            return original(*args, **kwargs)
        if counter is not None:
            counter.count += call.ops
        if not any_seed:  # across seeds only calls that drew nothing replay: the run's own stream goes on
            torch.set_rng_state(call.rng_after)
        return call.output

    module.forward = forward
    try:
        yield
    finally:
        if had_own:
            module.forward = original
        else:
            del module.forward


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def _streams() -> tuple:
    """The states of the random streams a call may draw from besides torch's CPU generator (compared
    through `rng_before`/`rng_after`): CUDA's generators when CUDA is initialised (reading them otherwise
    would initialise it), then numpy's and Python's global streams (which the runner does not seed)."""
    import random

    cuda = tuple(bytes(s.numpy()) for s in torch.cuda.get_rng_state_all()) if torch.cuda.is_initialized() else ()
    return (cuda, _numpy_state(), random.getstate())


def _numpy_state() -> tuple:
    try:
        import numpy
    except ImportError:  # pragma: no cover - numpy comes with torch's usual installs
        return ()
    kind, keys, *rest = numpy.random.get_state()
    return (kind, keys.tobytes(), *rest)


def _capturable(output: Any) -> bool:
    """A tensor, or a tuple/list of tensors and constants, that holds no autograd graph."""
    items = output if isinstance(output, (tuple, list)) else (output,)
    return any(isinstance(i, torch.Tensor) for i in items) and all(
        (isinstance(i, torch.Tensor) and not i.requires_grad) or isinstance(i, (int, float, bool, str, type(None)))
        for i in items)


def _versions(output: Any) -> tuple:
    items = output if isinstance(output, (tuple, list)) else (output,)
    return tuple(i._version if isinstance(i, torch.Tensor) else None for i in items)
