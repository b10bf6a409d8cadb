"""What the model itself computes, measured by running it: the ground truth the captured graphs are
held to. An input reaches an output when changing that input changes the output (same seed); a
module is on an output's path when perturbing what the module returns changes the output; an
output is random when two seeds give different values for one batch.
"""

from __future__ import annotations

import sys

import torch

from alignguard.graph.capture_fx import flatten_output


def run(model, batch: dict, seed: int = 0, hook=None) -> dict:
    """The model's outputs on the batch; a torch.compile'd module runs uncompiled (the oracle measures
    the code, not the compiler, and compiling would take seconds)."""
    dynamo = sys.modules.get("torch._dynamo")  # not imported: nothing is compiled (importing it costs seconds)
    if dynamo is None:
        return _run(model, batch, seed, hook)
    with dynamo.config.patch(disable=True):
        return _run(model, batch, seed, hook)


def _run(model, batch: dict, seed: int = 0, hook=None) -> dict:
    handles = []
    if hook is not None:
        handles = [hook[0].register_forward_hook(hook[1])]
    try:
        torch.manual_seed(seed)
        model.train()
        with torch.no_grad():
            return {k: v.detach().clone() for k, v in flatten_output(model(**batch)) if isinstance(v, torch.Tensor)}
    finally:
        for handle in handles:
            handle.remove()


def changed(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape != b.shape or not torch.allclose(a.float(), b.float(), atol=1e-6, equal_nan=True)


def changed_outputs(before: dict, after: dict) -> set[str]:
    return {k for k in before if changed(before[k], after[k])}


def perturbed(value: torch.Tensor, how=None) -> torch.Tensor:
    if how is not None:
        return how(value)
    g = torch.Generator().manual_seed(11)
    return value + torch.randn(value.shape, generator=g) * 3


def input_effects(model, batch: dict, perturb: dict) -> dict[str, set[str]]:
    """input name -> output keys that move when the input is changed."""
    base = run(model, batch)
    return {name: changed_outputs(base, run(model, {**batch, name: perturbed(value, perturb.get(name))}))
            for name, value in batch.items()}


def random_outputs(model, batch: dict, seeds: int = 4) -> set[str]:
    first = run(model, batch, seed=0)
    return set().union(*(changed_outputs(first, run(model, batch, seed=seed)) for seed in range(1, seeds)))


def _shift(module, inputs, output):
    def move(value):
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            ramp = torch.linspace(0.1, 0.7, value.numel()).reshape(value.shape)  # softmax ignores a uniform shift
            if any(value is i for i in inputs):  # an in-place module (ReLU(inplace=True)) returns its input
                return value.add_(ramp)
            return value + ramp
        if isinstance(value, (tuple, list)):
            return type(value)(move(v) for v in value)
        return value
    return move(output)


def module_effects(model, batch: dict) -> dict[str, set[str]]:
    """module path -> output keys that move when the module's output is shifted; a container that is
    never called itself (a ModuleList) moves what its members move."""
    base = run(model, batch)
    effects = {}
    for path, module in model.named_modules():
        if path and not path.endswith("_orig_mod"):
            effects[path.replace("._orig_mod", "")] = changed_outputs(base, run(model, batch, hook=(module, _shift)))
    for path in sorted(effects, key=lambda p: -p.count(".")):  # members before their container
        members = [p for p in effects if p.startswith(path + ".")]
        effects[path] |= set().union(*(effects[p] for p in members))
    return effects
