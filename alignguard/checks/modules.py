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


def parameters_named(spec, model, entry: str) -> tuple[str, tuple[str, ...], str]:
    """The parameters a spec entry names: a component (its module's parameters) or a parameter-name
    glob; with how a report calls them and why they match nothing ("" when they match)."""
    from alignguard.gradients.targets import parameters_of

    if entry in spec.components:
        path = spec.components[entry].module
        label = f"'{path}' ({entry})"
        if not module_exists(model, path):
            return label, (), f"no module '{path}'"
        params = tuple(parameters_of(model, module_path=path))
        return label, params, "" if params else f"'{path}' has no parameters"
    params = tuple(parameters_of(model, pattern=entry))
    return f"parameters '{entry}'", params, "" if params else f"no parameter name matches '{entry}'"


def frozen_parameters(spec, model) -> dict[str, str]:
    """Parameter name -> the `gradients.frozen` entry naming it, resolved as params.frozen resolves them."""
    frozen: dict[str, str] = {}
    for entry in spec.gradients.frozen:
        for name in parameters_named(spec, model, entry)[1]:
            frozen.setdefault(name, entry)
    return frozen
