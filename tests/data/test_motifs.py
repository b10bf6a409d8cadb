"""DNA encoding, JASPAR matrices (offline through pyjaspar, bundled fallback) and motif scoring."""

from __future__ import annotations

import builtins
import json
import socket
import sys
import urllib.request
from importlib import resources

import numpy as np
import pytest

from alignguard.data.encoding import INVALID_CODE, decode, encode_bytes, one_hot, reverse_complement
from alignguard.data.motifs import best_score, load_motif, sample_instances
from alignguard.errors import DataError


def test_encoding_round_trip_and_one_hot():
    codes = encode_bytes("ACGTNacgtn")
    assert decode(codes) == "ACGTNACGTN"
    assert encode_bytes("ACRT")[2] == INVALID_CODE
    hot = one_hot(codes[None, :])
    assert hot.shape == (1, 4, 10) and hot.dtype == np.float32
    assert hot[0, :, 4].sum() == 0  # N is all zeros
    assert (hot[0].argmax(axis=0)[:4] == [0, 1, 2, 3]).all()
    assert decode(reverse_complement(encode_bytes("AACGTN"))) == "NACGTT"


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a socket fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_pyjaspar_matrix_loads_without_network(no_network, monkeypatch):
    monkeypatch.delitem(sys.modules, "pyjaspar", raising=False)  # re-import under the guard too
    with pytest.raises(AssertionError, match="network access attempted"):  # the guard is effective
        urllib.request.urlopen("http://jaspar.elixir.no/api/v1/matrix/MA0139.1/", timeout=1)
    motif = load_motif("MA0139.1")
    assert motif.source.startswith("pyjaspar")
    assert motif.name == "CTCF" and motif.counts.shape == (4, 19)
    bundled = json.loads(resources.files("alignguard.data").joinpath("fallback_motifs.json").read_text())
    expected = np.array([bundled["matrices"]["MA0139.1"]["counts"][b] for b in "ACGT"])
    np.testing.assert_allclose(motif.counts, expected)  # the fallback is a faithful copy


def test_fallback_when_pyjaspar_is_missing(monkeypatch):
    real_import = builtins.__import__

    def without_pyjaspar(name, *args, **kwargs):
        if name == "pyjaspar" or name.startswith("pyjaspar."):
            raise ImportError("pyjaspar hidden by the test")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "pyjaspar", raising=False)
    monkeypatch.setattr(builtins, "__import__", without_pyjaspar)
    motif = load_motif("MA0139.1")
    assert motif.source == "bundled fallback" and motif.length == 19
    assert load_motif("MA0079").matrix_id == "MA0079.5"  # unversioned id resolves
    with pytest.raises(DataError, match="needs pyjaspar"):
        load_motif("MA0095.2")


def test_unknown_motif_is_a_data_error():
    with pytest.raises(DataError, match="not in the JASPAR database"):
        load_motif("MA9999.1")


def test_best_score_finds_consensus_on_either_strand():
    motif = load_motif("MA0139.1")
    background = np.full(4, 0.25)
    log_odds = motif.log_odds(background)
    consensus = motif.counts.argmax(axis=0).astype(np.uint8)
    best_possible = log_odds.max(axis=0).sum()
    rng = np.random.default_rng(0)
    plus = rng.integers(0, 4, size=(1, 60)).astype(np.uint8)
    plus[0, 20:39] = consensus
    minus = plus.copy()
    minus[0, 20:39] = reverse_complement(consensus)
    scores = best_score(np.vstack([plus, minus]), log_odds)
    np.testing.assert_allclose(scores, best_possible, rtol=1e-5)
    # Scoring is strand-symmetric: a sequence and its reverse complement score the same.
    random = rng.integers(0, 4, size=(50, 80)).astype(np.uint8)
    flipped = best_score(reverse_complement(random), log_odds)
    np.testing.assert_allclose(best_score(random, log_odds), flipped, rtol=1e-5)


def test_sampled_instances_follow_the_matrix():
    motif = load_motif("MA0139.1")
    draws = sample_instances(motif, 20000, np.random.default_rng(1))
    frequencies = np.stack([(draws == b).mean(axis=0) for b in range(4)])
    np.testing.assert_allclose(frequencies, motif.probabilities(), atol=0.02)


def test_window_shorter_than_motif_is_rejected():
    motif = load_motif("MA0139.1")
    with pytest.raises(DataError, match="shorter than the motif"):
        best_score(np.zeros((2, 10), dtype=np.uint8), motif.log_odds(np.full(4, 0.25)))
