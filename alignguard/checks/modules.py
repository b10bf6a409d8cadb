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
