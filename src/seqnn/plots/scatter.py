"""Scatter figures with a fitted line and marginal distributions (Basenji's `jointplot` and
`regplot`): `regplot` draws points and their least-squares line y = a x + b with the equation
and Pearson r on an axis; `jointplot` adds the marginal histograms of x and y; `accuracy_joint`
is the report's per-track scatter of predicted against observed bins, on log10(value + 1)."""

from __future__ import annotations

import numpy as np
import seaborn as sns
from matplotlib.figure import Figure

from seqnn import SeqnnError
from seqnn.plots.style import PALETTE, styled

MAX_POINTS = 5000  # points drawn per panel (the fit uses all)


def fit_line(x, y) -> tuple[float, float, float]:
    """Least-squares slope a and intercept b of y = a x + b, and Pearson r (NaN when x or y
    is constant)."""
    x, y = np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()
    if len(x) != len(y) or len(x) < 2:
        raise SeqnnError(f"fit: need two or more (x, y) pairs of one length, got {len(x)} and "
                         f"{len(y)}")
    dx, dy = x - x.mean(), y - y.mean()
    sxx, syy = (dx * dx).sum(), (dy * dy).sum()
    if sxx == 0:
        return np.nan, np.nan, np.nan
    slope = (dx * dy).sum() / sxx
    r = (dx * dy).sum() / np.sqrt(sxx * syy) if syy > 0 else np.nan
    return float(slope), float(y.mean() - slope * x.mean()), float(r)


def _shown(n: int) -> np.ndarray:
    return np.arange(n) if n <= MAX_POINTS else np.linspace(0, n - 1, MAX_POINTS).astype(int)


def regplot(ax, x, y, label: str | None = None) -> tuple[float, float, float]:
    """Points (at most MAX_POINTS, evenly picked) and the fitted line with 'y = a x + b,
    r = ...' on `ax`; returns (a, b, r)."""
    x, y = np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()
    a, b, r = fit_line(x, y)
    pick = _shown(len(x))
    color = sns.color_palette(PALETTE)[0]
    ax.scatter(x[pick], y[pick], s=4, alpha=0.3, linewidths=0, rasterized=True, color=color)
    if np.isfinite(a):
        ends = np.array([x.min(), x.max()])
        ax.plot(ends, a * ends + b, color="0.15", lw=1.2)
    text = f"y = {a:.3g} x {'+' if b >= 0 else '-'} {abs(b):.3g}\nr = {r:.3f}"
    ax.text(0.03, 0.97, text if label is None else f"{label}\n{text}", transform=ax.transAxes,
            va="top", fontsize="small", bbox={"fc": "white", "ec": "0.8", "alpha": 0.8})
    return a, b, r


def _joint(fig, x, y, xlabel: str, ylabel: str, title: str | None):
    """A main axis with regplot and marginal histograms above and to the right, in `fig` (a
    figure or subfigure); returns the fit."""
    gs = fig.add_gridspec(2, 2, width_ratios=(4, 1), height_ratios=(1, 4), wspace=0.05,
                          hspace=0.05)
    ax = fig.add_subplot(gs[1, 0])
    top, right = fig.add_subplot(gs[0, 0], sharex=ax), fig.add_subplot(gs[1, 1], sharey=ax)
    fit = regplot(ax, x, y)
    color = sns.color_palette(PALETTE)[0]
    top.hist(np.ravel(x), bins=40, color=color, alpha=0.7)
    right.hist(np.ravel(y), bins=40, color=color, alpha=0.7, orientation="horizontal")
    for marginal in (top, right):
        marginal.tick_params(labelbottom=False, labelleft=False)
        marginal.grid(False)
    ax.set(xlabel=xlabel, ylabel=ylabel)
    if title:
        top.set_title(title, fontsize="small")
    return fit


@styled
def jointplot(x, y, xlabel: str = "x", ylabel: str = "y", title: str | None = None) -> Figure:
    """One scatter with its fitted line, equation and r, and the marginal histograms."""
    fig = Figure(figsize=(4.2, 4.2), layout="constrained")
    _joint(fig, x, y, xlabel, ylabel, title)
    return fig


@styled
def accuracy_joint(samples: list[tuple[np.ndarray, np.ndarray]], identifiers, groups,
                   r: dict[str, float] | None = None) -> Figure:
    """Per track, predicted against observed bins (a sample pooled over folds) on
    log10(value + 1), with the fitted line, its equation and r of these values, marginal
    histograms, and the track's cross-validated Pearson r from `r` in the title."""
    pred = np.concatenate([p for p, _ in samples])
    target = np.concatenate([t for _, t in samples])
    shown = [t for group in groups for t in group]
    ncols = min(3, len(shown))
    nrows = -(-len(shown) // ncols)
    fig = Figure(figsize=(3.6 * ncols, 3.6 * nrows), layout="constrained")
    subs = np.atleast_1d(fig.subfigures(nrows, ncols, squeeze=False).ravel())
    for sub in subs[len(shown):]:
        sub.set_visible(False)
    for sub, t in zip(subs, shown):
        obs, prd = (np.log10(np.maximum(v[:, t], 0) + 1) for v in (target, pred))
        name = identifiers[t]
        _joint(sub, obs, prd, "log10(observed + 1)", "log10(predicted + 1)",
               name if r is None else f"{name}  cross-validated r = {r[name]:.3f}")
    return fig
