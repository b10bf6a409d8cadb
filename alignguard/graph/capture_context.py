"""What both captures arrange around the model before they trace or run it.

- `uncompiled`: a `torch.compile`d module (an `OptimizedModule`) is captured as the module it wraps,
  at the path the user wrote (`block`, not `block._orig_mod`): the graph is the code's, not the
  compiler's, and neither capture can see through dynamo (fx would trace the wrapper, the eager
  recorder's hooks break dynamo's tracing).
- `autograd_function_boundaries`: every custom `torch.autograd.Function` the user defined gets its
  `forward` wrapped, so a capture can tag the ops inside it and add one node for what it returns.
  Without that node an identity Function (the gradient-reversal layout `return input_`) is the
  same node as its input, and everything that reads the input seems to read the reversal. The
  wrap is on `forward`, not `apply`, because code binds `revgrad = RevGrad.apply` at import time.
- `user_forward_hooks`: forward hooks change what a module returns; fx never calls them.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import sys
from typing import Any, Callable, Iterator

import torch

from alignguard.graph.sources import is_user_file


def _compiled_type() -> type | None:
    module = sys.modules.get("torch._dynamo.eval_frame")  # never imported: nothing is compiled
    return getattr(module, "OptimizedModule", None)


@contextlib.contextmanager
def uncompiled(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """The model with every compiled submodule replaced by its original (restored afterwards)."""
    compiled = _compiled_type()
    if compiled is None:
        yield model
        return
    while isinstance(model, compiled):
        model = model._orig_mod
    swapped: list[tuple[torch.nn.Module, str, torch.nn.Module]] = []
    try:
        stack = [model]
        while stack:
            parent = stack.pop()
            for name, child in list(parent._modules.items()):
                original = child
                while isinstance(original, compiled):
                    original = original._orig_mod
                if original is not child:
                    parent._modules[name] = original
                    swapped.append((parent, name, child))
                if original is not None:
                    stack.append(original)
        yield model
    finally:
        for parent, name, child in reversed(swapped):
            parent._modules[name] = child


def user_functions() -> list[tuple[type, Callable]]:
    """Custom autograd.Function subclasses whose forward is user code (not torch's, not ours), each
    with its forward function (resolved before any is wrapped: a subclass may inherit it)."""
    found, stack = [], list(torch.autograd.Function.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        forward = inspect.getattr_static(cls, "forward", None)
        function = getattr(forward, "__func__", forward)
        code = getattr(function, "__code__", None)
        if code is not None and is_user_file(code.co_filename):
            found.append((cls, function))
    return found


@contextlib.contextmanager
def autograd_function_boundaries(wrap: Callable[[type, Callable, tuple, dict], Any]) -> Iterator[None]:
    """While active, `Function.forward(*args)` of every user Function runs as `wrap(cls, forward, args, kwargs)`."""
    patched: list[tuple[type, Any]] = []
    try:
        for cls, forward in user_functions():
            patched.append((cls, cls.__dict__.get("forward")))
            setattr(cls, "forward", staticmethod(_wrapped(cls, forward, wrap)))
        yield
    finally:
        for cls, own in reversed(patched):
            if own is None:
                delattr(cls, "forward")
            else:
                setattr(cls, "forward", own)


def _wrapped(cls: type, forward: Callable, wrap: Callable) -> Callable:
    @functools.wraps(forward)  # Function.apply binds arguments against forward's own signature
    def wrapped(*args, **kwargs):
        return wrap(cls, forward, args, kwargs)
    return wrapped


def user_forward_hooks(model: torch.nn.Module) -> list[str]:
    """Forward (pre-)hooks registered on the model's modules or globally: 'encoder (forward hook add_noise)'."""
    from torch.nn.modules import module as module_module

    found = []
    for kind, hooks in (("global forward hook", module_module._global_forward_hooks),
                        ("global forward pre-hook", module_module._global_forward_pre_hooks)):
        found.extend(f"{kind} {getattr(h, '__name__', h)}" for h in hooks.values())
    for path, module in model.named_modules():
        for kind, hooks in (("forward hook", module._forward_hooks), ("forward pre-hook", module._forward_pre_hooks)):
            found.extend(f"{path or 'the model'} ({kind} {getattr(h, '__name__', h)})" for h in hooks.values())
    return found
