"""`torchrun --nproc-per-node 2 -m alignguard train ...` on CPU with gloo: DDP end to end.

About 15-25 s on two busy cores (two torch imports, the gate, 21 steps), so it is not marked slow
and runs in CI with the fast suite."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from alignguard.train.checkpoint import load_checkpoint
from alignguard.train.records import read_records

from tests.train.conftest import TINY_MODEL, TINY_SPEC
from tests.train.test_cli import REPO, TINY_DATA


def test_two_gloo_processes_train_one_model_and_only_rank_0_writes(tmp_path):
    config = tmp_path / "ddp.yaml"
    config.write_text(json.dumps({
        "epochs": 3, "batch_size": 32, "eval_batch_size": 64, "threads": 1, "checkpoint_every_steps": 4,
        "monitor": {"every_steps": 3, "live": "off", "tensorboard": False, "probe_examples": 60},
        "data": {"synth": TINY_DATA, "cache_dir": str(tmp_path / "cache")}}))
    out = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "alignguard", "train", str(TINY_SPEC), str(TINY_MODEL), "--config", str(config),
               "--out", str(out)]
    # Own process group, so a hang cannot leave orphaned workers behind.
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail("torchrun did not finish in 300 s:\n" + stdout[-2000:] + stderr[-2000:])
    assert process.returncode == 0, stdout[-3000:] + stderr[-3000:]
    assert stdout.count("design check passed") == 1  # the gate runs once, on rank 0
    run = json.loads((out / "run.json").read_text())
    assert run["distributed"] == {"world": 2, "backend": "gloo"}
    records = read_records(out / "metrics.jsonl")
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [0, 1, 2]  # one record per epoch: rank 1 writes nothing
    # 240 training examples per rank-pair -> 7 steps per rank per epoch of 32; validation is the whole split.
    assert epochs[-1]["step"] == 21
    assert epochs[-1]["val"]["pooled"]["examples"] == run["data"]["splits"]["val"]["examples"]
    steps = [r["step"] for r in records if r["kind"] == "step"]
    assert steps == sorted(set(steps)) and all(r.get("grad_share") for r in records if r["kind"] == "step")
    assert load_checkpoint(out / "checkpoints" / "last.pt")["world"] == 2
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["best.pt", "last.pt"]
