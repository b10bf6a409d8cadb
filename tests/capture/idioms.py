"""The conformance suite's models: one PyTorch idiom from published research code each, with the
answers a faithful capture must give on it.

`Idiom.expect` maps each forward output key to `Expected`: which forward inputs reach it, whether
a random draw reaches it, which modules are on its path (their output reaches it) and which custom
autograd.Functions are on its path. `oracle.py` checks these answers against the model itself
(perturb an input or a module's output, change the seed, see whether the output moves), so an
expectation written here cannot be wrong without a test failing.
"""

from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.autograd import Function, Variable
from torch.utils.checkpoint import checkpoint


@dataclass(frozen=True)
class Expected:
    inputs: frozenset[str]
    random: bool = False
    modules: frozenset[str] | None = None  # None: not asserted
    functions: frozenset[str] = frozenset()


def E(inputs: str = "x", random: bool = False, modules: str | None = None, functions: str = "") -> Expected:
    """Expected answers, written compactly: E("x y", modules="enc head")."""
    return Expected(frozenset(inputs.split()), random, None if modules is None else frozenset(modules.split()),
                    frozenset(functions.split()))


@dataclass(frozen=True)
class Idiom:
    name: str
    build: Callable[[], nn.Module]
    batch: Callable[[], dict]
    expect: dict[str, Expected]
    fx: str = "traces"  # "traces", or "falls back" (fx cannot trace it; the eager recorder must be right)
    perturb: dict[str, Callable] = field(default_factory=dict)  # how to change a non-float input
    seed: int = 0
    slow: bool = False  # seconds, not milliseconds: runs in the slow suite only


def floats(*names: str, shape=(4, 6)) -> Callable[[], dict]:
    def batch() -> dict:
        g = torch.Generator().manual_seed(7)
        return {name: torch.randn(*shape, generator=g) for name in names}
    return batch


def tokens(vocab: int = 10, shape=(4, 5)) -> Callable[[], dict]:
    def batch() -> dict:
        g = torch.Generator().manual_seed(7)
        return {"tok": torch.randint(0, vocab, shape, generator=g)}
    return batch


def next_token(vocab: int = 10):
    return lambda t: (t + 1) % vocab


# ---- custom autograd.Functions ------------------------------------------------------------------
class RevGradFunction(Function):  # the pytorch-revgrad layout: forward returns its input object
    @staticmethod
    def forward(ctx, input_, alpha_):
        ctx.save_for_backward(input_, alpha_)
        output = input_
        return output

    @staticmethod
    def backward(ctx, grad_output):
        _, alpha_ = ctx.saved_tensors
        return -grad_output * alpha_, None


revgrad = RevGradFunction.apply  # bound at import time, as the original package does


class RevGrad(nn.Module):
    def __init__(self, alpha: float = 1.0):
        super().__init__()
        self._alpha = torch.tensor(alpha, requires_grad=False)

    def forward(self, input_):
        return revgrad(input_, self._alpha)


class GradReverseViewAs(Function):  # the DANN layout: x.view_as(x)
    @staticmethod
    def forward(ctx, x, lambd):
        ctx.lambd = lambd
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad.neg() * ctx.lambd, None


class StraightThroughSign(Function):  # binarised networks: sign forward, identity backward
    @staticmethod
    def forward(ctx, x):
        return torch.sign(x)

    @staticmethod
    def backward(ctx, grad):
        return grad


class ScaledProduct(Function):  # two tensor inputs, setup_context style (no ctx in forward)
    @staticmethod
    def forward(a, b):
        return a * b * 2

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        return grad * b * 2, grad * a * 2


class ScaledProductSubclass(ScaledProduct):  # inherits forward: still one Function, one output node
    pass


class DomainAdversarial(nn.Module):
    """Feature extractor, class head, and a domain head behind a gradient-reversal layer."""

    def __init__(self, reversal: nn.Module | None = None, bare: Callable | None = None):
        super().__init__()
        self.feat = nn.Linear(6, 4)
        self.cls = nn.Linear(4, 3)
        self.dom = nn.Linear(4, 2)
        self.grl = reversal
        self.bare = bare

    def forward(self, x):
        z = self.feat(x)
        reversed_z = self.grl(z) if self.grl is not None else self.bare(z)
        return {"cls": self.cls(z), "dom": self.dom(reversed_z)}


class FunctionInModule(nn.Module):
    def __init__(self, function):
        super().__init__()
        self.function = function

    def forward(self, x):
        return self.function(x, 0.5)


class STEBinary(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(6, 6)

    def forward(self, x):
        return self.lin(StraightThroughSign.apply(x))


class TwoInputFunction(nn.Module):
    def forward(self, x, y):
        return {"p": ScaledProduct.apply(x, y), "q": y + 1, "r": ScaledProductSubclass.apply(y, y)}


# ---- Variable, .data, detach, no_grad -----------------------------------------------------------
class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.mu = nn.Linear(6, 3)
        self.logvar = nn.Linear(6, 3)


class VariableNoiseVAE(Encoder):  # the 2017 VAE reparameterisation
    def forward(self, x):
        mu, logvar = self.mu(x), self.logvar(x)
        std = logvar.mul(0.5).exp_()
        eps = Variable(std.data.new(std.size()).normal_())
        return {"z": eps.mul(std).add_(mu), "mu": mu}


class VariableCudaStyleNoise(Encoder):  # `torch.FloatTensor(...).normal_()` wrapped in Variable
    def forward(self, x):
        mu, logvar = self.mu(x), self.logvar(x)
        std = torch.exp(0.5 * logvar)
        eps = Variable(torch.FloatTensor(std.size()).normal_())
        return {"z": mu + eps * std}


class VariableWrappedInput(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(6, 2)

    def forward(self, x, y):
        x = Variable(x, requires_grad=False)
        return {"out": self.lin(x), "y": Variable(y) * 2}


class DataAttribute(nn.Module):  # `.data` to stop gradients: the values still flow
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(6, 6)
        self.b = nn.Linear(6, 2)

    def forward(self, x):
        return {"out": self.b(self.a(x).data)}


class Detached(nn.Module):  # stop-gradient target (BYOL / SimSiam)
    def __init__(self):
        super().__init__()
        self.online = nn.Linear(6, 4)
        self.target = nn.Linear(6, 4)

    def forward(self, x, y):
        return {"loss": (self.online(x) - self.target(y).detach()).pow(2).mean()}


class NoGradTeacher(nn.Module):  # distillation / momentum teacher under torch.no_grad()
    def __init__(self):
        super().__init__()
        self.student = nn.Linear(6, 4)
        self.teacher = nn.Linear(6, 4)

    def forward(self, x):
        with torch.no_grad():
            t = self.teacher(x).softmax(-1)
        return {"kl": F.kl_div(self.student(x).log_softmax(-1), t, reduction="batchmean")}


# ---- in-place ops -------------------------------------------------------------------------------
class RenormWeight(nn.Module):  # NormFace / center-loss style normalised class weights
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(6, 3))

    def forward(self, x):
        w = self.weight.renorm(2, 1, 1e-5).mul(1e5)
        cos = x.mm(w)
        cos.clamp_(-1, 1)
        return {"cos": cos}


class RenormInPlace(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(6, 3))

    def forward(self, x):
        w = self.weight * 1
        w.renorm_(2, 1, 1e-5)
        return {"cos": x.mm(w)}


class AddInPlace(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(6, 6)

    def forward(self, x, y):
        h = self.lin(x)
        h.add_(y)
        h += 1
        return {"h": h}


class MaskedFillInPlace(nn.Module):  # attention scores masked in place
    def forward(self, x, y):
        scores = x @ y.t()
        scores.masked_fill_(y.sum(-1) > 100, float("-inf"))
        return {"attn": scores.softmax(-1)}


class InPlaceOnSlice(nn.Module):  # writes through a view: `h[:, :2].add_(y)` changes h
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(6, 6)

    def forward(self, x, y):
        h = self.lin(x)
        h[:, :2].add_(y[:, :2])
        h.view(-1)[:3].mul_(y[0, 3])
        return {"h": h * 1}


class ScalarFromItem(nn.Module):  # a statistic read with .item() and used as a Python float
    def forward(self, x, y):
        scale = y.abs().mean().item()
        return {"out": x * scale}


class InPlaceReLU(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(6, 6)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        h = self.lin(x)
        self.act(h)
        return {"h": h}


# ---- torch.distributions and random draws --------------------------------------------------------
class DistRsample(Encoder):
    def forward(self, x):
        q = torch.distributions.Normal(self.mu(x), self.logvar(x).mul(0.5).exp())
        return {"z": q.rsample(), "mu": q.mean}


class DistSample(nn.Module):  # REINFORCE: a Bernoulli sample, values depend on the logits
    def __init__(self):
        super().__init__()
        self.policy = nn.Linear(6, 3)

    def forward(self, x):
        action = torch.distributions.Bernoulli(logits=self.policy(x)).sample()
        return {"action": action}


class DistLogProb(Encoder):
    def forward(self, x, y):
        dist = torch.distributions.Normal(self.mu(x), self.logvar(x).exp())
        return {"nll": -dist.log_prob(y[:, :3]).sum(-1)}


class RandnLike(Encoder):
    def forward(self, x):
        mu, logvar = self.mu(x), self.logvar(x)
        std = torch.exp(0.5 * logvar)
        return {"z": mu + torch.randn_like(std) * std, "mu": mu}


class FixedShapeNoise(nn.Module):  # noise of a hard-coded shape: fx would run torch.randn once
    def forward(self, x):
        return {"out": x + 0.1 * torch.randn(4, 6), "scaled": x * torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])}


class GumbelSoftmax(nn.Module):
    def __init__(self):
        super().__init__()
        self.logits = nn.Linear(6, 5)

    def forward(self, x):
        return {"y": F.gumbel_softmax(self.logits(x), tau=0.5)}


class BernoulliMask(nn.Module):  # stochastic depth / DropConnect mask drawn by hand
    def __init__(self):
        super().__init__()
        self.block = nn.Linear(6, 6)

    def forward(self, x):
        keep = torch.bernoulli(torch.full(x.shape, 0.5))
        return {"out": x + self.block(x) * keep}


class FunctionalDropout(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(6, 6)

    def forward(self, x):
        return {"out": F.dropout(self.lin(x), p=0.5, training=self.training), "clean": x * 2}


# ---- control flow -------------------------------------------------------------------------------
class AssertInForward(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(6, 2)

    def forward(self, x):
        assert x.dim() == 2, "expects (batch, features)"
        return {"out": self.lin(x)}


class DimBranch(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(6, 2)

    def forward(self, x):
        if x.dim() > 2:
            x = x.flatten(1)
        return {"out": self.lin(x)}


class DataDependentBranch(nn.Module):
    def __init__(self):
        super().__init__()
        self.pos = nn.Linear(6, 2)
        self.neg = nn.Linear(6, 2)

    def forward(self, x, y):
        if x.mean() > -10:  # taken on every batch the suite uses
            return {"out": self.pos(x) + y[:, :2]}
        return {"out": self.neg(x)}


class LoopOverLayers(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(6, 6) for _ in range(3))
        self.head = nn.ModuleDict({"a": nn.Linear(6, 2), "b": nn.Linear(6, 1)})

    def forward(self, x):
        for layer in self.layers:
            x = torch.tanh(layer(x))
        return {"a": self.head["a"](x), "b": self.head["b"](x)}


# ---- module structure ---------------------------------------------------------------------------
class WeightSharing(nn.Module):  # a siamese encoder called on both views
    def __init__(self):
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(6, 4), nn.ReLU())
        self.head = nn.Linear(4, 1)

    def forward(self, x, y):
        return {"sim": self.head(self.enc(x) * self.enc(y)), "zx": self.enc(x)}


def _add_noise_hook(module, inputs, output):
    return output + torch.randn_like(output)


def _mix_hook(module, inputs, output):
    return output * 2


class ForwardHooks(nn.Module):  # hooks registered by the model itself change what forward computes
    def __init__(self):
        super().__init__()
        self.noisy = nn.Linear(6, 3)
        self.scaled = nn.Linear(6, 3)
        self.noisy.register_forward_hook(_add_noise_hook)
        self.scaled.register_forward_hook(_mix_hook)

    def forward(self, x):
        return {"noisy": self.noisy(x), "scaled": self.scaled(x)}


class TensorGradHook(nn.Module):  # `x.register_hook(lambda g: -g)`: a gradient hook, values unchanged
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(6, 2)

    def forward(self, x):
        h = x * 1
        if h.requires_grad:
            h.register_hook(lambda grad: -grad)
        return {"out": self.lin(h)}


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 6), nn.GELU())

    def forward(self, x):
        return x + self.net(x)


class Checkpointed(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Block()
        self.head = nn.Linear(6, 2)

    def forward(self, x):
        return {"out": self.head(checkpoint(self.block, x, use_reentrant=False))}


class CompiledSubmodule(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = torch.compile(Block())
        self.head = nn.Linear(6, 2)

    def forward(self, x):
        return {"out": self.head(self.block(x))}


class Disabled(nn.Module):  # a component switched off by configuration returns its input
    def forward(self, x):
        return x


class PassThroughModules(nn.Module):
    def __init__(self):
        super().__init__()
        self.feat = nn.Linear(6, 4)
        self.bottleneck = Disabled()
        self.skip = nn.Identity()
        self.cls = nn.Linear(4, 3)
        self.aux = nn.Linear(4, 2)

    def forward(self, x):
        z = self.feat(x)
        return {"cls": self.cls(z), "aux": self.aux(self.skip(self.bottleneck(z)))}


# ---- attention, einsum -------------------------------------------------------------------------
class MultiheadSelfAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(6, 2, batch_first=True)

    def forward(self, x, pad):
        out, _ = self.attn(x, x, x, key_padding_mask=pad, need_weights=False)
        return {"out": out}


def attention_batch() -> dict:
    g = torch.Generator().manual_seed(7)
    pad = torch.zeros(2, 5, dtype=torch.bool)
    pad[:, -1] = True
    return {"x": torch.randn(2, 5, 6, generator=g), "pad": pad}


def flip_last_key_but_one(pad):
    pad = pad.clone()
    pad[:, -2] = ~pad[:, -2]
    return pad


class ScaledDotProductAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.qkv = nn.Linear(6, 18)

    def forward(self, x, pad):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        mask = ~pad[:, None, :]
        return {"out": F.scaled_dot_product_attention(q, k, v, attn_mask=mask)}


class Einsum(nn.Module):
    def forward(self, x, y):
        return {"outer": torch.einsum("bi,bj->bij", x, y), "trace": torch.einsum("bi,bi->b", x, x)}


# ---- selections --------------------------------------------------------------------------------
class ChunkSplitUnbind(nn.Module):
    def forward(self, x):
        a, b = x.chunk(2, dim=-1)
        c, d = x.split([3, 3], dim=-1)
        first = x.unbind(0)[0]
        return {"a": a * 1, "b": b + d, "c": c.sum(-1), "first": first}


class StarUnpacking(nn.Module):  # `first, *rest = ...`: fx cannot iterate a proxy of unknown length
    def forward(self, x):
        first, *rest = x.unbind(0)
        return {"first": first, "last": rest[-1] * 2}


class Indexing(nn.Module):
    def forward(self, x, y):
        return {"col": x[:, 0], "tail": x[..., 1:] * y[:, 1:], "row": y[1]}


class TupleOfOutputs(nn.Module):  # an LSTM's (out, (h, c)) and a tuple return
    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(6, 4, batch_first=True)

    def forward(self, x, y):
        out, (h, c) = self.rnn(x)
        return out[:, -1], h[-1] + y[:, 0, :4]


def sequence_batch() -> dict:
    g = torch.Generator().manual_seed(7)
    return {"x": torch.randn(3, 5, 6, generator=g), "y": torch.randn(3, 5, 6, generator=g)}


class ListOutput(nn.Module):
    def forward(self, x, y):
        return [x * 2, [y + 1, x + y]]


@dataclass
class HeadsOutput:
    logits: torch.Tensor
    embedding: torch.Tensor


class DataclassOutput(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = nn.Linear(6, 4)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        e = self.enc(x)
        return HeadsOutput(logits=self.head(e), embedding=e)


Posterior = namedtuple("Posterior", ["mu", "logvar"])


class NamedTupleOutput(Encoder):
    def forward(self, x):
        return Posterior(self.mu(x), self.logvar(x))


class NestedDictOutput(nn.Module):
    def forward(self, x, y):
        return {"pred": {"x": x.exp(), "y": y.abs()}, "both": (x * y,)}


# ---- buffers, embeddings, integer inputs -------------------------------------------------------
class RunningStats(nn.Module):  # BatchNorm running stats and a DINO-style centre updated in forward
    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm1d(6)
        self.register_buffer("center", torch.zeros(1, 6))

    def forward(self, x):
        h = self.bn(x)
        out = (h - self.center).softmax(-1)
        self.center.mul_(0.9).add_(h.detach().mean(0, keepdim=True), alpha=0.1)
        return {"out": out}


class EmbeddingTokens(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 6)
        self.head = nn.Linear(6, 10)

    def forward(self, tok):
        return {"logits": self.head(self.emb(tok).mean(1))}


class OneHotTokens(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Parameter(torch.randn(10, 4))

    def forward(self, tok):
        return {"h": F.one_hot(tok, 10).float() @ self.proj}


class PositionsFromTokens(nn.Module):  # positions built with arange from a shape: no data from tok
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 6)
        self.pos = nn.Embedding(8, 6)

    def forward(self, tok):
        positions = torch.arange(tok.size(1))
        return {"h": self.emb(tok) + self.pos(positions), "p": self.pos(positions)}


class Where(nn.Module):
    def forward(self, x, y):
        return {"out": torch.where(x > 0, x, y), "cond_only": torch.where(x > 0, 1.0, 0.0)}


class ScatterGather(nn.Module):
    def forward(self, x, idx):
        picked = x.gather(1, idx)
        summed = torch.zeros_like(x).scatter_add_(1, idx, picked)
        return {"picked": picked, "summed": summed}


def index_batch() -> dict:
    g = torch.Generator().manual_seed(7)
    return {"x": torch.randn(4, 6, generator=g), "idx": torch.randint(0, 6, (4, 3), generator=g)}


class NewZerosConcat(nn.Module):  # padding built from the input's shape carries no data
    def forward(self, x):
        pad = x.new_zeros(x.size(0), 2)
        ones = torch.ones_like(x)
        return {"padded": torch.cat([x, pad], dim=-1), "ones": ones + 1}


class DirectParameters(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(6, 3))
        self.b = nn.Parameter(torch.zeros(3))

    def forward(self, x):
        return {"out": x @ self.w + self.b}


def _custom_op():
    """`torch.library.custom_op` (PyTorch >= 2.4): an opaque kernel both captures see as one call."""
    if not hasattr(torch.library, "custom_op"):
        return None

    @torch.library.custom_op("alignguard_conformance::scaled_tanh", mutates_args=())
    def scaled_tanh(x: torch.Tensor, scale: float) -> torch.Tensor:
        return torch.tanh(x) * scale

    @scaled_tanh.register_fake
    def _(x, scale):
        return torch.empty_like(x)

    return scaled_tanh


scaled_tanh = _custom_op()


class LibraryOp(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(6, 6)

    def forward(self, x, y):
        return {"out": scaled_tanh(self.lin(x), 2.0), "y": y * 3}


IDIOMS = [
    Idiom("revgrad_module", lambda: DomainAdversarial(reversal=RevGrad()), floats("x"),
          {"cls": E(modules="feat cls"), "dom": E(modules="feat grl dom", functions="RevGradFunction")}),
    Idiom("revgrad_bare", lambda: DomainAdversarial(bare=lambda z: revgrad(z, torch.tensor(1.0))), floats("x"),
          {"cls": E(modules="feat cls"), "dom": E(modules="feat dom", functions="RevGradFunction")}),
    Idiom("grl_view_as_in_module", lambda: FunctionInModule(GradReverseViewAs.apply), floats("x"),
          {"output": E(functions="GradReverseViewAs")}),
    Idiom("straight_through_sign", STEBinary, floats("x"),
          {"output": E(modules="lin", functions="StraightThroughSign")}),
    Idiom("function_two_inputs", TwoInputFunction, floats("x", "y"),
          {"p": E("x y", functions="ScaledProduct"), "q": E("y"), "r": E("y", functions="ScaledProductSubclass")}),
    Idiom("variable_data_new_normal", VariableNoiseVAE, floats("x"),
          {"z": E(random=True, modules="mu logvar"), "mu": E(modules="mu")}, fx="falls back"),
    Idiom("variable_floattensor_normal", VariableCudaStyleNoise, floats("x"),
          {"z": E(random=True, modules="mu logvar")}, fx="falls back"),
    Idiom("variable_wrapped_inputs", VariableWrappedInput, floats("x", "y"),
          {"out": E(modules="lin"), "y": E("y")}, fx="falls back"),
    Idiom("data_attribute", DataAttribute, floats("x"), {"out": E(modules="a b")}),
    Idiom("detach_target", Detached, floats("x", "y"), {"loss": E("x y", modules="online target")}),
    Idiom("no_grad_teacher", NoGradTeacher, floats("x"), {"kl": E(modules="student teacher")}),
    Idiom("renorm_weight", RenormWeight, floats("x"), {"cos": E()}),
    Idiom("renorm_in_place", RenormInPlace, floats("x"), {"cos": E()}),
    Idiom("add_in_place", AddInPlace, floats("x", "y"), {"h": E("x y", modules="lin")}),
    Idiom("masked_fill_in_place", MaskedFillInPlace, floats("x", "y"), {"attn": E("x y")}),
    Idiom("inplace_on_slice", InPlaceOnSlice, floats("x", "y"), {"h": E("x y", modules="lin")}),
    Idiom("scalar_from_item", ScalarFromItem, floats("x", "y"), {"out": E("x y")}),
    Idiom("inplace_relu_module", InPlaceReLU, floats("x"), {"h": E(modules="lin act")}),
    Idiom("distribution_rsample", DistRsample, floats("x"),
          {"z": E(random=True, modules="mu logvar"), "mu": E(modules="mu")}, fx="falls back"),
    Idiom("distribution_sample", DistSample, floats("x"), {"action": E(random=True, modules="policy")},
          fx="falls back"),
    Idiom("distribution_log_prob", DistLogProb, floats("x", "y"), {"nll": E("x y", modules="mu logvar")}),
    Idiom("randn_like", RandnLike, floats("x"), {"z": E(random=True, modules="mu logvar"), "mu": E(modules="mu")}),
    Idiom("fixed_shape_noise", FixedShapeNoise, floats("x"), {"out": E(random=True), "scaled": E()},
          fx="falls back"),
    Idiom("gumbel_softmax", GumbelSoftmax, floats("x"), {"y": E(random=True, modules="logits")}),
    Idiom("bernoulli_mask", BernoulliMask, floats("x"), {"out": E(random=True, modules="block")}),
    Idiom("functional_dropout", FunctionalDropout, floats("x"),
          {"out": E(random=True, modules="lin"), "clean": E()}),
    Idiom("assert_in_forward", AssertInForward, floats("x"), {"out": E(modules="lin")}, fx="falls back"),
    Idiom("dim_branch", DimBranch, floats("x"), {"out": E(modules="lin")}, fx="falls back"),
    Idiom("data_dependent_branch", DataDependentBranch, floats("x", "y"), {"out": E("x y", modules="pos")},
          fx="falls back"),
    Idiom("module_list_and_dict", LoopOverLayers, floats("x"),
          {"a": E(modules="layers layers.0 layers.1 layers.2 head head.a"),
           "b": E(modules="layers layers.0 layers.1 layers.2 head head.b")}),
    Idiom("weight_sharing", WeightSharing, floats("x", "y"),
          {"sim": E("x y", modules="enc enc.0 enc.1 head"), "zx": E(modules="enc enc.0 enc.1")}),
    Idiom("forward_hooks", ForwardHooks, floats("x"),
          {"noisy": E(random=True, modules="noisy"), "scaled": E(modules="scaled")}, fx="falls back"),
    Idiom("pass_through_modules", PassThroughModules, floats("x"),
          {"cls": E(modules="feat cls"), "aux": E(modules="feat bottleneck skip aux")}),
    Idiom("tensor_register_hook", TensorGradHook, floats("x"), {"out": E(modules="lin")}, fx="falls back"),
    Idiom("checkpoint", Checkpointed, floats("x"),  # non-reentrant checkpoint imports dynamo: seconds
          {"out": E(modules="block block.net block.net.0 block.net.1 head")}, slow=True),
    Idiom("compiled_submodule", CompiledSubmodule, floats("x"),  # torch.compile imports dynamo: seconds
          {"out": E(modules="block block.net block.net.0 block.net.1 head")}, slow=True),
    Idiom("multihead_attention_padding_mask", MultiheadSelfAttention, attention_batch,
          {"out": E("x pad", modules="attn")}, perturb={"pad": flip_last_key_but_one}),
    Idiom("sdpa_with_mask", ScaledDotProductAttention, attention_batch, {"out": E("x pad", modules="qkv")},
          perturb={"pad": flip_last_key_but_one}),
    Idiom("einsum", Einsum, floats("x", "y"), {"outer": E("x y"), "trace": E("x")}),
    Idiom("chunk_split_unbind", ChunkSplitUnbind, floats("x"),
          {"a": E(), "b": E(), "c": E(), "first": E()}),
    Idiom("star_unpacking", StarUnpacking, floats("x"), {"first": E(), "last": E()}, fx="falls back"),
    Idiom("indexing", Indexing, floats("x", "y"), {"col": E(), "tail": E("x y"), "row": E("y")}),
    Idiom("lstm_tuple_output", TupleOfOutputs, sequence_batch, {"0": E(modules="rnn"), "1": E("x y", modules="rnn")}),
    Idiom("list_output", ListOutput, floats("x", "y"), {"0": E(), "1.0": E("y"), "1.1": E("x y")}),
    Idiom("dataclass_output", DataclassOutput, floats("x"),
          {"logits": E(modules="enc head"), "embedding": E(modules="enc")}),
    Idiom("namedtuple_output", NamedTupleOutput, floats("x"), {"mu": E(modules="mu"), "logvar": E(modules="logvar")}),
    Idiom("nested_dict_output", NestedDictOutput, floats("x", "y"),
          {"pred.x": E(), "pred.y": E("y"), "both.0": E("x y")}),
    Idiom("running_stats_buffers", RunningStats, floats("x"), {"out": E(modules="bn")}),
    Idiom("embedding_tokens", EmbeddingTokens, tokens(), {"logits": E("tok", modules="emb head")},
          perturb={"tok": next_token()}),
    Idiom("one_hot_tokens", OneHotTokens, tokens(), {"h": E("tok")}, perturb={"tok": next_token()}),
    Idiom("positions_from_shape", PositionsFromTokens, tokens(),
          {"h": E("tok", modules="emb pos"), "p": E("", modules="pos")}, perturb={"tok": next_token()}),
    Idiom("where", Where, floats("x", "y"), {"out": E("x y"), "cond_only": E("x")}),
    Idiom("scatter_gather", ScatterGather, index_batch, {"picked": E("x idx"), "summed": E("x idx")},
          perturb={"idx": lambda i: (i + 1) % 6}),
    Idiom("new_zeros_and_ones_like", NewZerosConcat, floats("x"), {"padded": E(), "ones": E("")}),
    Idiom("direct_parameters", DirectParameters, floats("x"), {"out": E()}),
]
if scaled_tanh is not None:
    IDIOMS.append(Idiom("torch_library_custom_op", LibraryOp, floats("x", "y"),
                        {"out": E(modules="lin"), "y": E("y")}))

BY_NAME = {idiom.name: idiom for idiom in IDIOMS}
