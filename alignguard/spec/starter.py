"""A starter spec inferred from a model file (`alignguard init`, through `api.infer_starter_spec`).

`Survey` is what was measured on the model (`api.survey_model` measures it, in the model worker);
`render_spec` writes it as a commented YAML spec (`api.starter_text`, in the CLI's own process). The
survey's measurement batch is sized from the model's counted forward FLOPs (`measurement_batch_size`)
and written as `entry_points.batch_size` when it is not the default. Everything written is measured, nothing is guessed silently: inputs from forward's signature
(role guessed from the name, marked TODO when unknown), every tensor forward returns as a
symbol, each top-level module with parameters as a component reaching the outputs it reaches
in the captured graph, and each loss term with the step where it has a gradient, the components
it reaches and its measured gradient share as a comment. What only the designer knows (formulas,
forbidden paths, probes) is left as commented suggestions. The result validates against the
spec schema before it is written.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from alignguard.spec.loader import parse_spec
from alignguard.spec.model import EntryPoints, GradientSpec

PROBE_STEPS = (0, 100, 1000, 10000)  # loss weights often warm up from 0 (β schedules)
CLEAR_SHARE = 0.05  # a measured share at least this large keeps its sign under re-initialisation
NOISE_FLOOR = -0.01  # min_share written for smaller shares
# init measures on batches whose forward costs at most FORWARD_FLOP_BUDGET (counted, never timed: the
# starter must not depend on the machine), halving the default batch down to SMALLEST_BATCH, and writes
# the size it chose into the starter, so that `alignguard check` on it measures what init measured
FORWARD_FLOP_BUDGET = 2e9
SMALLEST_BATCH = 4
_INVARIANT = {"x", "seq", "sequence", "dna", "tokens", "input", "inputs", "features", "image", "images", "text"}
_CONTEXT = {"c", "ctx", "context", "cond", "condition", "cell", "cell_line", "env", "environment", "domain",
            "covariates", "meta"}


@dataclass
class LossSurvey:
    step: int | None  # first probed step where the term has a gradient (None: never)
    share: float | None
    status: str
    reaches: list[str]


@dataclass
class Survey:
    """What init measured on the model."""

    inputs: dict[str, str]  # name -> role
    symbols: dict[str, str]  # symbol name -> output key
    components: dict[str, list[str]]  # module name -> symbols it reaches
    noisy: dict[str, bool] = field(default_factory=dict)  # component -> draws random numbers
    skipped_modules: list[str] = field(default_factory=list)  # top-level modules not written, with why
    input_reach: dict[str, list[str]] = field(default_factory=dict)  # input -> symbols it reaches
    losses: dict[str, LossSurvey] = field(default_factory=dict)
    conflict: dict[str, float | None] = field(default_factory=dict)  # min cosine, net ratio at the loss step
    dead_params: list[str] = field(default_factory=list)
    capture: str = ""
    batches: int = 3
    batch_size: int = 32
    flops_per_row: float | None = None  # one forward's FLOPs per row (None: not counted); see measurement_batch_size
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase (`alignguard init --timings`)


def guess_role(name: str) -> str:
    """From the argument's name or its parts (`cell_type` -> context); 'other' when unsure."""
    words = [name.lower(), *name.lower().split("_")]
    for known, role in ((_CONTEXT, "context"), (_INVARIANT, "invariant")):
        if any(word in known for word in words):
            return role
    return "other"


def measurement_batch_size(flops_per_row: float | None, default: int) -> int:
    """The batch init measures on: `default` halved while one forward of it would cost more than
    FORWARD_FLOP_BUDGET, never below SMALLEST_BATCH (nor above `default`); `default` when uncounted."""
    size = default
    while flops_per_row and size > SMALLEST_BATCH and size * flops_per_row > FORWARD_FLOP_BUDGET:
        size = max(SMALLEST_BATCH, size // 2)
    return size


def symbol_name(key: str) -> str:
    name = re.sub(r"\W", "_", key)
    return name if re.match(r"^[A-Za-z_]", name) else f"out_{name}"


def render_spec(survey: Survey, model_name: str) -> str:
    """The starter spec as commented YAML (ruamel.yaml), validated before it is returned."""

    def flow(**items: Any) -> CommentedMap:
        mapping = CommentedMap(items)
        mapping.fa.set_flow_style()
        return mapping

    doc = CommentedMap()
    doc["version"] = 1
    doc["name"] = model_name
    doc["description"] = f"Starter spec written by `alignguard init` for {model_name}: tighten it to the design."
    _entry_points(doc, survey)
    doc.yaml_set_start_comment(
        f"Written by `alignguard init` from what the model does now (capture: {survey.capture}).\n"
        "It describes the implementation, not yet the design: confirm each entry, add the design's\n"
        "formulas and forbidden flows, then run `alignguard check`.")
    inputs = CommentedMap()
    column = max((len(f"  {n}: {{role: {r}}}") for n, r in survey.inputs.items()), default=0) + 2
    for name, role in survey.inputs.items():
        inputs[name] = flow(role=role)
        reach = ", ".join(survey.input_reach.get(name, [])) or "nothing"
        note = f"reaches {reach}" if role != "other" else f"TODO: invariant or context? reaches {reach}"
        inputs.yaml_add_eol_comment(note, name, column=column)
    doc["inputs"] = inputs
    symbols = CommentedMap()
    for name, key in survey.symbols.items():
        symbols[name] = key if name == key else flow(output=key)
    doc["symbols"] = symbols
    doc.yaml_set_comment_before_after_key("symbols", before="\nEvery tensor forward returns, by its key.")
    components = CommentedMap()
    for name, reaches in survey.components.items():
        entry = CommentedMap(module=name)
        entry["reaches"] = CommentedSeq(reaches)
        entry["reaches"].fa.set_flow_style()
        components[name] = entry
        if survey.noisy.get(name):
            components.yaml_set_comment_before_after_key(
                name, before="draws random numbers in train mode: if it is a noise bottleneck, add\n"
                "`stochastic: {symbol: SYMBOL}` (the symbol its noise must reach)", indent=2)
    doc["components"] = components
    before = "\nTop-level modules with parameters; `reaches` is what their output reaches now."
    if survey.skipped_modules:
        before += "\nNot listed: " + "; ".join(survey.skipped_modules) + "."
    doc.yaml_set_comment_before_after_key("components", before=before)
    doc["losses"] = _losses(survey, flow)
    doc.yaml_set_comment_before_after_key(
        "losses", before=f"\nThe terms loss_terms returns. Shares g_i.g/|g|^2 measured over {survey.batches} "
        f"batches of {survey.batch_size}, at the first\nprobed step ({', '.join(map(str, PROBE_STEPS))}) where "
        "every term has a gradient: raise min_share to what the design needs.")
    doc["gradients"] = _gradients(survey)
    buffer = io.StringIO()
    yaml = YAML()
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 110
    yaml.dump(doc, buffer)
    text = buffer.getvalue() + _suggestions(survey)
    parse_spec(text, source="<alignguard init>")  # a spec init writes must load; a failure here is a bug
    return text


def _entry_points(doc: Any, survey: Survey) -> None:
    """`entry_points: {batch_size: N}` when init measured on a smaller batch than the default (a costly
    forward), with why; nothing otherwise (the defaults hold)."""
    default = EntryPoints().batch_size
    if survey.batch_size == default or not survey.flops_per_row:
        return
    entry = CommentedMap(batch_size=survey.batch_size)
    entry.fa.set_flow_style()
    doc["entry_points"] = entry
    doc.yaml_set_comment_before_after_key("entry_points", before=(
        f"\nOne forward costs {survey.flops_per_row / 1e9:.3g} GFLOP a row (counted): batches of {default} would "
        f"exceed {FORWARD_FLOP_BUDGET / 1e9:g} GFLOP a forward,\nso init measured, and check measures, batches of "
        f"{survey.batch_size} (docs/ci.md, init)."))


def _losses(survey: Survey, flow) -> Any:
    losses = CommentedMap()
    for name, loss in survey.losses.items():
        entry = CommentedMap()
        # a share under CLEAR_SHARE is sign noise across initialisations (a regulariser nearly orthogonal to
        # the total): demand only that it does not push against the total by more than NOISE_FLOOR
        clear = loss.share is not None and loss.share >= CLEAR_SHARE
        entry["min_share"] = 0.0 if clear else NOISE_FLOOR
        entry["reaches"] = loss.reaches
        entry["step"] = loss.step if loss.step is not None else 0
        entry.fa.set_flow_style()
        losses[symbol_name(name)] = entry
        if loss.step is None:
            note = f"TODO: no gradient at any probed step ({loss.status}): loss.alive will fail"
        elif loss.share is None:
            note = "share not measurable (total gradient is zero)"
        else:
            note = f"measured share {loss.share:.3g} at step {loss.step}"
            if loss.share < NOISE_FLOOR:
                note += " (it pushes against the others: loss.share will fail)"
            elif loss.share < CLEAR_SHARE:
                note += f" (about 0: its sign varies between initialisations, so min_share {NOISE_FLOOR:g})"
        losses.yaml_set_comment_before_after_key(symbol_name(name), before=note, indent=2)
    return losses


def _gradients(survey: Survey) -> Any:
    defaults = GradientSpec()
    gradients = CommentedMap()
    gradients["batches"] = survey.batches
    cosine, net = survey.conflict.get("min_cosine"), survey.conflict.get("net_ratio")
    gradients["min_cosine"] = defaults.min_cosine
    if cosine is not None:
        warn = " (below the bound: gradient.conflict will fail)" if cosine < defaults.min_cosine else ""
        gradients.yaml_add_eol_comment(f"lowest measured pairwise cosine {cosine:.3f}{warn}", "min_cosine", column=24)
    gradients["min_net_ratio"] = defaults.min_net_ratio
    if net is not None:
        warn = " (below the bound: gradient.cancellation will fail)" if net < defaults.min_net_ratio else ""
        gradients.yaml_add_eol_comment(f"measured net/sum {net:.3f}{warn}", "min_net_ratio", column=24)
    gradients["dead_params"] = True
    if survey.dead_params:
        shown = ", ".join(survey.dead_params[:6]) + (" ..." if len(survey.dead_params) > 6 else "")
        gradients.yaml_add_eol_comment(f"TODO: no loss reaches {shown}: params.dead will fail", "dead_params",
                                       column=24)
    return gradients


def _suggestions(survey: Survey) -> str:
    """Commented-out rules only the designer can confirm."""
    invariant = [n for n, r in survey.inputs.items() if r == "invariant"]
    context = [n for n, r in survey.inputs.items() if r == "context"]
    lines = ["", "# The design, which init cannot know. Uncomment and adapt:", "# flow:"]
    required = [f"#     - {{from: {i}, to: {s}}}" for i in invariant + context for s in survey.input_reach.get(i, [])[-1:]]
    if required:
        lines += ["#   required:"] + required
    untouched = [(c, s) for c in context for s in survey.symbols if s not in survey.input_reach.get(c, [])]
    if untouched:
        lines += ["#   forbidden:   # the context does not reach these now; keep it that way if the design says so"]
        lines += [f"#     - {{from: {c}, to: {s}}}" for c, s in untouched]
    lines += ["# formulas:", "#   - equation: logit = (M * U_I + B) / T   # your design's equation, in symbol names",
              "# probes:", "#   noise: {symbol: z_I, eval: deterministic}"]
    if invariant and context:
        lines += [f"#   swap_invariance: {{symbol: SYMBOL, context: {context[0]}}}"]
    return "\n".join(lines) + "\n"

