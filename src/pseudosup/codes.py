"""Binary codes: packing, unpacking and the 64-bit words used for popcount."""

from __future__ import annotations

import numpy as np


def pack(bits: np.ndarray) -> np.ndarray:
    """(n, b) booleans -> (n, ceil(b/8)) uint8, most significant bit first."""
    return np.packbits(np.asarray(bits, dtype=bool), axis=1)


def unpack(codes: np.ndarray, nbits: int) -> np.ndarray:
    return np.unpackbits(codes, axis=1, count=nbits).astype(bool)


def to_words(codes: np.ndarray) -> np.ndarray:
    """(n, nbytes) uint8 -> (n, ceil(nbytes/8)) uint64, zero padded.

    XOR + popcount on whole 64-bit words is the fast Hamming distance; the zero
    padding contributes nothing to it.
    """
    codes = np.ascontiguousarray(codes, dtype=np.uint8)
    n, nbytes = codes.shape
    nwords = -(-nbytes // 8)
    padded = np.zeros((n, nwords * 8), dtype=np.uint8)
    padded[:, :nbytes] = codes
    return padded.view(np.uint64)


def hamming(q_words: np.ndarray, db_words: np.ndarray) -> np.ndarray:
    """Hamming distances (len(q), len(db)) as uint16 (uint8 when it fits)."""
    nwords = q_words.shape[1]
    out_dtype = np.uint8 if nwords * 64 <= 255 else np.uint16
    dist = np.bitwise_count(q_words[:, None, 0] ^ db_words[None, :, 0]).astype(out_dtype, copy=False)
    for w in range(1, nwords):
        dist += np.bitwise_count(q_words[:, None, w] ^ db_words[None, :, w])
    return dist
