"""Running the real model on symbols, shared by every room: one SymbolRunner per check run, the probe
rows of an example batch, and the mapping of the model's own exceptions to a ModelFileError.

Probes read and intervene on symbols with it; the structure room's noise.reparameterised and the
gradient room's symbol gradients read a symbol's real tensor with it.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    from alignguard.checks.context import CheckContext
    from alignguard.probes.runtime import SymbolRunner


def runner(context: "CheckContext") -> "SymbolRunner":
    from alignguard.probes.runtime import SymbolRunner

    spec = context.spec
    return context.memo("probes:runner", lambda: SymbolRunner(
        context.model, spec.symbols, locate=lambda name, key: spec.location(("symbols", name, key))))


def settle(context: "CheckContext") -> None:
    """The model back in the mode it had before the runner's runs (they leave it in their own mode, so
    consecutive eval runs switch nothing); called after each check, before anything else uses the model."""
    made = context.memoised("probes:runner")
    if made is not None:
        made.settle()


def probe_inputs(context: "CheckContext", index: int = 0) -> dict:
    """Forward inputs for probes: the first `probes.examples` rows of the example batch
    (probes test per-example properties; more rows only cost time). The same tensors every call
    (a fresh dict), so the runner's discovery recording of them is shared across probes."""
    from alignguard.modelfile.loader import forward_inputs

    def head() -> dict:
        inputs = forward_inputs(context.model, context.batch(index))
        rows = context.spec.probes.examples
        return {name: _head(value, rows) for name, value in inputs.items()}

    return dict(context.memo(f"probes:inputs:{index}", head))


def _head(value, rows: int):
    import torch

    return value[:rows] if isinstance(value, torch.Tensor) and value.dim() > 0 else value


def probe_seed(context: "CheckContext") -> int:
    return context.spec.entry_points.seed


@contextmanager
def user_forward(context: "CheckContext") -> Iterator[None]:
    """Turn an exception raised by the model's forward into a ModelFileError paragraph."""
    from alignguard.probes.runtime import ForwardError

    try:
        yield
    except ForwardError as exc:
        raise context.model_file.forward_error(exc.original, on="a probe's intervened example batch") from None


def eval_pair(context: "CheckContext", symbol: str) -> tuple:
    """The tensor a symbol is read from (all of it: a slice or chunk is the reader's to take) in two eval,
    no-grad runs on the probe inputs at seeds s and s+1, as ("values", (first, second)) or ("error",
    SymbolError). Memoised: noise.eval and probe.noise ask the same question (does the symbol differ
    between two eval passes?) and judge these two runs each in its own way, where each ran its own pair
    of passes (four whole forwards). The runs go through the runner, so they replay the capture an
    earlier eval run of the probe inputs made (the second one across seeds, through the calls that drew
    nothing: probes/replay.py); the model's own exceptions become its ModelFileError."""
    import torch

    from alignguard.probes.runtime import SymbolError

    def pair() -> tuple:
        binding = context.spec.symbols[symbol]
        whole = f"{symbol} (whole tensor)"
        reader = runner(context).extended({whole: binding.model_copy(update={"slice": None, "chunk": None})})
        inputs, seed = probe_inputs(context), probe_seed(context)
        try:
            with torch.no_grad(), user_forward(context):
                return "values", tuple(reader.run(inputs, train=False, seed=seed + offset, observe=[whole])[whole]
                                       for offset in (0, 1))
        except SymbolError as exc:
            return "error", exc

    return context.memo(f"probes:eval_pair:{symbol}", pair)
