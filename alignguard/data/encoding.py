"""DNA as compact uint8 codes (A=0, C=1, G=2, T=3, N=4) and their one-hot expansion.

Sequences are stored as codes (1 byte per base) and expanded to float32 one-hot only per batch,
which keeps shards 16x smaller than stored one-hot and lets a batch be built by one table lookup.
"""

from __future__ import annotations

import numpy as np

N_CODE = 4
INVALID_CODE = 255

# Byte -> code table: ACGTN in either case (soft-masked genomes are lowercase); everything else invalid.
_BYTE_TO_CODE = np.full(256, INVALID_CODE, dtype=np.uint8)
for _code, _base in enumerate("ACGTN"):
    _BYTE_TO_CODE[ord(_base)] = _code
    _BYTE_TO_CODE[ord(_base.lower())] = _code

# Code -> one-hot row (N is all zeros, per the batch contract).
ONE_HOT_TABLE = np.zeros((5, 4), dtype=np.float32)
ONE_HOT_TABLE[np.arange(4), np.arange(4)] = 1.0

# Complement in code space: A<->T, C<->G, N->N.
_COMPLEMENT = np.array([3, 2, 1, 0, N_CODE], dtype=np.uint8)


def encode_bytes(text: bytes | str) -> np.ndarray:
    """Codes for a DNA string; characters outside ACGTN (any case) become INVALID_CODE."""
    raw = text.encode("ascii", errors="replace") if isinstance(text, str) else text
    return _BYTE_TO_CODE[np.frombuffer(raw, dtype=np.uint8)]


def decode(codes: np.ndarray) -> str:
    return "".join("ACGTN"[int(c)] for c in codes)


def one_hot(codes: np.ndarray) -> np.ndarray:
    """(B, L) uint8 codes -> (B, 4, L) float32 one-hot (A, C, G, T rows; N all zeros)."""
    return np.ascontiguousarray(ONE_HOT_TABLE[codes].transpose(0, 2, 1))


def reverse_complement(codes: np.ndarray) -> np.ndarray:
    """Reverse complement along the last axis."""
    return _COMPLEMENT[codes[..., ::-1]]
