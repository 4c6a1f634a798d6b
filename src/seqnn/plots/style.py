"""The common style of the report's figures and their helpers: every figure is a
`matplotlib.figure.Figure` built without pyplot (no global state, any backend), drawn in seaborn's
whitegrid style with the colorblind palette, and written by `save`."""

from __future__ import annotations

import functools
import os

import seaborn as sns
from matplotlib.figure import Figure

from seqnn.io import atomic_path

PALETTE = "colorblind"


def styled(fn):
    """Draw inside the common seaborn style."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.85), \
                sns.color_palette(PALETTE):
            return fn(*args, **kwargs)

    return wrapper


def grid(panels: int, ncols: int, width: float = 3.2, height: float = 2.8):
    """A figure with `panels` axes in rows of `ncols` (unused cells removed), axes flattened."""
    ncols = max(1, min(ncols, panels))
    nrows = -(-panels // ncols)
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[panels:]:
        ax.remove()
    return fig, axes[:panels]


def message(text: str) -> Figure:
    """A figure saying why there is nothing to draw (never a silent empty output)."""
    fig = Figure(figsize=(6, 2), layout="constrained")
    ax = fig.subplots()
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    ax.set_axis_off()
    return fig


def save(fig: Figure, paths, dpi: int = 150) -> None:
    """Write `fig` to each path (format from the suffix: png, svg, pdf), atomically."""
    for path in [paths] if isinstance(paths, str | os.PathLike) else paths:
        fmt = os.path.splitext(path)[1][1:]
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight")
