"""The worker protocol and the stack reading behind every "where" in an exit or hang message."""

from __future__ import annotations

import os
import pickle
import sys
import time

import pytest

from alignguard.errors import ModelFileError, SpecError
from alignguard.isolation import locate, worker
from alignguard.isolation.worker import HEADER, _messages, run_isolated, set_deadline

PACKAGE = locate.PACKAGE


def frame(path: str, line: int, function: str) -> tuple[str, int, str]:
    return (path, line, function)


def test_the_phase_is_the_innermost_alignguard_frame_and_the_line_the_innermost_user_frame(tmp_path):
    user = str(tmp_path / "model.py")
    frames = [frame(f"{PACKAGE}/api.py", 10, "run_check"), frame(f"{PACKAGE}/checks/structure/noise.py", 50, "run"),
              frame(f"{PACKAGE}/graph/capture_fx.py", 80, "capture"),
              frame(f"{PACKAGE}/modelfile/loader.py", 90, "forward"), frame(user, 12, "forward"),
              frame(f"{sys.prefix}/lib/python3.11/site-packages/torch/nn/modules/module.py", 1, "_call_impl")]
    assert locate.phase(frames) == "capturing the forward graph"
    assert locate.user_location(frames) == f"{user}:12 (in forward)"
    assert locate.describe(frames[:2]) == "during the structural checks (noise)"
    assert locate.describe([]) == "at an unknown place"


def test_a_faulthandler_dump_is_read_innermost_last():
    dump = ('Stack (most recent call first):\n  File "/m/model.py", line 15 in forward\n'
            '  File "/x/alignguard/api.py", line 3 in run_check\n')
    assert locate.frames_of_dump(dump) == [("/x/alignguard/api.py", 3, "run_check"), ("/m/model.py", 15, "forward")]


def test_a_cut_or_damaged_reply_is_no_verdict():
    good = pickle.dumps(("ok", 1))
    framed = HEADER.pack(len(good)) + good
    assert _messages(framed) == [("ok", 1)]
    assert _messages(framed[:-1]) == []  # the worker died mid-write
    assert _messages(HEADER.pack(5) + b"\x80junk") == []
    with pytest.raises(ModelFileError, match="ended before the check finished"):
        worker._verdict(_messages(framed[:-1]), 0, None, [], "the check")


def _returns(value):
    print("from the worker")
    return value


def _raises_spec_error():
    raise SpecError("bad key", where="spec.yaml:3:1", fix="remove it")


def _exits():
    os._exit(7)


def test_values_and_alignguard_errors_cross_back_intact():
    assert run_isolated(_returns, {"a": [1, 2]}) == {"a": [1, 2]}
    with pytest.raises(SpecError) as caught:
        run_isolated(_raises_spec_error)
    assert caught.value.where == "spec.yaml:3:1" and caught.value.fix == "remove it"
    assert str(caught.value).startswith("spec error: bad key.")


def test_an_exit_anywhere_is_a_model_file_error_never_the_code():
    with pytest.raises(ModelFileError, match=r"os\._exit\(7\)"):
        run_isolated(_exits)


def _bounded_then_free(pause: float):
    set_deadline(None, "the free part")  # lifts the deadline run_isolated started with
    time.sleep(pause)
    set_deadline(0.3, "the bounded part")
    time.sleep(30)


def test_the_worker_moves_its_own_deadline_and_the_message_names_the_phase():
    start = time.monotonic()
    with pytest.raises(ModelFileError, match=r"^.*the bounded part did not finish within --timeout 0\.3 s"):
        run_isolated(_bounded_then_free, 1.0, timeout=0.5)  # the free second outlives the first deadline
    assert 1.0 <= time.monotonic() - start < 15


def test_set_deadline_outside_a_worker_does_nothing():
    set_deadline(0.01, "nothing")
    time.sleep(0.05)  # no one to stop this process
