"""Attribution maths on numpy arrays (Keras-free): the aggregate of predictions that
attributions explain, and scores of gradients.

Aggregate. A model maps one-hot x [L, 4] (A, C, G, T; N all zeros) to y [T_len, T]. For sequence
i and selected track k the aggregate is A_ik(x) = sum_b w_i[b] y[b, t_ik], with w_i = 1 (``sum``)
or 1 / |B_i| (``mean``) on a bin window B_i = [b0, b1) and 0 elsewhere, and t_ik a track index.
By default B is the centre max(1, T_len // 8) bins, widened by one to T_len's parity so that it
is its own mirror image, and the tracks are all of them; both may be given per sequence (e.g.
bins around a TSS, and the track of a gene's strand: t on +, strand_pair[t] on -). ``center``
is Basenji's window: the two bins T_len // 2 and T_len // 2 + 1.

Statistics (Borzoi-era gradients, `Statistic`): with ``untransform`` each prediction is first
mapped back to its track's units (the inverse coverage transform: soft clip, power, scale, per
bin); the gradient is then taken of A itself (``aggregate``), of log(A + c) (``log``) or of
log((A + c) / (A' + c)) (``ratio``), A' the same sum over a second, denominator window.

Scores. As sum_c x[l, c] = 1 for every base, the gradient's component along (1, 1, 1, 1) at a
position is arbitrary; centring, g'[l, c] = g[l, c] - mean_c g[l, c], removes it. The
contribution score (input x gradient) is sum_c x[l, c] g'[l, c], the centred gradient of the
observed base (0 at N). Saliency is sum_c |g| (``abs_sum``), max_c |g| (``abs_max``) or the
raw gradient of the observed base (``observed``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from seqnn import SeqnnError
from seqnn.data.coverage import POWERS

REDUCE = ("sum", "mean")
STATISTICS = ("aggregate", "log", "ratio")
SALIENCY = ("abs_sum", "abs_max", "observed")


# ---------------------------------------------------------------------------------------------
# Aggregates


@dataclass
class Aggregate:
    """Per sequence i and selected track k: A_ik = sum_b weights[i, b] * y[i, b, tracks[i, k]]."""

    weights: np.ndarray  # [N, T_len] float32
    tracks: np.ndarray  # [N, K] int32
    denominator: np.ndarray | None = None  # [N, T_len] weights of A' (``ratio``)

    def __len__(self) -> int:
        return len(self.weights)

    def __getitem__(self, rows) -> Aggregate:
        den = None if self.denominator is None else self.denominator[rows]
        return Aggregate(self.weights[rows], self.tracks[rows], den)

    @property
    def denominator_weights(self) -> np.ndarray:
        return np.zeros_like(self.weights) if self.denominator is None else self.denominator

    def mirrored(self, strand_pair: np.ndarray | None) -> Aggregate:
        """The same aggregate read from a prediction of the reverse complement."""
        tracks = self.tracks if strand_pair is None else strand_pair[self.tracks]
        den = None if self.denominator is None else np.ascontiguousarray(
            self.denominator[:, ::-1])
        return Aggregate(np.ascontiguousarray(self.weights[:, ::-1]), tracks, den)


@dataclass
class Statistic:
    """What a gradient is taken of (module docstring): ``kind`` of `STATISTICS`, its
    pseudo-count, and per track of the model (untransform) its scale, soft clip (inf: none) and
    power (1: none), or None to aggregate the model's values as they are."""

    kind: str = "aggregate"
    pseudo: float = 1.0
    untransform: dict | None = None

    def __post_init__(self):
        if self.kind not in STATISTICS:
            raise SeqnnError(f"statistic {self.kind!r} is not one of {', '.join(STATISTICS)}")


def untransform_params(tracks: Sequence[dict]) -> dict:
    """Per-track scale, clip_soft (inf: none) and power of track sheet rows, for `Statistic`."""
    out = {"scale": [], "clip_soft": [], "power": []}
    for t in tracks:
        soft = t.get("clip_soft")
        out["scale"].append(float(t.get("scale") or 1.0))
        out["clip_soft"].append(np.inf if soft is None or soft != soft else float(soft))
        out["power"].append(POWERS.get(str(t.get("sum_stat") or "sum").partition("_")[2], 1.0))
    return {k: np.asarray(v, np.float32) for k, v in out.items()}


def centre_window(target_length: int, width: int | None = None) -> tuple[int, int]:
    """Bins [b0, b1) of the centre `width` bins (default: module docstring)."""
    if width is None:
        width = max(1, target_length // 8)
        width += (target_length - width) % 2
    if not 1 <= width <= target_length:
        raise SeqnnError(f"window of {width} bins: need 1..{target_length} (the model's bins); "
                         "give a smaller window")
    b0 = (target_length - width) // 2
    return b0, b0 + width


def bin_windows(n: int, target_length: int, window=None) -> np.ndarray:
    """Windows [n, 2] from None (centre), ``center`` (Basenji's two centre bins), a width in
    bins, (b0, b1), or per-sequence [n, 2]."""
    if isinstance(window, str):
        if window != "center":
            raise SeqnnError(f"window {window!r}: give a width in bins, (b0, b1) or 'center'")
        window = (target_length // 2, min(target_length // 2 + 2, target_length))
    if window is None or np.ndim(window) == 0:
        w = np.array(centre_window(target_length, None if window is None else int(window)))
    else:
        w = np.asarray(window, np.int64)
    if w.shape not in ((2,), (n, 2)):
        raise SeqnnError(f"window {w.shape}: give a width, (b0, b1) or one (b0, b1) per "
                         f"sequence [{n}, 2]")
    w = np.broadcast_to(w, (n, 2)).astype(np.int64)
    bad = (w[:, 0] < 0) | (w[:, 1] <= w[:, 0]) | (w[:, 1] > target_length)
    if bad.any():
        raise SeqnnError(f"bin window {w[bad][0].tolist()}: need 0 <= b0 < b1 <= "
                         f"{target_length} (the model's bins); fix the window")
    return w


def select_tracks(n: int, n_tracks: int, tracks=None) -> np.ndarray:
    """Track indices [n, K] from None (all), an index, a list, or per-sequence [n, K]."""
    t = np.arange(n_tracks) if tracks is None else np.asarray(tracks, np.int64)
    t = t.reshape(1, -1) if t.ndim < 2 else t
    if t.ndim != 2 or t.shape[0] not in (1, n) or t.shape[1] == 0:
        raise SeqnnError(f"tracks {t.shape}: give an index, a list, or [{n}, K] per sequence")
    if ((t < 0) | (t >= n_tracks)).any():
        raise SeqnnError(f"track index {t[(t < 0) | (t >= n_tracks)][0]} out of range: the "
                         f"model predicts tracks 0..{n_tracks - 1}")
    return np.broadcast_to(t, (n, t.shape[1])).astype(np.int32)


def window_weights(n: int, target_length: int, window=None, reduce: str = "sum") -> np.ndarray:
    """Bin weights [n, T_len] of a window (`bin_windows`): 1 inside (``sum``) or 1 / width
    (``mean``)."""
    if reduce not in REDUCE:
        raise SeqnnError(f"reduce {reduce!r} is not one of {', '.join(REDUCE)}")
    w = bin_windows(n, target_length, window)
    bins = np.arange(target_length)
    inside = (bins >= w[:, :1]) & (bins < w[:, 1:])
    weights = inside / (w[:, 1:] - w[:, :1]) if reduce == "mean" else inside
    return weights.astype(np.float32)


def aggregate(n: int, target_length: int, n_tracks: int, tracks=None, window=None,
              reduce: str = "sum", denominator=None) -> Aggregate:
    """The aggregate of n sequences: `tracks` as `select_tracks`, `window` (and the ``ratio``
    statistic's `denominator` window) as `bin_windows`."""
    den = None if denominator is None else window_weights(n, target_length, denominator, reduce)
    return Aggregate(window_weights(n, target_length, window, reduce),
                     select_tracks(n, n_tracks, tracks), den)


def strand_tracks(tracks: Sequence[int], strands: Sequence[str],
                  strand_pair: Sequence[int]) -> np.ndarray:
    """Per sequence [N, K]: the tracks on + strand genes, their strand pairs on - strand ones."""
    t = np.atleast_1d(np.asarray(tracks, np.int64))
    minus = np.asarray(strands) == "-"
    return np.where(minus[:, None], np.asarray(strand_pair)[t][None], t[None])


def tss_windows(positions: np.ndarray, target_length: int, pool_width: int, crop_bp: int = 0,
                width: int | None = None) -> np.ndarray:
    """Windows [N, 2] of `width` bins (default as `centre_window`) around the bin holding each
    TSS position (bp within the input window), moved inside the predicted bins where needed."""
    width = np.diff(centre_window(target_length, width))[0]
    b = (np.asarray(positions, np.int64) - crop_bp) // pool_width
    b0 = np.clip(b - width // 2, 0, target_length - width)
    return np.stack([b0, b0 + width], 1)


# ---------------------------------------------------------------------------------------------
# Scores


def centre_bases(grads: np.ndarray) -> np.ndarray:
    """Gradients [N, L, 4, ...] minus their mean over the four bases at each position."""
    return grads - grads.mean(axis=2, keepdims=True)


def input_x_gradient(x: np.ndarray, grads: np.ndarray, centre: bool = True) -> np.ndarray:
    """Contribution scores [N, L, ...]: the (centred) gradient of the observed base of one-hot x
    [N, L, 4] (0 at N)."""
    g = centre_bases(grads) if centre else grads
    return np.einsum("nlc,nlc...->nl...", np.asarray(x, g.dtype), g)


def saliency(grads: np.ndarray, x: np.ndarray | None = None, mode: str = "abs_sum") -> np.ndarray:
    """Saliency [N, L, ...] of gradients [N, L, 4, ...]: ``abs_sum``, ``abs_max`` over bases,
    or ``observed`` (the raw gradient of the observed base; needs x)."""
    if mode == "abs_sum":
        return np.abs(grads).sum(axis=2)
    if mode == "abs_max":
        return np.abs(grads).max(axis=2)
    if mode == "observed" and x is not None:
        return input_x_gradient(x, grads, centre=False)
    raise SeqnnError(f"saliency {mode!r}: use one of {', '.join(SALIENCY)} (observed needs x)")
