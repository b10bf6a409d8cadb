"""The design spec: what a model must contain, as strict pydantic v2 models.

A spec names the design's *inputs*, binds design *symbols* (z_I, U_I, M, ...) to places in the
implementation, lists *components* (module paths) and the rules each check enforces. Unknown
keys are rejected; every cross-reference (a formula's symbols, a flow endpoint, a loss's
components) is resolved here so that a check never meets a dangling name.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from alignguard.spec.formula import Equation, FormulaSyntaxError, parse_equation
from alignguard.spec.rules import (DependenceRule, PairBound, RangeRule, StraightThrough, SymbolNoise,
                                   WeightConstraint)
from alignguard.spec.base import SpecModel

Severity = Literal["error", "warning"]
Name = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class SpecReferenceError(ValueError):
    """A name in the spec that refers to nothing; `loc` is the path to the offending entry."""

    def __init__(self, loc: tuple[str | int, ...], message: str):
        super().__init__(message)
        self.loc = loc


class EntryPoints(SpecModel):
    """Names of the functions the model file defines (rename them here if yours differ)."""

    build_model: str = Field("build_model", description="Returns the torch.nn.Module to check.")
    example_batch: str = Field(
        "example_batch", description="(batch_size, seed) -> dict of forward inputs and targets; "
        "(batch_size, seed, step) when a forward argument follows a training schedule (DANN's alpha(p))."
    )
    loss_terms: str = Field(
        "loss_terms", description="(model, batch, outputs, step) -> dict of weighted loss terms."
    )
    batch_size: int = Field(32, ge=2, description="Rows of each example batch: capture, gradients and probes. "
                            "`alignguard init` writes a smaller one for a model whose forward of 32 rows "
                            "would cost over 2 GFLOP (docs/ci.md, init).")
    seed: int = Field(0, description="Seed of the first example batch.")
    step: int = Field(
        0, ge=0, description="Training step graph capture and probes draw their batches at, when "
        "`example_batch(batch_size, seed, step)` takes one (gradients use each loss's own step)."
    )


class CaptureSpec(SpecModel):
    """How the forward graph is captured."""

    method: Literal["auto", "fx", "eager"] = Field(
        "auto", description="auto: torch.fx, falling back to the eager recorder when fx cannot trace."
    )
    batches: int = Field(
        1, ge=1, description="Example batches the eager recorder runs; it unions the paths they take."
    )


class InputSpec(SpecModel):
    """A forward argument and its role in the design.

    `parts` names slices of the input, e.g. `c: {role: context, parts: {descriptor: "[:, :-1]",
    accessibility: "[:, -1]"}}`. Each part is then a design element like the input itself: a flow
    endpoint (`{from: accessibility, to: M}` in `flow.forbidden`), a pattern operand, a dependency
    the identifiability check reports, and an input a symbol must not depend on
    (`probes.dependence: [{symbol: M, input: accessibility, rule: none}]`, measured on the real model). A graph node reads a part when it reads the input through
    layout-keeping casts and is not a selection (`c[:, :8]`, `narrow`, `select`) disjoint from the
    part; a layer that reads the input whole reads every part. Slices use basic indexing only
    (integers, `:` slices with negative bounds allowed, one `...`), judged against the example
    batch's shape.
    """

    role: Literal["invariant", "context", "other"] = Field(
        description="invariant: the same for a locus in every cell line (x); context: describes the cell (c)."
    )
    description: str = ""
    parts: dict[Name, str] = Field(
        default_factory=dict,
        description="Named parts of the input, each a slice in Python indexing, e.g. "
        "`{descriptor: \"[:, :-1]\", accessibility: \"[:, -1]\"}`. A part is a design element like the input "
        "itself (a flow endpoint, a dependency the identifiability check reports); a node of the graph reads it "
        "unless it reads the input only through slices disjoint from it.",
    )

    @field_validator("parts")
    @classmethod
    def _slices_parse(cls, parts: dict[str, str]) -> dict[str, str]:
        from alignguard.spec.selection import SelectionSyntaxError, parse_selection

        for name, text in parts.items():
            try:
                parse_selection(text)
            except SelectionSyntaxError as exc:
                raise ValueError(f"part '{name}': {exc}") from None
        return parts

    def selection(self, part: str):
        from alignguard.spec.selection import parse_selection

        return parse_selection(self.parts[part])


class SymbolBinding(SpecModel):
    """Where a design symbol lives in the implementation: exactly one of `output` or `module`, and
    optionally a part of that tensor: `slice` (Python indexing, the language of input `parts`) or its
    sugar `chunk: [i, n]`. Every check reads, differentiates and intervenes on that part only."""

    output: str | None = Field(None, description="Key of the dict (or attribute) that forward returns.")
    module: str | None = Field(None, description="Dotted module path whose output is the symbol.")
    index: int | None = Field(None, ge=0, description="Element of the module's tuple output.")
    chunk: tuple[int, int] | None = Field(
        None, description="[i, n]: the i-th of n chunks along the last dimension, as "
        "`tensor.chunk(n, dim=-1)[i]` (e.g. gamma, beta = film(c).chunk(2)): gamma is `chunk: [0, 2]`. "
        "Sugar for the `slice` it stands for on the tensor's real shape."
    )
    slice: str | None = Field(
        None, description="A slice of the bound tensor in Python indexing, the language of input `parts` "
        "(integers, `:` slices, one `...`), e.g. `\"[:, :8]\"` for mu and `\"[:, 8:]\"` for sigma of one "
        "Linear's output. The symbol is those elements only: probes that shift, scale or replace it change "
        "them and leave the rest of the tensor as computed."
    )
    stochastic: SymbolNoise | None = Field(
        None, description="The symbol is a reparameterised sample while training, wherever it is drawn."
    )
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

    @field_validator("slice")
    @classmethod
    def _slice_parses(cls, text: str | None) -> str | None:
        from alignguard.spec.selection import SelectionSyntaxError, parse_selection

        if text is not None:
            try:
                parse_selection(text, of="tensor")
            except SelectionSyntaxError as exc:
                raise ValueError(str(exc)) from None
        return text

    @model_validator(mode="after")
    def _exactly_one_place(self) -> "SymbolBinding":
        if (self.output is None) == (self.module is None):
            raise ValueError("bind a symbol to exactly one place: `output: KEY` or `module: PATH`")
        if self.index is not None and self.module is None:
            raise ValueError("`index` selects an element of a module's tuple output; add `module:`")
        if self.chunk is not None and not 0 <= self.chunk[0] < self.chunk[1]:
            raise ValueError("`chunk: [i, n]` needs 0 <= i < n")
        if self.chunk is not None and self.slice is not None:
            raise ValueError("give `slice` or `chunk`, not both (`chunk: [i, n]` is a slice of the last dimension)")
        return self

    def describe(self) -> str:
        if self.output is not None:
            return f"forward output '{self.output}'{self.chunk_text()}"
        suffix = f"[{self.index}]" if self.index is not None else ""
        return f"output of module '{self.module}'{suffix}{self.chunk_text()}"

    def chunk_text(self) -> str:
        if self.slice is not None:
            return f", slice {self.slice.strip()}"
        return f", chunk {self.chunk[0]} of {self.chunk[1]}" if self.chunk else ""

    @property
    def part_key(self) -> str | None:
        """The key that makes the symbol a part of its tensor (`slice` or `chunk`), None for all of it."""
        return "slice" if self.slice is not None else ("chunk" if self.chunk is not None else None)

    def selection(self, shape) -> "tuple | None":
        """The elements the symbol takes of a tensor of `shape`, as a selection (spec/selection.py);
        None when it is the whole tensor. Raises SliceFitError when they do not fit the shape."""
        from alignguard.spec.selection import fit_problem, parse_selection, split_selection

        shape = tuple(shape)
        if self.slice is not None:
            selection = parse_selection(self.slice, of="tensor")
            problem = fit_problem(selection, shape)
            if problem:
                raise SliceFitError(f"`slice: \"{self.slice.strip()}\"` does not fit the {self.describe_place()}: "
                                    f"{problem}")
            return selection
        if self.chunk is not None:
            index, count = self.chunk
            selection = split_selection(("chunk", count, -1), index, shape)
            if selection is None:
                raise SliceFitError(f"`chunk: [{index}, {count}]` does not fit the {self.describe_place()} of shape "
                                    f"{list(shape)}: `.chunk({count}, dim=-1)` gives fewer than {index + 1} chunks")
            return selection
        return None

    def describe_place(self) -> str:
        suffix = f"[{self.index}]" if self.index is not None else ""
        return f"forward output '{self.output}'" if self.output is not None else f"output of module '{self.module}'{suffix}"

    def select(self, value):
        """The bound part of a tensor read at the binding's place (all of it without slice/chunk)."""
        from alignguard.spec.selection import to_key

        selection = self.selection(value.shape)
        return value if selection is None else value[to_key(selection)]

    def splice(self, value, part):
        """`value` with the bound part replaced by `part` (autograd flows into `part`, and into the
        rest of `value` as computed); `part` itself without slice/chunk."""
        from alignguard.spec.selection import to_key

        selection = self.selection(value.shape)
        if selection is None:
            return part
        whole = value.clone()
        whole[to_key(selection)] = part
        return whole


class SliceFitError(ValueError):
    """A symbol's `slice`/`chunk` that cannot be taken of the tensor the model computes there."""


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
    reaches: list[str] = Field(
        default_factory=list,
        description="Symbols its output must reach: by a data path in the graph (component.on_path) and "
        "numerically, perturbing its own parameters moves each of them (component.effect; frozen modules too).")
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
    reaches: list[str] = Field(
        default_factory=list, description="Gradient targets it must have a non-zero gradient on: components, "
        "symbols (dL/d symbol, a chunk of a module output included) or parameter names (glob allowed)."
    )
    avoids: list[str] = Field(
        default_factory=list, description="Gradient targets it must have exactly zero gradient on (stop-gradient "
        "designs: an EMA target network, a frozen bias model, the codebook for a commitment loss)."
    )
    reversed_on: list[str] = Field(
        default_factory=list, description="Components or parameter names on which the term's gradient is "
        "reversed (a gradient-reversal layer): moving along it must raise the term. loss.descent judges the "
        "remaining parameters."
    )
    plain_on: list[str] = Field(
        default_factory=list, description="Components or parameter names on which the term's gradient must be "
        "its plain slope (descends the term), e.g. the domain classifier of an adversarial design."
    )
    straight_through: list[StraightThrough] = Field(
        default_factory=list, description="Straight-through estimators the term's gradient must pass unchanged."
    )
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
    pairs: list[PairBound] = Field(
        default_factory=list, description="Per-pair cosine bounds replacing `min_cosine` for that pair (two terms "
        "that oppose by construction, e.g. DANN's label and domain losses)."
    )
    frozen: list[str] = Field(
        default_factory=list, description="Components or parameter names (glob) whose parameters must all have "
        "requires_grad=False (a pre-trained bias model, an EMA target network)."
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
    dependence: list[DependenceRule] = Field(
        default_factory=list, description="Index-level dependence rules (causal masks; an input that must not "
        "affect a symbol)."
    )


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
    identifiable: list[str] = Field(
        default_factory=list, description="Symbols that must be identifiable outright: the identifiability check "
        "fails on any symmetry of a formula that moves one of them, even a global constant one (e.g. `[T]`)."
    )
    losses: dict[Name, LossSpec] = Field(
        default_factory=dict, description="Terms `loss_terms` must return, with gradient-share bounds."
    )
    gradients: GradientSpec = Field(default_factory=GradientSpec, description="How gradients are measured and bounded.")
    probes: ProbesSpec = Field(default_factory=ProbesSpec, description="Numerical probes that need no tracer.")
    weights: list[WeightConstraint] = Field(
        default_factory=list, description="Constraints the model keeps on its weights (e.g. a max-norm)."
    )
    ranges: list[RangeRule] = Field(default_factory=list, description="Ranges symbols must stay in.")
    severity: dict[str, Severity] = Field(
        default_factory=dict, description="Per check id (glob allowed): error or warning."
    )
    waivers: list[Waiver] = Field(default_factory=list, description="Accepted findings, with reason and expiry.")
    _lines: dict[tuple[str | int, ...], int] = PrivateAttr(default_factory=dict)  # set by the loader
    _columns: dict[tuple[str | int, ...], int] = PrivateAttr(default_factory=dict)  # set by the loader
    _source: str = PrivateAttr(default="<spec>")  # set by the loader

    def location(self, loc: tuple[str | int, ...]) -> str:
        """`file:line:col` of the spec entry at `loc` (its deepest part the file has), for a spec error
        found at check time; the dotted path where the spec was not read from a file."""
        found = loc
        while found and found not in self._lines:
            found = found[:-1]
        if not found:
            return f"{self._source}: {'.'.join(map(str, loc))}"
        return f"{self._source}:{self._lines[found]}:{self._columns.get(found, 1)}"

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
        parts = self.input_parts()
        named = [*self.inputs, *self.symbols, *self.components, *(p for spec in self.inputs.values() for p in spec.parts)]
        for name in sorted({n for n in named if named.count(n) > 1}):
            loc = ("inputs", parts[name][0], "parts", name) if name in parts else ()
            problems.append((loc, f"'{name}' is defined twice (inputs, their parts, symbols and components share "
                                  "one namespace)"))
        elements = set(self.inputs) | set(parts) | set(self.symbols) | set(self.components)

        def need(names: list[str], kinds: set[str], loc: tuple, what: str) -> None:
            for name in names:
                if name not in kinds:
                    known = ", ".join(sorted(kinds)) or "none defined"
                    problems.append((loc, f"{what} '{name}' is not defined (known: {known})"))

        symbols, components, inputs = set(self.symbols), set(self.components), set(self.inputs) | set(parts)
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
        targets = components | symbols

        def need_targets(names: list[str], loc: tuple, what: str, allowed: set[str]) -> None:
            # a dotted name (or a glob) that is not a design element is a parameter name, resolved at check time
            need([n for n in names if not _parameter_like(n) or n in elements], allowed, loc, what)

        need(self.identifiable, symbols, ("identifiable",), "symbol")
        for name, loss in self.losses.items():
            need_targets(loss.reaches, ("losses", name, "reaches"), "gradient target", targets)
            need_targets(loss.avoids, ("losses", name, "avoids"), "gradient target", targets)
            need_targets(loss.reversed_on, ("losses", name, "reversed_on"), "component", components)
            need_targets(loss.plain_on, ("losses", name, "plain_on"), "component", components)
            for i, rule in enumerate(loss.straight_through):
                need([rule.output, rule.input], symbols, ("losses", name, "straight_through", i), "symbol")
        need_targets(self.gradients.frozen, ("gradients", "frozen"), "component", components)
        for i, pair in enumerate(self.gradients.pairs):
            need(list(pair.terms), set(self.losses), ("gradients", "pairs", i, "terms"), "loss")
        for name, binding in self.symbols.items():
            if binding.stochastic and binding.stochastic.scale:
                need([binding.stochastic.scale], symbols, ("symbols", name, "stochastic", "scale"), "symbol")
        for i, rule in enumerate(self.ranges):
            need([rule.symbol], symbols, ("ranges", i, "symbol"), "symbol")
        for i, rule in enumerate(self.probes.dependence):
            need([rule.symbol], symbols, ("probes", "dependence", i, "symbol"), "symbol")
            need([rule.input], inputs, ("probes", "dependence", i, "input"), "input")
            if rule.rule == "causal" and rule.input in parts:
                problems.append((("probes", "dependence", i, "input"), f"a causal rule replaces positions of a whole "
                                 f"input, and '{rule.input}' is a part of '{parts[rule.input][0]}': name the input, or "
                                 "use `rule: none` to require that the part does not affect the symbol"))
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
                need([probe.context], set(self.inputs), ("probes", field, "context"), "input")
        return problems

    def stochastic_symbols(self) -> dict[str, SymbolNoise]:
        return {name: b.stochastic for name, b in self.symbols.items() if b.stochastic is not None}

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

    def input_parts(self) -> dict[str, tuple[str, str]]:
        """Every named input part: part name -> (input name, slice text)."""
        return {part: (name, text) for name, spec in self.inputs.items() for part, text in spec.parts.items()}

    def input_with_role(self, role: str) -> list[str]:
        return [name for name, spec in self.inputs.items() if spec.role == role]


def _parameter_like(name: str) -> bool:
    """A gradient target written as a parameter name (dotted, or a glob) rather than a design element."""
    return "." in name or any(c in name for c in "*?[")
