"""Every error a user can cause, as one readable paragraph and an exit code.

The CLI catches `AlignguardError` at the edge and prints `str(error)`; nothing below it
prints tracebacks for bad input. Each error says what went wrong, where, and how to fix it.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FINDINGS = 1  # the model is misaligned (or a gate refused to train)
    USAGE = 2  # bad spec, model file, data, arguments: the tool could not judge
    NONFINITE_LOSS = 3  # training stopped on NaN/inf; the last good checkpoint is intact
    CHECKPOINT = 4  # a checkpoint is corrupt or does not match the model/config
    INTERRUPTED = 130  # Ctrl-C; a checkpoint was written first


class AlignguardError(Exception):
    """An error caused by input the user controls."""

    exit_code: ExitCode = ExitCode.USAGE
    kind: str = "error"

    def __init__(self, what: str, *, where: str | None = None, fix: str | None = None):
        self.what = what.rstrip(".")
        self.where = where
        self.fix = fix
        super().__init__(self.paragraph())

    def __reduce__(self):
        # keyword-only `where`/`fix` and subclass attributes survive the trip from a worker process
        return (_rebuild, (type(self), dict(self.__dict__)))

    def paragraph(self) -> str:
        return paragraph(self.kind, self.what, self.where, self.fix)


class UsageError(AlignguardError):
    kind = "usage error"


class SpecError(AlignguardError):
    kind = "spec error"


class ModelFileError(AlignguardError):
    kind = "model file error"


class CaptureError(AlignguardError):
    kind = "capture error"


class DataError(AlignguardError):
    kind = "data error"


class TrainingError(AlignguardError):
    kind = "training error"


class NonFiniteLossError(TrainingError):
    kind = "non-finite loss"
    exit_code = ExitCode.NONFINITE_LOSS


class CheckpointError(AlignguardError):
    kind = "checkpoint error"
    exit_code = ExitCode.CHECKPOINT


def paragraph(kind: str, what: str, where: object = None, fix: str | None = None) -> str:
    """One error paragraph: what went wrong, where, and how to fix it."""
    text = f"{kind}: {what}."
    if where:
        text += f" Where: {where}."
    if fix:
        text += f" Fix: {fix.rstrip('.')}."
    return text


def _rebuild(cls: type[AlignguardError], state: dict) -> AlignguardError:
    error = cls.__new__(cls)
    error.__dict__.update(state)
    Exception.__init__(error, error.paragraph())
    return error
