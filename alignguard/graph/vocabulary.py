"""One op vocabulary for every capture: `operator.mul`, `torch.mul`, `Tensor.mul`,
`aten.mul.Tensor` and `nn.Softplus` all become `mul` / `softplus`.
"""

from __future__ import annotations

import re

# Synonyms after stripping namespaces, in-place underscores and aten overloads.
_ALIASES = {
    "truediv": "div", "true_divide": "div", "divide": "div", "floordiv": "div",
    "multiply": "mul", "subtract": "sub", "rsub": "rsub", "negative": "neg",
    "iadd": "add", "isub": "sub", "imul": "mul", "itruediv": "div",
    "linear": "linear", "conv1d": "conv", "conv2d": "conv", "conv3d": "conv", "convolution": "conv",
    "randn_like": "randn", "rand_like": "rand", "normal_": "normal", "normal_functional": "normal",
    "randint_like": "randint", "bernoulli_": "bernoulli", "native_dropout": "dropout",
    "sigmoid": "sigmoid", "logsigmoid": "logsigmoid", "log_sigmoid": "logsigmoid",
    "matmul": "matmul", "mm": "matmul", "bmm": "matmul", "addmm": "linear",
    "pow": "pow", "square": "square", "sqrt": "sqrt", "rsqrt": "rsqrt",
    "_softmax": "softmax", "_log_softmax": "log_softmax",
}

RANDOM_OPS = frozenset({"randn", "rand", "normal", "bernoulli", "randint", "randperm", "dropout",
                        "rsample", "sample", "multinomial", "poisson", "exponential", "uniform"})

# Ops that only change shape, layout or dtype: transparent for pattern matching.
TRANSPARENT_OPS = frozenset({
    "view", "reshape", "squeeze", "unsqueeze", "expand", "expand_as", "contiguous", "flatten",
    "unflatten", "permute", "transpose", "t", "to", "float", "double", "half", "bfloat16", "type",
    "type_as", "clone", "alias", "view_as", "identity", "getitem_tuple", "_to_copy", "detach_copy",
    "squeeze_", "unsqueeze_", "broadcast_to", "movedim", "dropout_eval",
})


def normalise(name: str) -> str:
    """Normalise a callable's or module class's name to the shared vocabulary."""
    name = name.split(".")[-2] if re.search(r"\.(default|Tensor|Scalar|int|dim|using_ints)$", name) else name
    name = name.rsplit(".", 1)[-1]
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()  # Softplus -> softplus, LogSigmoid -> log_sigmoid
    if name in _ALIASES:
        return _ALIASES[name]
    if name.endswith("_") and not name.startswith("_") and name[:-1]:
        name = name[:-1]  # in-place variant
    return _ALIASES.get(name, name)


def is_random(op: str) -> bool:
    return op in RANDOM_OPS


def is_transparent(op: str) -> bool:
    return op in TRANSPARENT_OPS
