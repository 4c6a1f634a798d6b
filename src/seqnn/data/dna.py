"""DNA encoding: integer codes (A,C,G,T,N = 0,1,2,3,4), one-hot, reverse complement."""

import numpy as np

N_CODE = 4
_LOOKUP = np.full(256, N_CODE, dtype=np.uint8)
for _i, _b in enumerate(b"ACGT"):
    _LOOKUP[_b] = _i
    _LOOKUP[_b + 32] = _i  # lower case (soft-masked) bases count as bases


def encode(seq: str | bytes) -> np.ndarray:
    """Codes uint8 [L] of a sequence; any letter other than ACGT/acgt becomes N (4)."""
    if isinstance(seq, str):
        seq = seq.encode("ascii")
    return _LOOKUP[np.frombuffer(seq, dtype=np.uint8)]


def decode(codes: np.ndarray) -> str:
    """The sequence string of codes."""
    return np.frombuffer(b"ACGTN", dtype=np.uint8)[np.asarray(codes)].tobytes().decode()


def one_hot(codes: np.ndarray, dtype=np.float32) -> np.ndarray:
    """One-hot [..., L, 4] of codes [..., L]; N is all zeros."""
    return (np.asarray(codes)[..., None] == np.arange(4, dtype=np.uint8)).astype(dtype)


def reverse_complement(codes: np.ndarray) -> np.ndarray:
    """Reverse complement of codes [..., L] (N stays N)."""
    codes = np.asarray(codes)
    return np.where(codes < N_CODE, 3 - codes, N_CODE).astype(np.uint8)[..., ::-1]
