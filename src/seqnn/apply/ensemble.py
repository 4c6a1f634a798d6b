"""Test-time augmentation: predictions over shifts and reverse complements, strand-aware.

One-hot channels are A, C, G, T, so the reverse complement of x [B, L, 4] is x[:, ::-1, ::-1].
A prediction of the reverse complement is flipped back along length and its stranded tracks
swapped through `strand_pair` (track t takes the RC output of track strand_pair[t]).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np


def shift_one_hot(x: np.ndarray, shift: int) -> np.ndarray:
    """x [B, L, 4] moved `shift` bp to the right (left if negative), padded with N (zeros)."""
    if shift == 0:
        return x
    out = np.zeros_like(x)
    if shift > 0:
        out[:, shift:] = x[:, :-shift]
    else:
        out[:, :shift] = x[:, -shift:]
    return out


def reverse_complement_one_hot(x: np.ndarray) -> np.ndarray:
    return x[:, ::-1, ::-1]


def unflip(y: np.ndarray, strand_pair: Sequence[int] | None) -> np.ndarray:
    """Map a prediction of the reverse-complement sequence back to the forward strand."""
    y = y[:, ::-1]
    return y if strand_pair is None else y[..., list(strand_pair)]


def members(model, x: np.ndarray, rc: bool = False, shifts: Sequence[int] = (0,),
            strand_pair: Sequence[int] | None = None) -> Iterator[np.ndarray]:
    """Yield the forward-strand prediction of every (shift, strand) augmentation of a batch."""
    x = np.asarray(x, dtype=np.float32)
    for shift in shifts:
        xs = shift_one_hot(x, shift)
        yield np.asarray(model(xs, training=False), dtype=np.float32)
        if rc:
            y = model(np.ascontiguousarray(reverse_complement_one_hot(xs)), training=False)
            yield unflip(np.asarray(y, dtype=np.float32), strand_pair)


def predict_augmented(model, x: np.ndarray, rc: bool = False, shifts: Sequence[int] = (0,),
                      strand_pair: Sequence[int] | None = None) -> np.ndarray:
    """Mean prediction [B, T_len, T] over shifts × strands for one batch x [B, L, 4]."""
    total, n = None, 0
    for y in members(model, x, rc, shifts, strand_pair):
        total = y if total is None else total + y
        n += 1
    return total / n
