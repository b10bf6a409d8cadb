"""The whole `alignguard check` on large encoders: a ResNet-50-sized CNN and a 12-layer transformer.

Each model is CMDN-shaped around a big invariant encoder: encoder(x) -> Gaussian bottleneck
(z = mu + sigma * eps while training) -> energy U -> logit = (M(c) * U + B(c)) / T(c), with a small
modulator on a context vector c. The script writes both model files and one small spec to a temp
folder, runs the real CLI (`alignguard check SPEC MODEL --format json`) on each, and prints the
wall time, the graph size, the parameter count and the slowest phases. Every check family runs:
structure, gradients and probes.

    python benchmarks/large_models.py [--image 64] [--tokens 64] [--batch 4] [--only resnet50|transformer]

Inputs are kept small (64x64 images, 64 tokens) so that a run takes a few minutes on 2 CPU cores;
the graph, and so the structural analysis, does not depend on the input size. Findings are
printed, not fatal: exits 0 when both checks ran (verdict 0 or 1), 2 when one could not run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

HEAD = '''
import torch
import torch.nn.functional as F
from torch import nn

CONTEXT_DIM = 8
BETA = 1e-3


class Bottleneck(nn.Module):
    def __init__(self, width, z_dim=32):
        super().__init__()
        self.mu_head, self.logvar_head = nn.Linear(width, z_dim), nn.Linear(width, z_dim)

    def forward(self, h):
        mu, logvar = self.mu_head(h), self.logvar_head(h)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu) if self.training else mu
        return z, mu, logvar


class Modulator(nn.Module):
    """psi(c) -> (M, B, T), identifiable as models/cmdn.py makes it: c = descriptor + accessibility (last
    column); M sees the descriptor only, T the accessibility only and is 1 at a reference accessibility, B
    both. (M, B, T) -> k(c)*(M, B, T) would otherwise predict the same (the identifiability check)."""

    def __init__(self, hidden=32):
        super().__init__()
        self.concentration = nn.Sequential(nn.Linear(CONTEXT_DIM - 1, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.shift = nn.Sequential(nn.Linear(CONTEXT_DIM, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.sharpness = nn.Sequential(nn.Linear(1, hidden), nn.ReLU(), nn.Linear(hidden, 1, bias=False))  # a bias cancels in T

    def forward(self, c):
        descriptor, access = c[:, :-1], c[:, -1:]
        m = F.softplus(self.concentration(descriptor)).squeeze(-1) + 1e-3
        b = self.shift(c).squeeze(-1)
        log_t = self.sharpness(access) - self.sharpness(torch.zeros_like(access[:1]))
        return m, b, 0.05 + torch.exp(log_t.squeeze(-1))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = Encoder()
        self.bottleneck = Bottleneck(self.encoder.width)
        self.energy = nn.Linear(32, 1)
        self.modulator = Modulator()

    def forward(self, x, c):
        z_I, mu, logvar = self.bottleneck(self.encoder(x))
        U_I = self.energy(z_I).squeeze(-1)
        M, B, T = self.modulator(c)
        return {"logit": (M * U_I + B) / T, "z_I": z_I, "mu": mu, "logvar": logvar,
                "U_I": U_I, "M": M, "B": B, "T": T}


def build_model():
    return Net()


def loss_terms(model, batch, outputs, step):
    kl = 0.5 * (outputs["mu"].pow(2) + outputs["logvar"].exp() - 1 - outputs["logvar"]).sum(-1).mean()
    return {"bce": F.binary_cross_entropy_with_logits(outputs["logit"], batch["y"]), "kl": BETA * kl}
'''

RESNET50 = '''
SIZE = {image}


class Block(nn.Module):
    """ResNet bottleneck block: 1x1 reduce, 3x3, 1x1 expand (x4), projection shortcut when needed."""

    def __init__(self, inp, width, stride):
        super().__init__()
        out = width * 4
        self.conv1, self.bn1 = nn.Conv2d(inp, width, 1, bias=False), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width)
        self.conv3, self.bn3 = nn.Conv2d(width, out, 1, bias=False), nn.BatchNorm2d(out)
        self.shortcut = (nn.Sequential(nn.Conv2d(inp, out, 1, stride, bias=False), nn.BatchNorm2d(out))
                         if stride != 1 or inp != out else nn.Identity())

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = F.relu(self.bn2(self.conv2(h)))
        return F.relu(self.bn3(self.conv3(h)) + self.shortcut(x))


class Encoder(nn.Module):
    """ResNet-50 layout: stem, stages of 3, 4, 6, 3 bottleneck blocks (widths 64..512), global pool."""

    width = 2048

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                                  nn.MaxPool2d(3, 2, 1))
        stages, inp = [], 64
        for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            layers = []
            for i in range(blocks):
                layers.append(Block(inp, width, stride if i == 0 else 1))
                inp = width * 4
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)

    def forward(self, x):
        return self.stages(self.stem(x)).mean(dim=(2, 3))


def example_batch(batch_size, seed):
    g = torch.Generator().manual_seed(seed)
    return {{"x": torch.randn(batch_size, 3, SIZE, SIZE, generator=g),
            "c": torch.randn(batch_size, CONTEXT_DIM, generator=g),
            "y": (torch.arange(batch_size) % 2).float()}}
'''

TRANSFORMER = '''
TOKENS, VOCAB, WIDTH, LAYERS, HEADS = {tokens}, 1000, 256, 12, 8


class Layer(nn.Module):
    """Pre-norm transformer layer: self-attention (scaled_dot_product_attention) and a 4x MLP."""

    def __init__(self):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(WIDTH), nn.LayerNorm(WIDTH)
        self.qkv, self.proj = nn.Linear(WIDTH, 3 * WIDTH), nn.Linear(WIDTH, WIDTH)
        self.mlp = nn.Sequential(nn.Linear(WIDTH, 4 * WIDTH), nn.GELU(), nn.Linear(4 * WIDTH, WIDTH))

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(b, n, 3, HEADS, d // HEADS).permute(2, 0, 3, 1, 4).unbind(0)
        attention = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d)
        x = x + self.proj(attention)
        return x + self.mlp(self.norm2(x))


class Encoder(nn.Module):
    """12-layer transformer encoder over token ids, mean-pooled."""

    width = WIDTH

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, WIDTH)
        self.position = nn.Parameter(torch.randn(1, TOKENS, WIDTH) * 0.02)
        self.layers = nn.Sequential(*[Layer() for _ in range(LAYERS)])
        self.norm = nn.LayerNorm(WIDTH)

    def forward(self, x):
        return self.norm(self.layers(self.embed(x) + self.position)).mean(dim=1)


def example_batch(batch_size, seed):
    g = torch.Generator().manual_seed(seed)
    return {{"x": torch.randint(0, VOCAB, (batch_size, TOKENS), generator=g),
            "c": torch.randn(batch_size, CONTEXT_DIM, generator=g),
            "y": (torch.arange(batch_size) % 2).float()}}
'''

SPEC = """
version: 1
name: large-{name}
entry_points: {{batch_size: {batch}, seed: 0}}
inputs: {{x: {{role: invariant}}, c: {{role: context, parts: {{descriptor: "[:, :-1]", accessibility: "[:, -1]"}}}}}}
symbols: {{z_I: z_I, mu: mu, U_I: U_I, M: M, B: B, T: T, logit: logit}}
components:
  encoder: {{module: encoder, reaches: [z_I, logit]}}
  bottleneck:
    module: bottleneck
    reaches: [z_I, U_I]
    stochastic: {{symbol: z_I, through_scale: true, eval: deterministic}}
  energy: {{module: energy, reaches: [U_I, logit]}}
  modulator: {{module: modulator, reaches: [M, B, T, logit]}}
flow:
  required: [{{from: x, via: [z_I, U_I], to: logit}}, {{from: descriptor, to: M}}, {{from: accessibility, to: T}}]
  forbidden: [{{from: c, to: z_I}}, {{from: c, to: U_I}}, {{from: accessibility, to: M}}, {{from: descriptor, to: T}}]
formulas: [{{equation: logit = (M * U_I + B) / T}}]
forbidden_patterns: [{{name: additive_head, kind: additive_mix, ops: [add, sub], left: x, right: c, on_path_to: logit}}]
losses:
  bce: {{min_share: 0.2, reaches: [encoder, bottleneck, energy, modulator]}}
  kl: {{min_share: -0.05, min_norm_ratio: 1.0e-6, reaches: [bottleneck, encoder]}}
gradients: {{batches: 2, min_cosine: -0.9, min_net_ratio: 0.3}}
probes:
  noise: {{symbol: z_I, eval: deterministic}}
  swap_invariance: {{symbol: z_I, context: c, gradient: true}}
  modulation: {{output: logit, energy: U_I, context: c, min_relative_spread: 0.01}}
  positivity: {{symbols: [M, T], trials: 256, scale: 100.0}}
  translation_symmetry: {{shift: U_I, output: logit, delta: 1.0}}
"""


def write_case(folder: Path, name: str, encoder: str, batch: int) -> tuple[Path, Path]:
    model, spec = folder / f"{name}.py", folder / f"{name}.yaml"
    model.write_text(HEAD.replace("class Net", encoder + "\n\nclass Net", 1))
    spec.write_text(SPEC.format(name=name, batch=batch))
    return spec, model


def graph_facts(model_path: Path, batch: int) -> tuple[int, int, float, str]:
    """Parameters, captured graph nodes, capture seconds and capture mode (in this process)."""
    from alignguard.graph.capture import capture_graph
    from alignguard.modelfile.loader import load_model_file
    from alignguard.spec.model import EntryPoints

    model_file = load_model_file(model_path, EntryPoints(batch_size=batch, seed=0))
    model = model_file.build()
    start = time.perf_counter()
    graph = capture_graph(model, model_file.batch(model, batch, 0))
    elapsed = time.perf_counter() - start
    return sum(p.numel() for p in model.parameters()), len(graph), elapsed, getattr(graph, "capture", "")


def check(spec: Path, model: Path) -> tuple[float, dict, int]:
    script = Path(sys.executable).with_name("alignguard")
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "alignguard"]
    start = time.perf_counter()
    result = subprocess.run([*argv, "check", str(spec), str(model), "--format", "json"],
                            capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode not in (0, 1):
        raise SystemExit(f"alignguard check {model.name} exited {result.returncode}:\n{result.stderr[-3000:]}")
    return elapsed, json.loads(result.stdout), result.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=int, default=64, help="Image side for the CNN.")
    parser.add_argument("--tokens", type=int, default=64, help="Sequence length for the transformer.")
    parser.add_argument("--batch", type=int, default=4, help="The spec's example batch size.")
    parser.add_argument("--only", choices=("resnet50", "transformer"))
    args = parser.parse_args()

    import torch

    print(f"machine: {os.cpu_count()} CPU cores, torch {torch.__version__}, "
          f"CUDA {'available' if torch.cuda.is_available() else 'not available'}; "
          f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    cases = {"resnet50": RESNET50.format(image=args.image), "transformer": TRANSFORMER.format(tokens=args.tokens)}
    with tempfile.TemporaryDirectory(prefix="alignguard-large-") as tmp:
        for name, encoder in cases.items():
            if args.only and name != args.only:
                continue
            spec, model = write_case(Path(tmp), name, encoder, args.batch)
            params, nodes, capture_s, mode = graph_facts(model, args.batch)
            wall, report, code = check(spec, model)
            counts, timings = report["counts"], report.get("timings", {})
            slowest = sorted(((k, v) for k, v in timings.items() if k != "total"), key=lambda kv: -kv[1])[:5]
            print(f"\n{name}: {params / 1e6:.1f}M parameters, {nodes} graph nodes ({mode}; capture {capture_s:.2f} s "
                  f"in-process)")
            total = timings.get("total", float("nan"))
            print(f"  alignguard check: {wall:.1f} s wall (in-process total {total:.1f} s), "
                  f"exit {code}: {counts['pass']} passed, {counts['fail']} failed, {counts['error']} errors")
            print("  slowest phases (they nest): " + ", ".join(f"{k} {v:.1f} s" for k, v in slowest))
            for result in report["results"]:
                if result["status"] in ("fail", "error"):
                    print(f"  {result['status'].upper()} {result['check_id']} {result['element']}: {result['found']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
