"""Config precedence, device/AMP decisions, metrics, probes and monitoring alarms (no training)."""

from __future__ import annotations

import errno
import math

import numpy as np
import pytest
import torch

from alignguard.errors import CheckpointError, NonFiniteLossError, UsageError
from alignguard.train import checkpoint as ckpt
from alignguard.train.config import (StageConfig, build_config, config_differences, curriculum_from_model_file,
                                     parse_assignment)
from alignguard.train.curriculum import allocate
from alignguard.train.data import EpochBatches
from alignguard.train.device import HardwareFacts, choose_device, choose_precision, default_workers, seed_everything
from alignguard.train.display import live_enabled
from alignguard.train.metrics import binary_metrics, expected_calibration_error, split_metrics
from alignguard.train.monitor import GradientMonitor, epoch_alarms
from alignguard.train.probes import mutual_information_probe, run_probes

CPU_ONLY = HardwareFacts(cuda_available=False, cuda_devices=0, bf16_supported=False)
AMPERE = HardwareFacts(cuda_available=True, cuda_devices=2, bf16_supported=True)
VOLTA = HardwareFacts(cuda_available=True, cuda_devices=1, bf16_supported=False)


# --- configuration -------------------------------------------------------------------------------

def test_cli_overrides_beat_the_yaml_file_which_beats_the_model_files_curriculum(tmp_path):
    model_stages = curriculum_from_model_file({"a": {"train": ["encoder"], "fraction": 0.5},
                                               "b": ["modulator"]}, "model.py")
    assert [s.name for s in build_config(None, {}, model_stages).curriculum] == ["a", "b"]
    file = tmp_path / "cfg.yaml"
    file.write_text("epochs: 9\noptim: {lr: 0.01}\ncurriculum:\n  - {name: only, train: ['']}\n")
    config = build_config(file, dict([parse_assignment("optim.lr=1e-4"), parse_assignment("monitor.live=off")]),
                          model_stages)
    assert (config.epochs, config.optim.lr, config.monitor.live) == (9, 1e-4, "off")
    assert [s.name for s in config.curriculum] == ["only"]


def test_a_bad_config_value_is_one_usage_error_naming_the_key(tmp_path):
    with pytest.raises(UsageError) as error:
        build_config(None, {"optim.lr": -1})
    assert "optim.lr" in str(error.value)
    with pytest.raises(UsageError, match="epochs_typo"):
        build_config(None, {"epochs_typo": 3})
    with pytest.raises(UsageError, match="KEY=VALUE"):
        parse_assignment("no-equals-sign")
    with pytest.raises(UsageError, match="CURRICULUM stage 'x'"):
        curriculum_from_model_file({"x": {"trian": ["encoder"]}}, "model.py")


def test_config_differences_lists_dotted_leaves():
    a, b = build_config(None, {}), build_config(None, {"optim.lr": 0.5, "epochs": 2})
    assert config_differences(a, b) == ["epochs", "optim.lr"]


def test_curriculum_epochs_follow_fractions_and_fixed_epochs():
    names = ["encoder.w", "modulator.w", "energy.w"]
    stages = [StageConfig(name="i", train=["encoder"], fraction=0.3), StageConfig(name="m", train=["modulator"],
              fraction=0.2), StageConfig(name="j", train=[""], fraction=0.5)]
    assert [s.epochs for s in allocate(stages, 6, names, "cfg")] == [2, 1, 3]
    assert [s.epochs for s in allocate(stages, 3, names, "cfg")] == [1, 1, 1]
    fixed = [StageConfig(name="i", train=["encoder"], epochs=4), StageConfig(name="j", train=[""])]
    assert [s.epochs for s in allocate(fixed, 6, names, "cfg")] == [4, 2]
    with pytest.raises(UsageError, match="at least 3"):
        allocate(stages, 2, names, "cfg")
    with pytest.raises(UsageError, match="'decoder'.*encoder, energy, modulator"):
        allocate([StageConfig(name="x", train=["decoder"])], 2, names, "cfg")


# --- device and precision --------------------------------------------------------------------------

def test_device_is_cuda_per_local_rank_when_present_and_cpu_otherwise():
    assert choose_device("auto", CPU_ONLY) == "cpu"
    assert choose_device("auto", AMPERE, local_rank=1) == "cuda:1"
    assert choose_device("cpu", AMPERE) == "cpu"
    with pytest.raises(UsageError, match="no CUDA device"):
        choose_device("cuda", CPU_ONLY)
    with pytest.raises(UsageError, match="LOCAL_RANK=2"):
        choose_device("cuda", AMPERE, local_rank=2)


def test_amp_is_off_on_cpu_bf16_where_supported_and_fp16_with_a_scaler_otherwise():
    assert choose_precision("auto", "cpu", CPU_ONLY).mode == "off"
    bf16 = choose_precision("auto", "cuda:0", AMPERE)
    assert (bf16.mode, bf16.use_scaler) == ("bf16", False)
    fp16 = choose_precision("auto", "cuda:0", VOLTA)
    assert (fp16.mode, fp16.use_scaler) == ("fp16", True)
    assert choose_precision("off", "cuda:0", AMPERE).mode == "off"
    with pytest.raises(UsageError, match="fp16 needs CUDA"):
        choose_precision("fp16", "cpu", CPU_ONLY)
    with pytest.raises(UsageError, match="does not support bf16"):
        choose_precision("bf16", "cuda:0", VOLTA)


def test_deterministic_mode_skips_the_nan_fill_of_new_tensors():
    """Deterministic kernels, but no aten::fill_ on every torch.empty (7 % of a CMDN step on CPU)."""
    before = torch.are_deterministic_algorithms_enabled(), torch.utils.deterministic.fill_uninitialized_memory
    try:
        seed_everything(0, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.utils.deterministic.fill_uninitialized_memory is False
    finally:
        torch.use_deterministic_algorithms(before[0])
        torch.utils.deterministic.fill_uninitialized_memory = before[1]


def test_workers_and_live_display_defaults():
    assert default_workers("auto", "cpu") == 0 and default_workers(3, "cpu") == 3
    assert live_enabled("auto", True, {}) and not live_enabled("auto", False, {})
    assert not live_enabled("auto", True, {"CI": "true"}) and live_enabled("on", False, {})


def test_epoch_batches_shard_without_overlap_and_resume_by_skipping():
    ranks = [EpochBatches(103, 10, epoch=2, seed=5, rank=r, world=2) for r in (0, 1)]
    seen = np.concatenate([np.concatenate(b.batches) for b in ranks])
    assert len(seen) == len(set(seen.tolist())) == 100
    whole = EpochBatches(103, 10, epoch=2, seed=5)
    assert all((a == b).all() for a, b in zip(EpochBatches(103, 10, epoch=2, seed=5, skip=4).batches,
                                              whole.batches[4:]))
    assert not (EpochBatches(103, 10, epoch=3, seed=5).batches[0] == whole.batches[0]).all()
    evaluation = [EpochBatches(103, 10, rank=r, world=2, shuffle=False, drop_last=False) for r in (0, 1)]
    assert sorted(np.concatenate([np.concatenate(e.batches) for e in evaluation]).tolist()) == list(range(103))


# --- checkpoints -----------------------------------------------------------------------------------

def test_checkpoints_round_trip_with_weights_only_and_refuse_foreign_files(tmp_path):
    model = torch.nn.Linear(3, 2)
    path = tmp_path / "c.pt"
    ckpt.save_atomic({"model": model.state_dict(), "rng": ckpt.capture_rng(), "meta": {"a": [1, None]}}, path)
    payload = ckpt.load_checkpoint(path)
    assert torch.equal(payload["model"]["weight"], model.weight) and payload["meta"] == {"a": [1, None]}
    torch.save({"hello": 1}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not an alignguard checkpoint"):
        ckpt.load_checkpoint(tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        ckpt.load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "garbage.pt").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="corrupt"):
        ckpt.load_checkpoint(tmp_path / "garbage.pt")


def test_a_failed_write_removes_its_temporary_file_and_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    ckpt.save_atomic({"v": torch.ones(2)}, path)

    def full_disk(handle, payload):
        handle.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt, "_write_payload", full_disk)
    with pytest.raises(CheckpointError, match="disk is full"):
        ckpt.save_atomic({"v": torch.zeros(2)}, path)
    assert torch.equal(ckpt.load_checkpoint(path)["v"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


# --- metrics ---------------------------------------------------------------------------------------

def test_the_all_negative_classifier_shows_accuracy_equal_to_one_minus_the_positive_rate():
    y = np.array([1] * 125 + [0] * 875, dtype=float)
    metrics = binary_metrics(y, np.full(1000, 0.01))
    assert metrics["accuracy"] == pytest.approx(0.875) and metrics["positive_rate"] == pytest.approx(0.125)
    assert metrics["aupr"] == pytest.approx(0.125)  # ties everywhere: AUPR = positive rate
    assert metrics["predicted_positive_rate"] == 0.0


def test_ece_and_bayes_ceiling():
    rng = np.random.default_rng(0)
    p = rng.random(20000)
    y = (rng.random(20000) < p).astype(float)
    assert expected_calibration_error(y, p) < 0.02  # calibrated
    assert expected_calibration_error(y, np.clip(p + 0.3, 0, 1)) > 0.2
    metrics = binary_metrics(y, rng.random(20000), p_true=p)
    assert metrics["bayes_aupr"] > metrics["aupr"] + 0.2
    cells = split_metrics(y, p, np.arange(20000) % 3, ["a", "b", "c"], p_true=p)
    assert set(cells["per_cell"]) == {"a", "b", "c"} and cells["aupr_cell_mean"] is not None
    assert binary_metrics(np.zeros(5), np.full(5, 0.2))["aupr"] is None  # no positives: undefined, not 0


# --- probes ----------------------------------------------------------------------------------------

def test_the_information_probe_is_zero_for_an_invariant_code_and_high_for_a_leaky_one():
    rng = np.random.default_rng(0)
    cell = rng.integers(0, 3, 1500)
    invariant = rng.normal(size=(1500, 4))
    leaky = invariant + 3.0 * np.eye(3)[cell] @ rng.normal(size=(3, 4))
    assert mutual_information_probe(invariant, cell)["nats"] < 0.02
    assert mutual_information_probe(leaky, cell)["nats"] > 0.8 * math.log(3)
    assert mutual_information_probe(invariant, np.zeros(1500))["nats"] is None


def test_probes_report_what_the_model_does_not_expose():
    cell = np.repeat([0, 1, 2], 50)
    access = np.linspace(0, 1, 150)
    result = run_probes({"T": 2.0 - access, "M": np.ones(150), "U_I": np.linspace(-1, 1, 150)}, cell, access,
                        ["a", "b", "c"], truth={"a": {"M": 1.0}, "b": {"M": 2.0}, "c": {"M": 3.0}})
    assert result["corr_T_access"] == pytest.approx(-1.0)
    assert result["T_per_cell"]["a"] > result["T_per_cell"]["c"]
    assert result["corr_M_UI"] is None  # M constant: correlation undefined
    assert "mi_zI_c" in result["unavailable"]
    assert result["M_per_cell_truth"] == {"a": 1.0, "b": 2.0, "c": 3.0}


# --- monitoring alarms -----------------------------------------------------------------------------

def test_cancelling_terms_raise_cancel_conflict_and_vanishing_alarms_then_clear():
    monitor = GradientMonitor(vanish_ratio=1e-3, min_cosine=-0.5, min_net_ratio=0.3,
                              min_shares={"ep": (0.2, 0)})
    g = torch.randn(50)
    record, raised, _ = monitor.observe(["ep", "orth"], {"ep": 1.0, "orth": 0.1},
                                        torch.stack([g, 0.1 * torch.randn(50)]), step=0)
    assert raised == [] and record["grad_total_norm"] > 0
    # The seed's failure: orth ≈ −domain, so the net gradient collapses.
    record, raised, _ = monitor.observe(["ep", "orth", "domain"], {"ep": 1.0, "orth": 1.0, "domain": 1.0},
                                        torch.stack([1e-5 * g, g, -g]), step=1)
    kinds = {(a.kind, a.subject) for a in raised}
    assert {("cancel", "all"), ("conflict", "orth|domain"), ("vanished", "total")} <= kinds
    assert record["grad_net_ratio"] < 1e-3
    # The design's main term carries almost none of what is left: below the spec's min_share.
    _, raised, cleared = monitor.observe(["ep", "orth", "domain"], {"ep": 1.0, "orth": 1.0, "domain": 1.0},
                                         torch.stack([1e-3 * g, g, -0.9 * g]), step=2)
    assert [(a.kind, a.subject) for a in raised] == [("share", "ep")]
    assert {(a.kind, a.subject) for a in cleared} == {("vanished", "ep"), ("vanished", "total")}
    _, raised, cleared = monitor.observe(["ep", "orth"], {"ep": 1.0, "orth": 0.1},
                                         torch.stack([g, 0.1 * g]), step=3)
    assert raised == [] and {a.kind for a in cleared} == {"cancel", "conflict", "share"}


def test_a_zero_weighted_term_is_not_reported_as_vanished_but_a_non_finite_one_stops():
    monitor = GradientMonitor(vanish_ratio=1e-3, min_cosine=-0.5, min_net_ratio=0.3)
    g = torch.randn(10)
    monitor.observe(["bce", "kl"], {"bce": 1.0, "kl": 0.5}, torch.stack([g, g]), step=0)
    _, raised, _ = monitor.observe(["bce", "kl"], {"bce": 1.0, "kl": 0.0}, torch.stack([g, 0 * g]), step=1)
    assert raised == []
    with pytest.raises(NonFiniteLossError, match="kl=nan"):
        monitor.observe(["bce", "kl"], {"bce": 1.0, "kl": float("nan")}, torch.stack([g, g]), step=2)


def test_the_conflict_alarm_honours_the_specs_declared_pairs():
    from alignguard.spec.rules import PairBound

    # an information bottleneck: the KL pulls toward the prior, the task loss away from it, by design
    pairs = [PairBound(terms=("bce", "kl"), min_cosine=-0.9, why="information bottleneck"),
             PairBound(terms=("label", "domain"), min_cosine=-1.0, max_cosine=-0.1)]
    monitor = GradientMonitor(vanish_ratio=1e-3, min_cosine=-0.5, min_net_ratio=0.05, pairs=pairs)
    a, b = torch.zeros(4), torch.zeros(4)
    a[0], b[0], b[1] = 1.0, -0.55, 0.835  # cos(a, b) = -0.55
    names, values = ["bce", "kl", "rank"], {"bce": 1.0, "kl": 0.1, "rank": 0.5}
    _, raised, _ = monitor.observe(names, values, torch.stack([a, b, b]), step=700)
    # bce|kl is inside its declared bounds; bce|rank is not declared: the global bound still applies
    assert [(x.kind, x.subject) for x in raised] == [("conflict", "bce|rank")]
    c = torch.zeros(4)
    c[0], c[1] = -0.95, 0.312  # cos(a, c) = -0.95: beyond the pair's own bound
    d = torch.tensor([0.0, 0.0, 1.0, 0.0])  # rank now orthogonal to both: its alarm clears
    _, raised, cleared = monitor.observe(names, values, torch.stack([a, c, d]), step=800)
    assert [(x.kind, x.subject) for x in raised] == [("conflict", "bce|kl")]
    assert [(x.kind, x.subject) for x in cleared] == [("conflict", "bce|rank")]
    assert "information bottleneck" in raised[0].message and "-0.9" in raised[0].message
    # a pair the design says must oppose, which does not
    _, raised, _ = monitor.observe(["label", "domain"], {"label": 1.0, "domain": 1.0}, torch.stack([a, a]), step=900)
    assert [(x.kind, x.subject) for x in raised] == [("conflict", "label|domain")]
    assert "oppose by construction" in raised[0].message


def test_all_negative_predictions_that_rank_are_not_the_constant_classifier():
    # at a 14 % positive rate a calibrated model may keep every probability below 0.5 (CMDN's invariant
    # stage does: AUROC 0.82); only predictions that also fail to rank are the seed's constant classifier
    ranking = {"pooled": {"positive_rate": 0.143, "predicted_positive_rate": 0.0, "accuracy": 0.857, "auroc": 0.82}}
    assert epoch_alarms(0, 175, [1.0], ranking, {}, 1e-3, 0.05) == []
    flat = {"pooled": {**ranking["pooled"], "auroc": 0.51}}
    assert [a.kind for a in epoch_alarms(0, 175, [1.0], flat, {}, 1e-3, 0.05)] == ["constant"]
    # and real all-negative data (no AUROC: one class) still counts as not ranking
    one_class = {"pooled": {**ranking["pooled"], "auroc": None}}
    assert [a.kind for a in epoch_alarms(0, 175, [1.0], one_class, {}, 1e-3, 0.05)] == ["constant"]


def test_full_design_stage_is_where_every_trained_part_is_switched_on():
    from alignguard.train.curriculum import Stage, full_design_stage, judge_epoch

    names = ["encoder.w", "energy.w", "modulator.concentration.w", "modulator.sharpness.w", "unused.w"]
    cmdn = [Stage("invariant", ("encoder", "energy"), 2), Stage("modulator", ("modulator.concentration",), 1),
            Stage("joint", ("encoder", "energy", "modulator"), 3)]
    assert full_design_stage(cmdn, names) == 2  # sharpness first trains in the joint stage; 'unused' never does
    assert full_design_stage([Stage("a", ("encoder",), 1), Stage("b", ("modulator", "energy"), 1),
                              Stage("c", ("energy",), 1)], names) == 1
    stage = Stage("joint", ("",), 3)
    # the first full-design epoch replaces an earlier, better-validating best; an earlier one never replaces it
    first = judge_epoch(0.23, 0.28, 0, 1, stage, True, 3, 1e-4, False, full_design=True, best_full_design=False)
    assert first.improved and first.bad_epochs == 0 and first.full_design
    assert not judge_epoch(0.5, 0.23, 0, 1, stage, False, 3, 1e-4, False, full_design=False,
                           best_full_design=True).improved
    assert judge_epoch(0.24, 0.23, 0, 2, stage, True, 3, 1e-4, False, True, True).improved
    assert not judge_epoch(0.22, 0.23, 0, 2, stage, True, 3, 1e-4, False, True, True).improved


def test_epoch_alarms_name_the_seeds_failure_modes():
    validation = {"pooled": {"positive_rate": 0.125, "predicted_positive_rate": 0.0, "accuracy": 0.875}}
    alarms = epoch_alarms(3, 100, [1.0, 0.99996], validation, {"mi_zI_c": {"nats": 0.4}, "corr_M_UI": 0.9,
                                                               "corr_T_access": 0.6}, 1e-3, 0.05)
    assert {a.kind for a in alarms} == {"plateau", "constant", "leak", "entangled", "implausible"}
    assert any("0.875" in a.message for a in alarms)


# --- display and TensorBoard -----------------------------------------------------------------------

def test_the_live_display_shows_progress_metrics_and_alarms_on_a_terminal():
    from rich.console import Console

    from alignguard.train.display import Display
    from alignguard.train.monitor import Alarm

    console = Console(force_terminal=True, width=100, record=True)
    display = Display(console, live=True)
    display.start_epoch(0, "invariant", 10)
    display.advance({"bce": 0.5})
    display.show({"val AUPR": 0.4321})
    display.alarm([Alarm("cancel", "all", "the loss terms cancel", 7)], [])
    display.close()
    text = console.export_text()
    assert "epoch 0 (invariant)" in text and "0.4321" in text and "the loss terms cancel" in text


def test_metrics_are_mirrored_to_tensorboard_when_it_is_installed(tmp_path, monkeypatch):
    import sys
    import types

    from alignguard.train.records import MetricsLog, read_records

    scalars = []
    fake = types.ModuleType("torch.utils.tensorboard")

    class SummaryWriter:
        def __init__(self, log_dir):
            self.log_dir = log_dir

        def add_scalar(self, tag, value, step):
            scalars.append((tag, value, step))

        def close(self):
            pass

    fake.SummaryWriter = SummaryWriter
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake)
    log = MetricsLog(tmp_path / "m.jsonl", tmp_path / "tb")
    assert log.tensorboard_enabled
    log.write({"kind": "step", "step": 3, "loss": {"bce": 0.5, "kl": float("nan")}, "lr": 0.1, "stage": "a"})
    log.close()
    assert ("step/loss/bce", 0.5, 3) in scalars and ("step/lr", 0.1, 3) in scalars
    assert not any(tag == "step/loss/kl" for tag, _, _ in scalars)  # NaN is not a scalar to plot
    assert read_records(tmp_path / "m.jsonl")[0]["loss"]["kl"] is None  # and is null in the JSONL


def test_every_config_key_is_documented_in_docs_training_md():
    from pathlib import Path

    from pydantic import BaseModel

    from alignguard.train.config import TrainConfig

    def keys(model, prefix=""):
        for name, field in model.model_fields.items():
            default = field.get_default(call_default_factory=True)
            if isinstance(default, BaseModel):
                yield from keys(type(default), f"{prefix}{name}.")
            else:
                yield prefix + name

    text = (Path(__file__).resolve().parents[2] / "docs" / "training.md").read_text()
    missing = [key for key in keys(TrainConfig) if f"| `{key}` |" not in text]
    assert not missing, f"document these config keys in docs/training.md: {missing}"


def test_early_stopping_moves_on_in_early_stages_and_ends_the_run_in_the_last():
    from alignguard.train.curriculum import Stage, judge_epoch, progress_after

    stage = Stage("joint", ("",), epochs=10)
    verdict = judge_epoch(0.50, 0.40, 2, 3, stage, last_stage=True, patience=3, min_delta=1e-4, budget_spent=False)
    assert verdict.improved and verdict.bad_epochs == 0 and not verdict.finished
    tiny_gain = judge_epoch(0.40005, 0.40, 2, 4, stage, True, 3, 1e-4, False)
    assert not tiny_gain.improved and tiny_gain.finished and tiny_gain.reason.startswith("early stopping")
    early = judge_epoch(0.3, 0.4, 2, 4, Stage("invariant", ("encoder",), 10), False, 3, 1e-4, False)
    assert early.stage_done and not early.finished and early.reason is None
    progress = {"epoch": 4, "stage_index": 0, "stage_epoch": 3, "best_value": 0.4, "best_epoch": 1}
    after = progress_after(progress, early, 0.3, last_stage=False)
    assert after == {**after, "epoch": 5, "stage_index": 1, "stage_epoch": 0, "bad_epochs": 0, "best_epoch": 1}
    assert judge_epoch(None, None, 0, 1, stage, True, 3, 1e-4, False).improved is False  # no positives
    assert judge_epoch(0.1, 0.4, 0, 1, stage, True, 3, 1e-4, True).reason == "max_steps reached"
