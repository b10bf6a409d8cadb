"""A model already in memory (a training script's nn.Module) seen through the model-file contract.

`alignguard.check(spec, model=net, example_batch=..., loss_terms=...)` and the Lightning callback
check a live module: no file to import, the functions are passed in. Results point at the file
that defines the module's class, as they do for a model file.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import Any, Callable, Mapping

from alignguard.errors import ModelFileError
from alignguard.modelfile.loader import ModelFile

BatchSource = Callable[[int, int], Mapping[str, Any]] | Mapping[str, Any]


def in_memory_model_file(model: Any, example_batch: BatchSource | None,
                         loss_terms: Callable[..., Mapping[str, Any]] | None = None) -> ModelFile:
    """A ModelFile whose build_model returns `model` itself (the caller protects its state).

    `example_batch` is `(batch_size, seed) -> dict` as in a model file, or one dict used for
    every seed; `loss_terms` is `(model, batch, outputs, step) -> dict`, needed when the spec
    has `losses` or `gradients`."""
    if example_batch is None:
        raise ModelFileError(
            f"checking an in-memory {type(model).__name__} needs an example batch",
            fix="pass example_batch=a dict of forward's arguments (and targets), or a function "
            "(batch_size, seed) -> dict")
    source = _source_file(model)

    def build_model():
        return model

    def batch_from_dict(batch_size: int, seed: int) -> dict:
        return dict(example_batch)  # type: ignore[arg-type]

    def no_loss_terms(model, batch, outputs, step):
        raise ModelFileError("the spec checks losses or gradients, but no loss_terms function was given",
                             fix="pass loss_terms=(model, batch, outputs, step) -> {'name': scalar tensor}")

    batches = example_batch if callable(example_batch) else batch_from_dict
    return ModelFile(path=source, module=sys.modules.get(type(model).__module__) or sys.modules[__name__],
                     build_model=build_model, example_batch=batches,  # type: ignore[arg-type]
                     loss_terms=loss_terms or no_loss_terms)


def _source_file(model: Any) -> Path:
    """The file defining the module's class (its forward's file when the class's module is gone)."""
    try:
        return Path(inspect.getsourcefile(type(model)) or "").resolve()
    except (TypeError, OSError):
        code = getattr(getattr(type(model), "forward", None), "__code__", None)
        return Path(code.co_filename).resolve() if code else Path("<in-memory model>")
