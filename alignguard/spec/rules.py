"""Spec rules at the granularity published designs state them (issue 16).

Kept beside `spec/model.py`, which embeds them: noise attached to a symbol wherever it is drawn,
gradient rules on modules, parameter tensors and symbols (must reach / must not reach, frozen,
reversed / plain, straight-through), per-pair conflict bounds, weight constraints, output ranges
and index-level dependence.

A *gradient target* is written as one string: a component name, a symbol name, or a dotted
parameter name of the model (`film_generator.weight`, glob allowed: `conv*.weight`). Components
and symbols are checked when the spec loads; a parameter pattern that matches no parameter fails
at check time ("matched nothing").
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from alignguard.spec.base import SpecModel


class SymbolNoise(SpecModel):
    """The symbol is a sample drawn while training, wherever the draw happens (a submodule, a method of
    the root module, a plain function, `torch.distributions`)."""

    scale: str | None = Field(
        None, description="Symbol of the learned scale (sigma) the sample is reparameterised through: "
        "d symbol / d scale must be non-zero (a `.sample()` or a detached sigma gives zero)."
    )
    through_scale: bool = Field(
        True, description="The noise must reach the symbol through a product with a learned scale (graph)."
    )
    eval: Literal["deterministic", "stochastic", "any"] = Field(
        "deterministic", description="Documented behaviour in eval mode."
    )


class StraightThrough(SpecModel):
    """`output` passes the loss's gradient to `input` unchanged (a straight-through estimator:
    forward computes something non-differentiable, backward is the identity)."""

    output: str = Field(description="Symbol the estimator returns (e.g. z_st = z_e + sg(z_q - z_e)).")
    input: str = Field(description="Symbol that must receive the same gradient (e.g. z_e).")
    tolerance: float = Field(1e-5, ge=0, description="Relative tolerance of |dL/d input - dL/d output|.")


class PairBound(SpecModel):
    """Bounds on cos(g_a, g_b) for one pair of loss terms, replacing the global `min_cosine` for it."""

    terms: tuple[str, str] = Field(description="The two loss terms, e.g. [label, domain].")
    min_cosine: float = Field(-1.0, ge=-1.0, le=1.0)
    max_cosine: float = Field(1.0, ge=-1.0, le=1.0)
    why: str = ""

    @model_validator(mode="after")
    def _ordered(self) -> "PairBound":
        if self.min_cosine > self.max_cosine:
            raise ValueError("min_cosine must be <= max_cosine")
        if self.terms[0] == self.terms[1]:
            raise ValueError("a pair bound needs two different loss terms")
        return self


class WeightConstraint(SpecModel):
    """A constraint the model itself keeps on parameter tensors, whatever the raw values become:
    probed by pushing the raw parameters far out and reading the effective weights back."""

    params: str = Field(description="Parameter name or glob, e.g. `conv*.weight`; a parametrized weight "
                        "(torch.nn.utils.parametrize) is read through its parametrization.")
    max_norm: float = Field(gt=0, description="Largest L2 norm of each slice along `dim` (a kernel, a row).")
    dim: int = Field(0, ge=0, description="The dimension whose slices are bounded (0: each output kernel).")
    scale: float = Field(100.0, gt=1, description="The raw parameters are multiplied by this before reading.")
    hook: str | None = Field(
        None, description="Model-file function `hook(model)` that applies the constraint after an optimiser "
        "step (a post-step renorm); called after the raw parameters are pushed out."
    )


class RangeRule(SpecModel):
    """A symbol stays within [min, max] (inclusive) on the example batch and far-out inputs."""

    symbol: str
    min: float | None = None
    max: float | None = None
    sum_to: float | None = Field(None, description="The symbol sums to this along its last dim (a softmax).")
    scale: float = Field(10.0, gt=0, description="Floating-point inputs are also probed at this many times their value.")

    @model_validator(mode="after")
    def _some_bound(self) -> "RangeRule":
        if self.min is None and self.max is None and self.sum_to is None:
            raise ValueError("give `min`, `max` or `sum_to`")
        return self


class DependenceRule(SpecModel):
    """Index-level dependence of a symbol on an input, probed by replacing input elements.

    `causal`: position t of `symbol` along `dim` must not change when positions > t of `input` change
    (and must change for some position <= t); `none`: the symbol must not change at all when the input,
    or only a named part of it (`input: accessibility` for `c: {parts: {accessibility: "[:, -1]"}}`),
    is replaced and everything else is held fixed.
    """

    symbol: str
    input: str = Field(description="A forward argument, or (rule `none`) a named part of one.")
    rule: Literal["causal", "none"] = "causal"
    dim: int = Field(1, ge=1, description="causal: the position dimension shared by the symbol and the input "
                     "(0 is the batch).")
    trials: int = Field(4, ge=1, description="causal: random replacements per probed position; none: replacements "
                        "of each kind (other rows' values, Gaussian, far out).")
    tolerance: float = Field(1e-6, ge=0, description="causal: the largest change allowed at an earlier position; "
                             "none: the largest change allowed, times max(1, the symbol's largest magnitude).")
