"""One op vocabulary for every capture: `operator.mul`, `torch.mul`, `Tensor.mul`, `Tensor.__rmul__`,
`Tensor.mul_`, `aten.mul.Tensor` all become `mul`; `nn.Softplus` and `F.softplus` become `softplus`.

Besides the name, a capture needs to know three things about an op: whether it draws random
numbers, whether it only changes shape/layout/dtype (transparent for pattern matching), and
whether its tensor arguments feed its *values* at all (`randn_like(std)` and `x.size(0)` read a
shape only, so they carry no data-flow edge: otherwise `randn_like(c_features)` would invent a
path from c).
"""

from __future__ import annotations

import re

# Synonyms after stripping namespaces, dunders, in-place underscores and aten overloads.
_ALIASES = {
    "truediv": "div", "true_divide": "div", "divide": "div", "floordiv": "floor_divide", "rdiv": "div",
    "multiply": "mul", "subtract": "sub", "negative": "neg", "absolute": "abs",
    "conv1d": "conv", "conv2d": "conv", "conv3d": "conv", "convolution": "conv",
    "conv_transpose1d": "conv_transpose", "conv_transpose2d": "conv_transpose",
    "randn_like": "randn", "rand_like": "rand", "randint_like": "randint", "normal_functional": "normal",
    "native_dropout": "dropout", "feature_dropout": "dropout", "dropout1d": "dropout",
    "dropout2d": "dropout", "dropout3d": "dropout", "alpha_dropout": "dropout",
    "feature_alpha_dropout": "dropout", "log_sigmoid": "logsigmoid",
    "mm": "matmul", "bmm": "matmul", "addmm": "linear", "_softmax": "softmax", "_log_softmax": "log_softmax",
    "greater": "gt", "less": "lt", "clip": "clamp", "concat": "cat", "concatenate": "cat",
    "reciprocal": "reciprocal", "shape": "size", "ndim": "dim", "ndimension": "dim",
    "data": "detach", "mt": "t", "lift_fresh_copy": "clone", "_unsafe_view": "view",
}

# torch.nn module classes whose lower-cased name differs from the functional op.
_MODULE_OPS = {
    "relu": "relu", "relu6": "relu6", "leakyrelu": "leaky_relu", "prelu": "prelu", "gelu": "gelu",
    "silu": "silu", "elu": "elu", "selu": "selu", "celu": "celu", "mish": "mish",
    "sigmoid": "sigmoid", "logsigmoid": "logsigmoid", "tanh": "tanh", "softplus": "softplus",
    "softmax": "softmax", "logsoftmax": "log_softmax", "hardtanh": "hardtanh",
    "linear": "linear", "bilinear": "bilinear", "lazylinear": "linear", "identity": "identity",
    "flatten": "flatten", "unflatten": "unflatten",
    "conv1d": "conv", "conv2d": "conv", "conv3d": "conv", "lazyconv1d": "conv", "lazyconv2d": "conv",
    "maxpool1d": "max_pool", "maxpool2d": "max_pool", "maxpool3d": "max_pool",
    "avgpool1d": "avg_pool", "avgpool2d": "avg_pool", "avgpool3d": "avg_pool",
    "adaptivemaxpool1d": "adaptive_max_pool", "adaptivemaxpool2d": "adaptive_max_pool",
    "adaptiveavgpool1d": "adaptive_avg_pool", "adaptiveavgpool2d": "adaptive_avg_pool",
    "batchnorm1d": "batch_norm", "batchnorm2d": "batch_norm", "batchnorm3d": "batch_norm",
    "layernorm": "layer_norm", "groupnorm": "group_norm", "embedding": "embedding",
    "dropout": "dropout", "dropout1d": "dropout", "dropout2d": "dropout", "dropout3d": "dropout",
    "alphadropout": "dropout", "featurealphadropout": "dropout", "rrelu": "rrelu",
    "lstm": "lstm", "gru": "gru", "rnn": "rnn", "multiheadattention": "multihead_attention",
}

RANDOM_OPS = frozenset({
    "randn", "rand", "normal", "bernoulli", "randint", "randperm", "dropout", "multinomial",
    "poisson", "exponential", "uniform", "random", "geometric", "log_normal", "cauchy", "rrelu",
    "gumbel_softmax", "rsample", "sample",
})
# Random ops that draw *noise* a design can call reparameterisation noise (dropout masks are not).
NOISE_OPS = RANDOM_OPS - {"dropout", "randperm", "randint", "rrelu", "multinomial"}

# Ops that only change shape, layout, dtype or autograd bookkeeping: skipped when matching
# formulas and patterns (their output *is* their first operand, as far as values go).
TRANSPARENT_OPS = frozenset({
    "view", "reshape", "squeeze", "unsqueeze", "expand", "expand_as", "contiguous", "flatten",
    "unflatten", "permute", "transpose", "t", "to", "float", "double", "half", "bfloat16", "type",
    "type_as", "clone", "alias", "view_as", "identity", "detach", "detach_copy", "broadcast_to",
    "broadcast", "movedim", "dropout_eval", "getitem_key", "reshape_as", "atleast_1d", "atleast_2d",
    "squeeze_copy", "unsqueeze_copy", "view_copy", "cpu", "cuda", "autograd_function", "passthrough",
})

# Ops whose tensor arguments contribute only their shape/dtype/device, never their values.
SHAPE_ONLY_OPS = frozenset({
    "size", "dim", "numel", "zeros_like", "ones_like", "empty_like", "full_like", "new_zeros",
    "new_ones", "new_empty", "new_full", "new_tensor", "new", "randn", "rand", "randint", "randperm",
    "shape_getitem", "arange", "zeros", "ones", "empty", "full", "eye", "linspace",
})

# Ops whose result shares its first operand's memory (PyTorch views): an in-place op on the result
# writes through to that operand. `getitem` counts when it indexes with slices and ints only.
VIEW_OPS = frozenset({
    "view", "reshape", "flatten", "unflatten", "transpose", "permute", "t", "squeeze", "unsqueeze", "expand",
    "expand_as", "narrow", "select", "diagonal", "view_as", "movedim", "as_strided", "unfold", "swapaxes",
    "getitem", "real", "imag",
})
# Tuple ops whose elements are views of the operand (max's and sort's are not).
VIEW_TUPLE_OPS = frozenset({"chunk", "split", "unbind", "tensor_split", "split_with_sizes", "hsplit", "vsplit",
                            "dsplit"})

# Ops whose result is a tuple; an int index into it selects an element (op "getitem_tuple").
TUPLE_OPS = frozenset({
    "chunk", "split", "unbind", "tensor_split", "split_with_sizes", "max", "min", "sort", "topk",
    "kthvalue", "median", "mode", "std_mean", "var_mean", "aminmax", "broadcast_tensors",
    "meshgrid", "frexp", "unique", "lstm", "gru", "rnn", "multihead_attention", "svd", "qr",
    "eigh", "slogdet", "cummax", "cummin", "hsplit", "vsplit", "dsplit", "native_dropout",
})

# Reflected dunders compute `other OP self`: their operands are swapped.
_REFLECTED = {"radd", "rsub", "rmul", "rdiv", "rtruediv", "rfloordiv", "rpow", "rmatmul", "rmod", "rand",
              "ror", "rxor", "rlshift", "rrshift"}
_DUNDER_INPLACE = {"iadd", "isub", "imul", "idiv", "itruediv", "ifloordiv", "ipow", "imatmul", "imod",
                   "iand", "ior", "ixor"}
_ATEN_OVERLOAD = re.compile(r"\.(default|Tensor|Scalar|int|dim|dim_IntList|using_ints|out|self|"
                            r"Tensor_Tensor|Tensor_Scalar|Scalar_Tensor|correction|names|float)$")


def _split_call_name(name: str) -> tuple[str, bool, bool]:
    """(bare name, reflected, in-place) for a callable's name, e.g. `torch.Tensor.__rsub__`."""
    name = _ATEN_OVERLOAD.sub("", name)
    if name.endswith(".__get__"):  # a Tensor property such as `.T` or `.data`
        name = name[: -len(".__get__")]
    name = name.rsplit(".", 1)[-1]
    reflected = inplace = False
    if name.startswith("__") and name.endswith("__"):
        name = name[2:-2]
        if name in _REFLECTED:
            name, reflected = name[1:], True
        elif name in _DUNDER_INPLACE:
            name, inplace = name[1:], True
    elif name.endswith("_") and not name.startswith("_") and len(name) > 1:
        name, inplace = name[:-1], True
    if name == "rsub":  # torch.rsub(a, b) = b - a
        name, reflected = "sub", True
    return name.lower(), reflected, inplace


def normalise(name: str) -> str:
    """Normalise a callable's name (operator, torch, Tensor method, aten op) to the shared vocabulary."""
    bare, _, _ = _split_call_name(name)
    return _ALIASES.get(bare, bare)


def call_traits(name: str) -> tuple[str, bool, bool]:
    """(op, reflected, in-place): what a capture needs to record one call faithfully."""
    bare, reflected, inplace = _split_call_name(name)
    return _ALIASES.get(bare, bare), reflected, inplace


def normalise_module(module) -> str:
    """Op name of a torch.nn built-in module call: nn.ReLU -> relu, nn.MaxPool1d -> max_pool."""
    name = type(module).__name__.lower()
    return _MODULE_OPS.get(name, _ALIASES.get(name, name))


def is_random(op: str) -> bool:
    return op in RANDOM_OPS


def is_transparent(op: str) -> bool:
    return op in TRANSPARENT_OPS


def is_shape_only(op: str) -> bool:
    return op in SHAPE_ONLY_OPS
