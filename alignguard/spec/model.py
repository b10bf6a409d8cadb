"""The design spec: what a model must contain, as strict pydantic v2 models.

A spec names the design's *inputs*, binds design *symbols* (z_I, U_I, M, ...) to places in the
implementation, lists *components* (module paths) and the rules each check enforces. Unknown
keys are rejected; every cross-reference (a formula's symbols, a flow endpoint, a loss's
components) is resolved here so that a check never meets a dangling name.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, PrivateAttr, field_validator, model_validator

from alignguard.spec.formula import Equation, FormulaSyntaxError, parse_equation
from alignguard.strict import StrictModel

Severity = Literal["error", "warning"]
Name = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class SpecModel(StrictModel):
    # allow_inf_nan=False: `tolerance: .inf` would make a probe that can never fail
    model_config = ConfigDict(frozen=True, populate_by_name=True, allow_inf_nan=False)


class SpecReferenceError(ValueError):
    """A name in the spec that refers to nothing; `loc` is the path to the offending entry."""

    def __init__(self, loc: tuple[str | int, ...], message: str):
        super().__init__(message)
        self.loc = loc


class EntryPoints(SpecModel):
    """Names of the functions the model file defines (rename them here if yours differ)."""

    build_model: str = Field("build_model", description="Returns the torch.nn.Module to check.")
    example_batch: str = Field(
        "example_batch", description="(batch_size, seed) -> dict of forward inputs and targets."
    )
    loss_terms: str = Field(
        "loss_terms", description="(model, batch, outputs, step) -> dict of weighted loss terms."
    )
    batch_size: int = Field(32, ge=2, description="Batch size used for capture and probes.")
    seed: int = Field(0, description="Seed of the first example batch.")


class CaptureSpec(SpecModel):
    """How the forward graph is captured."""

    method: Literal["auto", "fx", "eager"] = Field(
        "auto", description="auto: torch.fx, falling back to the eager recorder when fx cannot trace."
    )
    batches: int = Field(
        1, ge=1, description="Example batches the eager recorder runs; it unions the paths they take."
    )


class InputSpec(SpecModel):
    """A forward argument and its role in the design."""

    role: Literal["invariant", "context", "other"] = Field(
        description="invariant: the same for a locus in every cell line (x); context: describes the cell (c)."
    )
    description: str = ""


class SymbolBinding(SpecModel):
    """Where a design symbol lives in the implementation: exactly one of `output` or `module`."""

    output: str | None = Field(None, description="Key of the dict (or attribute) that forward returns.")
    module: str | None = Field(None, description="Dotted module path whose output is the symbol.")
    index: int | None = Field(None, ge=0, description="Element of the module's tuple output.")
    description: str = ""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        # `z_I: z_I` is short for `z_I: {output: z_I}`.
        return {"output": value} if isinstance(value, str) else value

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> dict[str, Any]:
        # the schema says what the validator accepts, so editors do not flag the `z_I: z_I` shorthand
        return {"anyOf": [handler(core_schema), {"type": "string", "description": "Shorthand for {output: NAME}."}]}

    @model_validator(mode="after")
    def _exactly_one_place(self) -> "SymbolBinding":
        if (self.output is None) == (self.module is None):
            raise ValueError("bind a symbol to exactly one place: `output: KEY` or `module: PATH`")
        if self.index is not None and self.module is None:
            raise ValueError("`index` selects an element of a module's tuple output; add `module:`")
        return self

    def describe(self) -> str:
        if self.output is not None:
            return f"forward output '{self.output}'"
        suffix = f"[{self.index}]" if self.index is not None else ""
        return f"output of module '{self.module}'{suffix}"


class NoiseRequirement(SpecModel):
    """The component must inject noise (reparameterisation) while training."""

    symbol: str = Field(description="The symbol the noise must reach, e.g. z_I.")
    through_scale: bool = Field(
        True, description="The noise must reach the symbol through a product with a learned scale (sigma)."
    )
    eval: Literal["deterministic", "stochastic", "any"] = Field(
        "deterministic", description="Documented behaviour in eval mode."
    )


class ComponentSpec(SpecModel):
    """A design component implemented by one module."""

    module: str = Field(description="Dotted module path, e.g. `bottleneck` or `heads.modulator`.")
    called: bool = Field(True, description="The module must be called in forward.")
    reaches: list[str] = Field(default_factory=list, description="Symbols its output must reach.")
    stochastic: NoiseRequirement | None = None
    description: str = ""


class PathRule(SpecModel):
    """A path between two design elements (inputs, symbols or components)."""

    source: str = Field(alias="from")
    target: str = Field(alias="to")
    via: list[str] = Field(default_factory=list, description="Elements the path must pass, in order.")
    why: str = ""

    def endpoints(self) -> list[str]:
        return [self.source, *self.via, self.target]

    def describe(self) -> str:
        return " -> ".join(self.endpoints())


class FlowSpec(SpecModel):
    """Paths that must exist (`required`) and must not (`forbidden`) in the forward graph."""

    required: list[PathRule] = Field(default_factory=list)
    forbidden: list[PathRule] = Field(default_factory=list)


class FormulaSpec(SpecModel):
    """A design equation, e.g. `logit = (M * U_I + B) / T`."""

    equation: str
    why: str = ""

    @field_validator("equation")
    @classmethod
    def _parses(cls, text: str) -> str:
        try:
            parse_equation(text)
        except FormulaSyntaxError as exc:
            where = f" (column {exc.column})" if exc.column else ""
            raise ValueError(f"{exc}{where}") from None
        return text

    @property
    def parsed(self) -> Equation:
        return parse_equation(self.equation)


class ForbiddenPattern(SpecModel):
    """A computation the design rules out."""

    name: Name
    kind: Literal["additive_mix"] = Field(
        "additive_mix",
        description="An add/sub whose one operand derives from `left` only and the other from `right` "
        "only, on a path to `on_path_to`: the translation-symmetric head U_I - R_E.",
    )
    ops: list[Literal["add", "sub"]] = Field(default_factory=lambda: ["add", "sub"])
    left: str = "x"
    right: str = "c"
    on_path_to: str = "logit"
    why: str = ""


class LossSpec(SpecModel):
    """A loss term `loss_terms` must return, and the gradient it must carry."""

    min_share: float = Field(0.0, le=1.0, description="Minimum share g_i.g/|g|^2 of the total gradient.")
    max_share: float | None = Field(None, description="Maximum share (e.g. to stop one term dominating).")
    min_norm_ratio: float = Field(
        0.0, ge=0.0, description="Minimum |g_i|/|g|, the seed's gradient contribution |grad L_new|/|grad L_total|. "
        "Unlike the share it does not depend on the term's direction, so it bounds a small term (a KL) that is "
        "nearly orthogonal to the total and whose share is about 0."
    )
    reaches: list[str] = Field(default_factory=list, description="Components it must have gradient on.")
    step: int = Field(0, ge=0, description="Training step at which it is measured (its weight must be > 0).")
    description: str = ""

    @model_validator(mode="after")
    def _bounds_ordered(self) -> "LossSpec":
        if self.max_share is not None and self.max_share < self.min_share:
            raise ValueError(f"max_share {self.max_share} is below min_share {self.min_share}")
        return self


class GradientSpec(SpecModel):
    """How gradients are measured and the bounds on how terms interact."""

    batches: int = Field(3, ge=1, description="Example batches averaged over.")
    step: int | None = Field(None, ge=0, description="Step for conflict/cancellation (default: max loss step).")
    min_cosine: float = Field(-0.5, ge=-1.0, le=1.0, description="Pairwise cosine below this is a conflict.")
    min_net_ratio: float = Field(
        0.3, ge=0.0, le=1.0, description="|sum g_i| / sum |g_i| below this means the terms cancel."
    )
    unexpected_losses: Literal["error", "warning", "allow"] = "error"
    dead_params: bool = Field(True, description="Report trainable parameters no loss reaches.")
    descent: bool = Field(
        True, description="Check each term's autograd gradient against the slope of its value (loss.descent): "
        "a reversed gradient or a gradient-reversal layer inside a term makes training maximise it."
    )
    descent_tolerance: float = Field(
        0.1, gt=0, lt=1, description="loss.descent: the finite-difference slope of L_i along the unit gradient "
        "direction must lie within this relative distance of the gradient's norm (slope/norm +1: the term "
        "descends; -1: its gradient is reversed)."
    )
    descent_epsilon: float = Field(
        1e-3, gt=0, description="loss.descent: step length in parameter space (Euclidean, over all trainable "
        "parameters) of the central difference (L_i(θ+εĝ) - L_i(θ-εĝ)) / 2ε. The longest step tried: a term "
        "whose ratio misses is measured again at ε/10, ε/100, ε/1000 (while float rounding allows and the ratio "
        "keeps approaching 1), so a step too long for the model's curvature is not reported as a wrong gradient."
    )


class NoiseProbe(SpecModel):
    """Two train-mode passes differ at `symbol`; eval behaves as documented."""

    symbol: str
    eval: Literal["deterministic", "stochastic"] = "deterministic"


class SwapProbe(SpecModel):
    """The same x under shuffled context leaves `symbol` unchanged."""

    symbol: str
    context: str = "c"
    gradient: bool = Field(True, description="Also require d symbol / d context == 0 exactly.")
    tolerance: float = Field(1e-6, ge=0)


class ModulationProbe(SpecModel):
    """d output / d energy varies across contexts (multiplicative modulation)."""

    output: str = "logit"
    energy: str = "U_I"
    context: str = "c"
    min_relative_spread: float = Field(
        0.05, gt=0, description="Std/mean of |d output / d energy| across contexts must exceed this."
    )


class PositivityProbe(SpecModel):
    """Symbols stay strictly positive over many, including extreme, contexts."""

    symbols: list[str]
    trials: int = Field(256, ge=1)
    scale: float = Field(100.0, gt=0, description="Contexts are drawn up to this many std devs out.")
    search_steps: int = Field(
        30, ge=0, description="Adversarial search: projected sign-gradient steps on the (floating-point) context "
        "inputs minimising each symbol, within `scale` std devs of the observed mean, started from the lowest "
        "drawn contexts (0: sampling only)."
    )
    search_starts: int = Field(8, ge=1, description="Lowest-valued drawn contexts each symbol's search starts from.")


class BatchIndependenceProbe(SpecModel):
    """Each example's symbols depend on that example's inputs only (no batch statistic leaks across rows)."""

    symbols: list[str] = Field(min_length=1, description="Per-example symbols (first dimension = batch).")
    tolerance: float = Field(
        1e-5, ge=0, description="Value form: the absolute difference between a row computed in the full batch "
        "and in a subset / permutation of it must be at most tolerance * max(1, abs(value)) (float rounding "
        "differs with the batch size)."
    )
    gradient: bool = Field(
        True, description="Also require d symbol_i / d input_j == 0 exactly for every i != j (eval mode, "
        "floating-point inputs): any batch statistic, however small at initialisation, breaks it."
    )


class TranslationProbe(SpecModel):
    """Shifting `shift` and a partner by the same delta must change `output` (no translation symmetry)."""

    shift: str = Field("U_I", description="The symbol shifted by delta.")
    output: str = "logit"
    partners: list[str] | None = Field(
        None, description="Terms shifted together with it (default: every other tensor forward returns)."
    )
    delta: float = 1.0
    tolerance: float = Field(1e-4, ge=0)


class ProbesSpec(SpecModel):
    """Black-box numerical probes; each is optional."""

    examples: int = Field(16, ge=2, description="Rows of the example batch each probe forward pass uses.")
    noise: NoiseProbe | None = None
    swap_invariance: SwapProbe | None = None
    modulation: ModulationProbe | None = None
    positivity: PositivityProbe | None = None
    translation_symmetry: TranslationProbe | None = None
    batch_independence: BatchIndependenceProbe | None = None


class Waiver(SpecModel):
    check: str = Field(description="Check id (glob allowed), e.g. `params.dead`.")
    selector: str = Field("*", description="Glob over the finding's design element, e.g. `loss kl`.")
    reason: str = Field(min_length=3)
    expires: dt.date | None = None


class Spec(SpecModel):
    """A design spec. `version: 1` is the only version so far."""

    version: Literal[1] = Field(description="Spec format version; 1 is the only one so far.")
    name: str = Field(description="The design's name, shown in reports.")
    description: str = ""
    entry_points: EntryPoints = Field(default_factory=EntryPoints, description="Model-file function names.")
    capture: CaptureSpec = Field(default_factory=CaptureSpec, description="How the forward graph is captured.")
    inputs: dict[Name, InputSpec] = Field(description="forward's arguments and their roles (x, c).")
    symbols: dict[Name, SymbolBinding] = Field(
        default_factory=dict, description="Design symbols bound to places in the implementation."
    )
    components: dict[Name, ComponentSpec] = Field(
        default_factory=dict, description="Design components: module paths and what each must satisfy."
    )
    flow: FlowSpec = Field(default_factory=FlowSpec, description="Required and forbidden data-flow paths.")
    formulas: list[FormulaSpec] = Field(default_factory=list, description="Design equations over symbols.")
    forbidden_patterns: list[ForbiddenPattern] = Field(
        default_factory=list, description="Computations the design rules out (e.g. U_I - R_E)."
    )
    losses: dict[Name, LossSpec] = Field(
        default_factory=dict, description="Terms `loss_terms` must return, with gradient-share bounds."
    )
    gradients: GradientSpec = Field(default_factory=GradientSpec, description="How gradients are measured and bounded.")
    probes: ProbesSpec = Field(default_factory=ProbesSpec, description="Numerical probes that need no tracer.")
    severity: dict[str, Severity] = Field(
        default_factory=dict, description="Per check id (glob allowed): error or warning."
    )
    waivers: list[Waiver] = Field(default_factory=list, description="Accepted findings, with reason and expiry.")
    _lines: dict[tuple[str | int, ...], int] = PrivateAttr(default_factory=dict)  # set by the loader

    def line_of_element(self, element: str) -> int | None:
        """1-based line in the spec file of the entry that defines `element` (e.g. "loss kl"), or of
        its section; None for a spec not read from a file or an element of no section."""
        from alignguard.spec.positions import element_loc

        loc = element_loc(self, element)
        while loc and loc not in self._lines:
            loc = loc[:-1]
        return self._lines.get(loc) if loc else None

    @model_validator(mode="after")
    def _references_resolve(self) -> "Spec":
        for loc, message in self.reference_problems():
            raise SpecReferenceError(loc, message)
        return self

    def reference_problems(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Every name that refers to nothing, with the path to where it is used."""
        problems: list[tuple[tuple[str | int, ...], str]] = []
        clash = set(self.inputs) & set(self.symbols) | set(self.components) & (
            set(self.inputs) | set(self.symbols)
        )
        for name in sorted(clash):
            problems.append(((), f"'{name}' is defined twice (inputs, symbols and components share one namespace)"))
        elements = set(self.inputs) | set(self.symbols) | set(self.components)

        def need(names: list[str], kinds: set[str], loc: tuple, what: str) -> None:
            for name in names:
                if name not in kinds:
                    known = ", ".join(sorted(kinds)) or "none defined"
                    problems.append((loc, f"{what} '{name}' is not defined (known: {known})"))

        symbols, components, inputs = set(self.symbols), set(self.components), set(self.inputs)
        for name, comp in self.components.items():
            need(comp.reaches, symbols, ("components", name, "reaches"), "symbol")
            if comp.stochastic:
                need([comp.stochastic.symbol], symbols, ("components", name, "stochastic", "symbol"), "symbol")
        for kind in ("required", "forbidden"):
            for i, rule in enumerate(getattr(self.flow, kind)):
                need(rule.endpoints(), elements, ("flow", kind, i), "flow endpoint")
        for i, formula in enumerate(self.formulas):
            need(sorted(formula.parsed.symbols()), symbols, ("formulas", i, "equation"), "formula symbol")
        for i, pattern in enumerate(self.forbidden_patterns):
            need([pattern.left, pattern.right], inputs | symbols, ("forbidden_patterns", i), "pattern operand")
            need([pattern.on_path_to], symbols, ("forbidden_patterns", i, "on_path_to"), "symbol")
        for name, loss in self.losses.items():
            need(loss.reaches, components, ("losses", name, "reaches"), "component")
        probes = self.probes
        for field, names in (
            ("noise", [probes.noise.symbol] if probes.noise else []),
            ("swap_invariance", [probes.swap_invariance.symbol] if probes.swap_invariance else []),
            ("modulation", [probes.modulation.output, probes.modulation.energy] if probes.modulation else []),
            ("positivity", probes.positivity.symbols if probes.positivity else []),
            ("batch_independence", probes.batch_independence.symbols if probes.batch_independence else []),
            (
                "translation_symmetry",
                [probes.translation_symmetry.shift, probes.translation_symmetry.output,
                 *(probes.translation_symmetry.partners or [])]
                if probes.translation_symmetry
                else [],
            ),
        ):
            need(names, symbols, ("probes", field), "probe symbol")
        for field, probe in (("swap_invariance", probes.swap_invariance), ("modulation", probes.modulation)):
            if probe is not None:
                need([probe.context], inputs, ("probes", field, "context"), "input")
        return problems

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<dict>") -> "Spec":
        """Like `model_validate`, but a problem is one SpecError paragraph (what, where, fix)."""
        from alignguard.spec.loader import validate_spec

        return validate_spec(data, source)

    @classmethod
    def from_yaml(cls, text: str, source: str = "<yaml>") -> "Spec":
        from alignguard.spec.loader import parse_spec

        return parse_spec(text, source)

    def to_yaml(self) -> str:
        """The spec as YAML that loads back to an equal Spec (keys left at their defaults omitted)."""
        import io

        from ruamel.yaml import YAML

        yaml = YAML()
        yaml.default_flow_style = False
        yaml.sort_base_mapping_type_on_output = False  # type: ignore[attr-defined]
        data = self.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        data = {"version": self.version, **data}  # version has no default, but say it first anyway
        stream = io.StringIO()
        yaml.dump(data, stream)
        return stream.getvalue()

    def severity_of(self, check_id: str, default: Severity = "error") -> Severity:
        from fnmatch import fnmatchcase

        for pattern, level in self.severity.items():
            if fnmatchcase(check_id, pattern):
                return level
        return default

    def input_with_role(self, role: str) -> list[str]:
        return [name for name, spec in self.inputs.items() if spec.role == role]
