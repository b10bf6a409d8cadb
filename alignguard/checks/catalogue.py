"""Every check alignguard runs, in report order, grouped by the evidence it rests on.

Adding a check is writing its class in the room of its evidence and listing it here: the order
below is the report order, the docs page's order and `alignguard explain`'s list.
"""

from __future__ import annotations

from dataclasses import dataclass

from alignguard.checks import waivers
from alignguard.checks.base import Check
from alignguard.checks.gradients.conflict import GradientConflictCheck
from alignguard.checks.gradients.descent import LossDescentCheck
from alignguard.checks.gradients.direction import GradientDirectionCheck
from alignguard.checks.gradients.losses import LossCheck
from alignguard.checks.gradients.rules import GradientRuleCheck
from alignguard.checks.probes.batch import BatchIndependenceProbeCheck
from alignguard.checks.probes.constraints import ConstraintProbeCheck
from alignguard.checks.probes.effect import ComponentEffectCheck
from alignguard.checks.probes.modulation import ModulationProbeCheck
from alignguard.checks.probes.noise import NoiseProbeCheck
from alignguard.checks.probes.positivity import PositivityProbeCheck
from alignguard.checks.probes.swap import SwapProbeCheck
from alignguard.checks.probes.translation import TranslationProbeCheck
from alignguard.checks.structure.components import ComponentCheck
from alignguard.checks.structure.flow import FlowCheck
from alignguard.checks.structure.formula import FormulaCheck
from alignguard.checks.structure.identifiability import IdentifiabilityCheck
from alignguard.checks.structure.noise import NoiseCheck
from alignguard.checks.structure.patterns import PatternCheck
from alignguard.checks.structure.symbols import SymbolCheck


@dataclass(frozen=True)
class Room:
    name: str  # the heading of docs/checks.md
    evidence: str  # what every check in the room rests on
    checks: tuple[type[Check], ...]


ROOMS: tuple[Room, ...] = (
    Room("Structure",
         "From the forward graph captured in train mode (torch.fx, or the fallback capture the report names).",
         (SymbolCheck, ComponentCheck, FlowCheck, NoiseCheck, FormulaCheck, PatternCheck, IdentifiabilityCheck)),
    Room("Gradients", "Measured with autograd on the real model (never the traced copy), at the spec's steps.",
         (LossCheck, GradientRuleCheck, LossDescentCheck, GradientDirectionCheck, GradientConflictCheck)),
    Room("Numerical probes", "Black-box forward passes of the real model under controlled interventions.",
         (NoiseProbeCheck, SwapProbeCheck, ModulationProbeCheck, PositivityProbeCheck,
          BatchIndependenceProbeCheck, TranslationProbeCheck, ConstraintProbeCheck, ComponentEffectCheck)),
)

CHECKS: tuple[type[Check], ...] = tuple(check for room in ROOMS for check in room.checks)

# The order the checks *run* in (the report keeps CHECKS' order). An eval run of the example inputs through
# the runner captures the calls that take them alone (the encoder's output: probes/replay.py) and records
# where the symbols are; a train-mode or gradient forward (the gradient measurement, swap's gradient, the
# noise probe's train pair, noise.reparameterised), a forward outside the runner (noise.eval's eval-mode
# graph capture) or a run of other inputs (positivity's validation of a slice on moved inputs) drops the
# capture, and every check after it paid whole forwards of the encoder again. noise.eval's pair of eval
# passes (seeds s and s+1, after its graph capture) makes the capture; identifiability and the checks that
# read those inputs in eval only replay it right after; then swap, whose eval runs replay it across contexts
# (modulation confirmed that crossing) before its gradient run drops it; then the noise probe (its eval pair
# is noise.eval's) and positivity, which only drop it.
_EVAL_GROUP = (TranslationProbeCheck, ComponentEffectCheck, ModulationProbeCheck, SwapProbeCheck,
               NoiseProbeCheck, PositivityProbeCheck)
EXECUTION: tuple[type[Check], ...] = tuple(
    later for check in CHECKS if check not in _EVAL_GROUP
    for later in ((check, *_EVAL_GROUP) if check is IdentifiabilityCheck else (check,)))


def explanations() -> dict[str, str]:
    """Every check id (waiver rules last) -> what it proves and how to fix a failure."""
    out = {check_id: check.explanations.get(check_id, "") for check in CHECKS for check_id in check.ids}
    return {**out, **waivers.RULES}


def explanation(check_id: str) -> str | None:
    return explanations().get(check_id) or None


def all_check_ids() -> list[str]:
    return list(explanations())


def _unique_ids() -> None:
    ids = [check_id for check in CHECKS for check_id in check.ids] + list(waivers.RULES)
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise RuntimeError(f"check ids listed twice in the catalogue: {', '.join(duplicates)}")


_unique_ids()
