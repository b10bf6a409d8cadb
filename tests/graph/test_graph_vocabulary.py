"""One op vocabulary for every capture."""

import operator

import pytest
import torch

from alignguard.graph.vocabulary import call_traits, is_random, is_transparent, normalise, normalise_module


@pytest.mark.parametrize("name", ["mul", "operator.mul", "torch.mul", "torch.Tensor.mul", "aten.mul.Tensor",
                                  "aten::mul.Scalar", "torch.Tensor.__mul__", "torch.Tensor.__rmul__",
                                  "torch.Tensor.mul_", "multiply", "__imul__"])
def test_mul_synonyms(name):
    assert normalise(name.replace("::", ".")) == "mul"


@pytest.mark.parametrize("name,op", [("truediv", "div"), ("torch.Tensor.__rtruediv__", "div"),
                                     ("aten.div.Tensor", "div"), ("torch.true_divide", "div"),
                                     ("torch.rsub", "sub"), ("torch.Tensor.__rsub__", "sub"),
                                     ("subtract", "sub"), ("operator.neg", "neg"), ("torch.Tensor.exp", "exp"),
                                     ("torch.nn.functional.softplus", "softplus"), ("randn_like", "randn"),
                                     ("torch.Tensor.normal_", "normal"), ("aten.bernoulli.default", "bernoulli"),
                                     ("torch.Tensor.T.__get__", "t"), ("torch._C._nn.linear", "linear")])
def test_other_synonyms(name, op):
    assert normalise(name) == op


def test_call_traits_mark_reflected_and_inplace():
    assert call_traits("torch.Tensor.__rsub__") == ("sub", True, False)
    assert call_traits("torch.rsub") == ("sub", True, False)
    assert call_traits("torch.Tensor.add_") == ("add", False, True)
    assert call_traits("__iadd__") == ("add", False, True)
    assert call_traits(operator.mul.__name__) == ("mul", False, False)
    assert call_traits("relu") == ("relu", False, False)  # not mistaken for a reflected `elu`


@pytest.mark.parametrize("module,op", [(torch.nn.ReLU(), "relu"), (torch.nn.Softplus(), "softplus"),
                                       (torch.nn.Conv1d(1, 1, 1), "conv"), (torch.nn.LogSigmoid(), "logsigmoid"),
                                       (torch.nn.Flatten(), "flatten"), (torch.nn.Dropout(), "dropout")])
def test_module_ops(module, op):
    assert normalise_module(module) == op


def test_kinds():
    assert is_random("randn") and is_random("normal") and is_random("dropout") and not is_random("relu")
    assert all(is_transparent(op) for op in ("view", "reshape", "squeeze", "unsqueeze", "expand", "contiguous",
                                             "float", "to", "detach"))
    assert not is_transparent("getitem") and not is_transparent("add")
