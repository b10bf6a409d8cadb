"""Import a model file by path; `ModelFile` is the one door through which alignguard calls user code.

A model file defines `build_model()`, `example_batch(batch_size, seed)` and
`loss_terms(model, batch, outputs, step)` (names renamable in the spec's `entry_points`).
It need not be on sys.path; its folder is put first on sys.path while it imports, so sibling
imports work. Checks, the trainer and mutation testing call the user's code only through
`ModelFile.build / batch / forward / loss_terms_at`, so a failure reads the same everywhere: one
`ModelFileError` paragraph pointing at the line of the model file that raised.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

from alignguard.errors import ModelFileError
from alignguard.spec.model import EntryPoints


@dataclass
class ModelFile:
    """A model file that imported and defines the contract's entry points."""

    path: Path
    module: ModuleType
    build_model: Callable[[], Any]
    example_batch: Callable[[int, int], dict]
    loss_terms: Callable[..., dict]

    def build(self):
        import torch

        try:
            model = self.build_model()
        except Exception as exc:  # the user's code: report where it failed
            raise ModelFileError(
                f"`{self.build_model.__name__}()` raised {type(exc).__name__}: {exc}",
                where=self.frame_of(exc),
                fix="make the function build the model without error",
            ) from None
        if not isinstance(model, torch.nn.Module):
            raise ModelFileError(
                f"`{self.build_model.__name__}()` returned {type(model).__name__}, not a torch.nn.Module",
                where=_definition(self.build_model, self.path),
                fix="return the model instance (an nn.Module subclass)",
            )
        return model

    def batch(self, model, batch_size: int, seed: int) -> dict:
        """An example batch, checked to hold every argument `forward` needs."""
        try:
            batch = self.example_batch(batch_size, seed)
        except Exception as exc:
            raise ModelFileError(
                f"`{self.example_batch.__name__}({batch_size}, {seed})` raised {type(exc).__name__}: {exc}",
                where=self.frame_of(exc),
                fix="make it return a dict of tensors for the given batch size and seed",
            ) from None
        if not isinstance(batch, dict):
            raise ModelFileError(
                f"`{self.example_batch.__name__}` returned {type(batch).__name__}, not a dict of tensors",
                where=_definition(self.example_batch, self.path),
                fix="return {'x': ..., 'c': ..., 'y': ...}: forward's arguments by name plus the targets",
            )
        missing = [name for name in forward_arguments(model) if name not in batch]
        if missing:
            raise ModelFileError(
                f"`{self.example_batch.__name__}` returned keys {sorted(batch)} but forward needs "
                f"{', '.join(repr(m) for m in missing)}",
                where=_definition(self.example_batch, self.path),
                fix="add every argument of forward to the batch dict, by its parameter name",
            )
        return batch

    def forward(self, model, batch: dict, *, on: str = "the example batch", names: list[str] | None = None) -> Any:
        """`model(**forward arguments of batch)`; the user's exception becomes a ModelFileError.
        `names`: forward's argument names when the caller knows them (the trainer, under DDP)."""
        import torch

        try:
            return model(**forward_inputs(model, batch, names))
        except torch.cuda.OutOfMemoryError:
            raise  # not a model-file problem: the caller knows the batch size
        except Exception as exc:
            raise self.forward_error(exc, batch, on) from None

    def forward_error(self, exc: BaseException, batch: dict | None = None,
                      on: str = "the example batch") -> ModelFileError:
        """The one wording of "the model's forward raised" (also for forwards run by hooks/probes)."""
        message = str(exc).splitlines()[0] if str(exc) else ""
        shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in (batch or {}).items() if hasattr(v, "shape"))
        return ModelFileError(
            f"the model's forward raised {type(exc).__name__}: {message} (on {on}"
            + (f"; batch shapes: {shapes})" if shapes else ")"),
            where=self.frame_of(exc),
            fix="make forward run on that batch in train and eval mode (its input sizes must match the "
            "batch: sequence length, context dimension)",
        )

    def loss_terms_at(self, model, batch: dict, outputs: Any, step: int) -> dict:
        """The user's weighted loss terms at `step`: a non-empty dict, or one ModelFileError."""
        name = self.loss_terms.__name__
        try:
            terms = self.loss_terms(model, batch, outputs, step)
        except Exception as exc:
            raise ModelFileError(f"`{name}(model, batch, outputs, step={step})` raised {type(exc).__name__}: {exc}",
                                 where=self.frame_of(exc),
                                 fix="make it return the weighted loss terms for any step") from None
        if not isinstance(terms, dict) or not terms:
            found = "an empty dict" if isinstance(terms, dict) else type(terms).__name__
            raise ModelFileError(f"`{name}` returned {found}, not a dict of named loss terms",
                                 where=self.loss_terms_where(),
                                 fix="return {'bce': ..., 'kl': ...}: each weighted term as a scalar tensor, "
                                 "whose sum is the training objective")
        return terms

    def loss_terms_where(self) -> str:
        """file:line where the loss_terms entry point is defined."""
        return _definition(self.loss_terms, self.path)

    def frame_of(self, exc: BaseException) -> str:
        """file:line of the innermost frame of `exc` in the model file's folder (else the innermost frame)."""
        return user_frame(exc, self.path)


def forward_arguments(model) -> list[str]:
    """Names of forward's required positional-or-keyword arguments."""
    signature = inspect.signature(model.forward)
    return [
        p.name
        for p in signature.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]


def forward_inputs(model, batch: dict, names: list[str] | None = None) -> dict:
    """The subset of a batch that forward takes, by argument name (`names`: forward's, when known)."""
    names = list(inspect.signature(model.forward).parameters) if names is None else names
    return {name: batch[name] for name in names if name in batch}


def load_model_file(path: str | Path, entry_points: EntryPoints | None = None) -> ModelFile:
    entry_points = entry_points or EntryPoints()
    path = Path(path).resolve()
    if path.is_dir():
        raise ModelFileError(f"'{path}' is a directory, not a model file",
                             fix="pass the Python file inside it that defines build_model(), example_batch() and "
                             "loss_terms()")
    if not path.is_file():
        raise ModelFileError(
            f"model file '{path}' does not exist",
            fix="pass the path to a Python file that defines build_model(), example_batch() and loss_terms()",
        )
    module = _import(path)
    names = {
        "build_model": entry_points.build_model,
        "example_batch": entry_points.example_batch,
        "loss_terms": entry_points.loss_terms,
    }
    found = {}
    for role, name in names.items():
        value = getattr(module, name, None)
        if not callable(value):
            defined = sorted(
                n for n, v in vars(module).items()
                if callable(v) and not n.startswith("_") and getattr(v, "__module__", None) == module.__name__
            )
            raise ModelFileError(
                f"the model file defines no function `{name}` (the {role} entry point)",
                where=str(path),
                fix=f"define `{name}` or set `entry_points.{role}` in the spec to one of the functions the "
                f"file does define: {', '.join(defined) or 'none'}",
            )
        found[role] = value
    return ModelFile(path=path, module=module, **found)


def _import(path: Path) -> ModuleType:
    name = f"alignguard_model_{hashlib.sha1(str(path).encode()).hexdigest()[:12]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ModelFileError(f"cannot import '{path}' as Python", fix="give the file a .py extension")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        sys.modules.pop(name, None)
        raise ModelFileError(
            f"the model file has a syntax error: {exc.msg}",
            where=f"{exc.filename or path}:{exc.lineno or 1}:{exc.offset or 1}",
            fix="correct the syntax at that line",
        ) from None
    except Exception as exc:
        sys.modules.pop(name, None)
        raise ModelFileError(
            f"importing the model file raised {type(exc).__name__}: {exc}",
            where=user_frame(exc, path),
            fix="run `python " + str(path) + "` to reproduce, and fix the error at that line"
            + (" (install the missing package)" if isinstance(exc, ImportError) else ""),
        ) from None
    finally:
        try:
            sys.path.remove(str(path.parent))
        except ValueError:
            pass
    return module


def user_frame(exc: BaseException, path: Path) -> str:
    """file:line of the innermost frame in the model file (or its folder), else the innermost frame."""
    frames = traceback.extract_tb(exc.__traceback__)
    folder = str(path.parent)
    mine = [f for f in frames if f.filename.startswith(folder)]
    frame = (mine or frames or [None])[-1]
    return f"{frame.filename}:{frame.lineno}" if frame else str(path)


def _definition(function: Callable, path: Path) -> str:
    try:
        return f"{inspect.getsourcefile(function)}:{inspect.getsourcelines(function)[1]}"
    except (OSError, TypeError):
        return str(path)
