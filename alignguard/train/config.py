"""The trainer's configuration: one pydantic model, overridable from a YAML file and the CLI.

Precedence (later wins): defaults (curriculum from the model file's ``CURRICULUM`` when it has
one) < ``--config cfg.yaml`` < ``--set dotted.key=value`` and the named CLI options.
The defaults are sized so that ``alignguard train specs/cmdn.yaml models/cmdn.py`` finishes on
two CPU cores in a few minutes; every field says what it does in ``description=``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, ValidationError, model_validator

from alignguard.errors import UsageError
from alignguard.strict import StrictModel


class _Strict(StrictModel):
    # overrides are assigned after loading; numbers must be finite (an infinite learning rate is no setting)
    model_config = ConfigDict(validate_assignment=True, allow_inf_nan=False)


class StageConfig(_Strict):
    """One curriculum stage: which parameters train, and for how many epochs."""

    name: str = Field(min_length=1)
    train: list[str] = Field(
        description="Module path prefixes whose parameters train in this stage ('' = every parameter)."
    )
    epochs: int | None = Field(None, ge=1, description="Epochs of this stage (exclusive with fraction).")
    fraction: float | None = Field(None, gt=0, le=1, description="Share of `epochs` given to this stage.")

    @model_validator(mode="after")
    def _one_length(self) -> "StageConfig":
        if self.epochs is not None and self.fraction is not None:
            raise ValueError(f"stage '{self.name}' sets both epochs and fraction; keep one")
        return self


class OptimConfig(_Strict):
    lr: float = Field(2e-3, gt=0, description="Peak learning rate of AdamW.")
    weight_decay: float = Field(1e-4, ge=0, description="AdamW's decoupled weight decay.")
    betas: tuple[Annotated[float, Field(ge=0, lt=1)], Annotated[float, Field(ge=0, lt=1)]] = Field(
        (0.9, 0.999), description="AdamW's moment decay rates, each in [0, 1).")
    grad_clip: float | None = Field(5.0, gt=0, description="Clip the global gradient norm (None: off).")
    schedule: Literal["cosine", "constant"] = Field(
        "cosine", description="Learning-rate schedule after warm-up, over the whole run."
    )
    warmup_steps: int = Field(50, ge=0, description="Linear learning-rate warm-up steps.")


class BetaScheduleConfig(_Strict):
    """Overrides the model file's ``BETA_SCHEDULE`` (β of the KL term, read by loss_terms via `step`)."""

    start_step: int = Field(ge=0, description="β is 0 up to this step (the curriculum starts at 0).")
    end_step: int = Field(ge=1, description="β reaches beta_max here.")
    beta_max: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> "BetaScheduleConfig":
        if self.end_step <= self.start_step:
            raise ValueError("end_step must be after start_step")
        return self


class EarlyStoppingConfig(_Strict):
    metric: Literal["aupr_pooled", "aupr_cell_mean"] = Field(
        "aupr_pooled", description="Validation AUPR that selects the best checkpoint and stops training."
    )
    patience: int = Field(3, ge=1, description="Epochs without improvement before the stage (or run) ends.")
    min_delta: float = Field(1e-4, ge=0, description="Smallest improvement that counts.")


class MonitorConfig(_Strict):
    every_steps: int = Field(50, ge=1, description="Log losses and per-term gradients every N steps.")
    gradients: bool = Field(True, description="Per-term gradient norms, shares, cosines and alarms.")
    vanish_ratio: float = Field(
        1e-3, gt=0, lt=1, description="A gradient below this fraction of its own peak norm has vanished."
    )
    min_cosine: float | None = Field(
        None, ge=-1, le=1, description="Conflict bound for pairs the spec does not bound itself (default: the "
        "spec's min_cosine; the spec's gradients.pairs keep their own bounds).")
    min_net_ratio: float | None = Field(
        None, ge=0, le=1, description="|sum g_i| / sum |g_i| below this means terms cancel (default: the spec's)."
    )
    plateau_ratio: float = Field(
        1e-3, ge=0, description="Epoch-over-epoch relative training-loss decrease below this raises an alarm."
    )
    probes: bool = Field(True, description="I(z_I; c), corr(M, U_I), T(c) per cell line, on validation.")
    probe_examples: int = Field(4000, ge=40, description="Validation examples the probes use at most.")
    leak_nats: float = Field(0.05, ge=0, description="I(z_I; c) above this (nats) raises an alarm.")
    tensorboard: bool = Field(True, description="Also write TensorBoard events when it is installed.")
    live: Literal["auto", "on", "off"] = Field("auto", description="Rich live display (auto: only on a TTY, not in CI).")


class DataConfig(_Strict):
    path: Path | None = Field(None, description="Dataset directory; None: the built-in synthetic benchmark.")
    synth: dict[str, Any] = Field(
        default_factory=dict, description="Overrides of the synthetic benchmark's SynthConfig (no --data)."
    )
    cache_dir: Path | None = Field(
        None, description="Where generated benchmarks are cached (default $ALIGNGUARD_CACHE/data, else "
        ".alignguard-cache/data under the working directory)."
    )
    num_workers: int | Literal["auto"] = Field("auto", description="DataLoader workers (auto: 0 on CPU, 4 on CUDA).")
    train_examples_per_epoch: int | None = Field(
        None, ge=1, description="Draw this many training examples per epoch (None: the whole split)."
    )
    eval_examples: int | None = Field(
        None, ge=1, description="Validate on a fixed subset of this many examples (None: the whole split)."
    )


class TrainConfig(_Strict):
    epochs: int = Field(6, ge=1, description="Epoch budget, shared by the curriculum stages.")
    batch_size: int = Field(256, ge=2, description="Training examples per step (per process under DDP).")
    eval_batch_size: int = Field(1024, ge=1, description="Examples per forward pass when validating.")
    seed: int = Field(0, ge=0, description="Seeds initialisation, noise and the data order (rank r adds r).")
    deterministic: bool = Field(True, description="Seeded, deterministic kernels where PyTorch has them.")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto: CUDA (cuda:LOCAL_RANK) when present, else CPU.")
    amp: Literal["auto", "off", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 on CUDA when supported, else fp16 with a GradScaler; off on CPU."
    )
    threads: int | None = Field(None, ge=1, description="torch.set_num_threads (None: PyTorch's default).")
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimiser steps (smoke runs).")
    checkpoint_every_steps: int | None = Field(
        None, ge=1, description="Also write last.pt every N steps (it is always written after each epoch)."
    )
    optim: OptimConfig = Field(default_factory=OptimConfig)
    curriculum: list[StageConfig] | None = Field(
        None, description="Stages in order (None: the model file's CURRICULUM, else one stage training all)."
    )
    beta: BetaScheduleConfig | None = Field(None, description="Override the model file's BETA_SCHEDULE.")
    early_stopping: EarlyStoppingConfig = Field(default_factory=EarlyStoppingConfig)
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)
    data: DataConfig = Field(default_factory=DataConfig)

    @model_validator(mode="after")
    def _stages_named_once(self) -> "TrainConfig":
        if self.curriculum is not None:
            if not self.curriculum:
                raise ValueError("curriculum is empty; give at least one stage or leave it unset")
            names = [stage.name for stage in self.curriculum]
            if len(set(names)) != len(names):
                raise ValueError(f"curriculum stage names repeat: {names}")
        return self


# Settings that may change when a run is resumed (everything else must match the checkpoint).
RESUMABLE_CHANGES = ("epochs", "device", "amp", "threads", "max_steps", "checkpoint_every_steps",
                     "early_stopping.patience", "monitor.live", "monitor.tensorboard",
                     "data.num_workers", "data.cache_dir", "data.path")


def curriculum_from_model_file(curriculum: Any, source: str) -> list[StageConfig]:
    """The model file's ``CURRICULUM = {stage: {"train": [...], "fraction"|"epochs": ...}}`` as stages."""
    if not isinstance(curriculum, dict) or not curriculum:
        raise UsageError(
            "the model file's CURRICULUM is not a non-empty dict of stage -> settings",
            where=source,
            fix="write CURRICULUM = {'invariant': {'train': ['encoder'], 'fraction': 0.5}, ...}",
        )
    stages = []
    for name, settings in curriculum.items():
        if isinstance(settings, (list, tuple)):  # the short form: stage -> prefixes
            settings = {"train": list(settings)}
        try:
            stages.append(StageConfig(name=str(name), **dict(settings)))
        except (TypeError, ValidationError) as error:
            raise UsageError(
                f"CURRICULUM stage '{name}' is invalid: {_first_error(error)}",
                where=source,
                fix="each stage needs 'train' (module path prefixes) and optionally 'epochs' or 'fraction'",
            ) from None
    return stages


def build_config(
    file: Path | None = None,
    overrides: dict[str, Any] | None = None,
    model_curriculum: list[StageConfig] | None = None,
) -> TrainConfig:
    """Defaults < YAML file < dotted overrides; the curriculum defaults to the model file's."""
    data: dict[str, Any] = {}
    if model_curriculum is not None:
        data["curriculum"] = [stage.model_dump() for stage in model_curriculum]
    if file is not None:
        loaded = read_yaml_mapping(file)
        data.update(loaded)
    for key, value in (overrides or {}).items():
        set_dotted(data, key, value)
    return validate_config(data, source=str(file) if file else "command line")


def validate_config(data: dict[str, Any], source: str) -> TrainConfig:
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as error:
        raise UsageError(
            f"the training configuration is invalid: {_first_error(error)}",
            where=source,
            fix="correct the value (the fields and their meaning are listed in docs/training.md)",
        ) from None


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    from alignguard.spec.bounded import check_flow_depth, check_size, read_text_file

    if not Path(path).is_file():
        raise UsageError(f"config file '{path}' {'is a directory' if Path(path).is_dir() else 'does not exist'}",
                         fix="pass the path to a YAML training config")
    text = read_text_file(Path(path), "config", UsageError)
    check_flow_depth(text, str(path), UsageError)
    try:
        loaded = YAML(typ="safe").load(text)
    except YAMLError as error:
        raise UsageError(f"the config is not valid YAML: {error}", where=str(path), fix="fix the YAML syntax") from None
    except (ValueError, OverflowError) as error:  # a date or number YAML can spell but Python cannot hold
        raise UsageError(f"the config holds a value that cannot be read: {error}", where=str(path),
                         fix="correct the value, or quote it to make it a string") from None
    except RecursionError:
        raise UsageError("the config nests deeper than the parser can follow", where=str(path),
                         fix="a config nests two or three levels; look for runaway [ or { brackets") from None
    check_size(loaded, str(path), UsageError)
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise UsageError(
            f"the config must be a YAML mapping, not a {type(loaded).__name__}",
            where=str(path),
            fix="write keys such as `epochs: 6` and `optim: {lr: 0.002}`",
        )
    return loaded


def parse_assignment(text: str) -> tuple[str, Any]:
    """``--set optim.lr=1e-3`` -> ("optim.lr", 0.001); the value is read as YAML (numbers, lists, null)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"--set expects KEY=VALUE, got '{text}'", fix="write e.g. --set optim.lr=0.001")
    try:
        value = YAML(typ="safe").load(raw) if raw.strip() else None
    except YAMLError:
        value = raw
    return key.strip(), value


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def config_differences(old: TrainConfig, new: TrainConfig) -> list[str]:
    """Dotted keys whose values differ (leaves only)."""
    return sorted(_diff(old.model_dump(mode="json"), new.model_dump(mode="json"), ""))


def _diff(a: Any, b: Any, prefix: str) -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        keys = set(a) | set(b)
        return [d for k in keys for d in _diff(a.get(k), b.get(k), f"{prefix}{k}.")]
    return [] if a == b else [prefix.rstrip(".")]


def _first_error(error: Exception) -> str:
    if isinstance(error, ValidationError):
        first = error.errors(include_url=False)[0]
        location = ".".join(str(part) for part in first["loc"]) or "(top level)"
        return f"{location}: {first['msg']}"
    return str(error)
