"""The user's modules by dotted path, as the spec names them (shared by structure/ and gradients/)."""

from __future__ import annotations

import difflib


def module_exists(model, path: str) -> bool:
    try:
        model.get_submodule(path)
    except AttributeError:
        return False
    return True


def suggest_module(model, path: str) -> str:
    names = [name for name, _ in model.named_modules() if name]
    guess = difflib.get_close_matches(path, names, n=1)
    hint = f"did you mean '{guess[0]}'? " if guess else ""
    return hint + f"modules: {', '.join(names[:15])}{' ...' if len(names) > 15 else ''}"


def frozen_parameters(spec, model) -> dict[str, str]:
    """Parameter name -> the `gradients.frozen` entry naming it: a component (its module's parameters)
    or a parameter-name glob, resolved as params.frozen resolves them."""
    from alignguard.gradients.targets import parameters_of

    frozen: dict[str, str] = {}
    for entry in spec.gradients.frozen:
        if entry in spec.components:
            path = spec.components[entry].module
            names = parameters_of(model, module_path=path) if module_exists(model, path) else []
        else:
            names = parameters_of(model, pattern=entry)
        for name in names:
            frozen.setdefault(name, entry)
    return frozen
