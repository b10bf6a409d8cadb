"""Per-loss-term gradient measurement, shared by the gradient checks and the trainer's monitor."""

from alignguard.gradients.measure import (
    LossTermTypeError,
    StepMeasurement,
    TermGradients,
    measure_steps,
    term_gradients,
    trainable_parameters,
)
from alignguard.gradients.stats import GradientStats, gradient_stats

__all__ = [
    "GradientStats",
    "LossTermTypeError",
    "StepMeasurement",
    "TermGradients",
    "gradient_stats",
    "measure_steps",
    "term_gradients",
    "trainable_parameters",
]
