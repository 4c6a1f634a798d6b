"""Sequence logos of first-layer filters (their PWMs, `seqnn.apply.filters`), in bits."""

from __future__ import annotations

import logomaker
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from seqnn.plots.interpret import BASE_COLORS, BASES
from seqnn.plots.style import grid, styled


def information(pwms: np.ndarray) -> np.ndarray:
    """Per-base heights in bits [n, width, 4]: p * (2 - entropy) of each column."""
    p = np.maximum(np.asarray(pwms, np.float64), 1e-12)
    bits = 2 + (p * np.log2(p)).sum(axis=-1, keepdims=True)
    return p * bits


@styled
def filter_logos(pwms: np.ndarray, names=None, ncols: int = 4) -> Figure:
    """One information-content logo per PWM [n, width, 4] (y: bits, 0..2)."""
    heights = information(pwms)
    names = names or [f"filter{i}" for i in range(len(heights))]
    fig, axes = grid(len(heights), ncols, 0.22 * heights.shape[1] + 1.2, 1.4)
    for ax, h, name in zip(axes, heights, names):
        logomaker.Logo(pd.DataFrame(h, columns=list(BASES)), ax=ax, color_scheme=BASE_COLORS,
                       baseline_width=0)
        ax.set(ylim=(0, 2), title=name, yticks=[0, 1, 2])
        ax.grid(False)
        ax.tick_params(labelsize="x-small")
    return fig
