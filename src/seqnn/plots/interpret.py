"""Figures of model interpretation: sequence logos of contribution scores, in-silico
mutagenesis (ISM) heatmaps and distributions of variant effects.

As in `seqnn.plots.report` (in the style of `seqnn.plots.style`), every function returns a
`matplotlib.figure.Figure` built without pyplot, an empty input gives a figure saying so, and
`seqnn.plots.style.save` writes it. Per-base arrays have one column per base: A, C, G, T.
"""

from __future__ import annotations

import logging

import h5py
import logomaker
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from seqnn import SeqnnError
from seqnn.apply.attribution import input_x_gradient
from seqnn.data import dna
from seqnn.plots.report import MAX_TRACKS, track_groups
from seqnn.plots.style import grid, message, save, styled

BASES = "ACGT"
BASE_COLORS = {"A": "#109648", "C": "#255C99", "G": "#F7B32B", "T": "#D62839"}
STRIP_MAX = 500  # variants per track drawn as points over the violins

log = logging.getLogger("seqnn")


def _per_base(values, what: str) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    if values.ndim != 2 or values.shape[1] != 4:
        raise SeqnnError(f"{what}: got shape {values.shape}; give [positions, 4] (A, C, G, T)")
    return values


def _positions(n: int, start: int | None) -> np.ndarray:
    return np.arange(n) + (start or 0)


def _xlabel(chrom: str | None, start: int | None) -> str:
    return f"{chrom} position" if chrom else "position" if start is not None else "index"


def _width(n: int, per: float, extra: float) -> float:
    return float(np.clip(per * n + extra, 4.0, 30.0))


def _draw_logo(ax, contrib: np.ndarray, start: int | None) -> None:
    df = pd.DataFrame(contrib, columns=list(BASES), index=_positions(len(contrib), start))
    logomaker.Logo(df, ax=ax, color_scheme=BASE_COLORS, flip_below=True, baseline_width=0.6)
    ax.grid(False, axis="x")
    ax.set(ylabel="contribution")


def _draw_ism(ax, ism: np.ndarray, codes: np.ndarray, start: int | None, label: str) -> None:
    limit = np.nanmax(np.abs(ism)) if np.isfinite(ism).any() else 0.0
    limit = float(limit) or 1.0
    df = pd.DataFrame(ism.T, index=list(BASES), columns=_positions(len(ism), start))
    sns.heatmap(df, ax=ax, cmap="RdBu_r", vmin=-limit, vmax=limit,  # 0: the middle colour
                xticklabels=max(1, len(ism) // 20), yticklabels=True,
                cbar_kws={"label": label, "shrink": 0.9})
    ref = np.flatnonzero(codes < dna.N_CODE)
    ax.scatter(ref + 0.5, codes[ref] + 0.5, s=6, color="0.1", linewidths=0, label="reference")
    ax.tick_params(axis="y", rotation=0)
    ax.set(ylabel="base")


def _codes(ref_codes, n: int) -> np.ndarray:
    codes = dna.encode(ref_codes) if isinstance(ref_codes, str | bytes) else np.asarray(
        ref_codes)
    if len(codes) != n:
        raise SeqnnError(f"ism_heatmap: {len(codes)} reference bases for {n} positions; "
                         "give one reference base per ISM row")
    return codes


@styled
def logo(contrib, start: int | None = None, chrom: str | None = None,
         title: str | None = None) -> Figure:
    """Sequence logo of contributions [L, 4] (e.g. input x gradient) drawn with logomaker: each
    letter's height is its base's contribution, above the axis if positive and below (upside
    down) if negative; NaN counts as 0. x is the genome position (`start`: that of the first
    base, on `chrom`) or the index. Best for windows of up to a few hundred bp."""
    contrib = np.nan_to_num(_per_base(contrib, "logo"))
    if not len(contrib):
        return message("No contributions to draw: the window is empty (interpret_plots.logo).")
    fig, (ax,) = grid(1, 1, _width(len(contrib), 0.15, 1.5), 2.4)
    _draw_logo(ax, contrib, start)
    ax.set(xlabel=_xlabel(chrom, start), title=title)
    return fig


@styled
def ism_heatmap(ism, ref_codes, start: int | None = None, chrom: str | None = None,
                title: str | None = None, label: str = "ALT - REF") -> Figure:
    """In-silico mutagenesis scores [W, 4] as a heatmap, bases (rows) by positions (columns),
    in a diverging colormap centred at 0 with symmetric limits; a dot marks each position's
    reference base (`ref_codes`: codes [W] as `seqnn.data.dna.encode`, or the sequence; N unmarked).
    x is the genome position (`start`: that of the first base, on `chrom`) or the index."""
    ism = _per_base(ism, "ism_heatmap")
    codes = _codes(ref_codes, len(ism))
    if not len(ism):
        return message("No ISM scores to draw: the window is empty "
                        "(interpret_plots.ism_heatmap).")
    fig, (ax,) = grid(1, 1, _width(len(ism), 0.12, 2.5), 2.2)
    _draw_ism(ax, ism, codes, start, label)
    ax.set(xlabel=_xlabel(chrom, start), title=title)
    return fig


@styled
def region(contrib, ism, ref_codes, start: int, chrom: str, title: str | None = None,
           label: str = "ALT - REF") -> Figure:
    """One region's sequence logo of contributions [W, 4] above its ISM heatmap [W, 4], both
    over the same W bases from `start` on `chrom`."""
    contrib = np.nan_to_num(_per_base(contrib, "region"))
    ism = _per_base(ism, "region")
    codes = _codes(ref_codes, len(ism))
    if len(contrib) != len(ism) or not len(ism):
        return message(f"No region to draw: {len(contrib)} contribution and {len(ism)} ISM "
                        "positions (interpret_plots.region).")
    fig = Figure(figsize=(_width(len(ism), 0.14, 2.5), 4.4), layout="constrained")
    top, bottom = fig.subplots(2, 1)
    _draw_logo(top, contrib, start)
    top.set(title=title, xlim=(start - 0.5, start + len(ism) - 0.5))
    top.ticklabel_format(axis="x", style="plain", useOffset=False)
    _draw_ism(bottom, ism, codes, start, label)
    bottom.set(xlabel=_xlabel(chrom, start))
    return fig


@styled
def variant_effects(sad, identifiers, metric: str = "SAD", tracks=None,
                    limit: int = MAX_TRACKS) -> Figure:
    """Distribution of a variant score [V, T] (SAD, or logFC, ...) per track: a violin per
    track, with a point per variant when there are at most STRIP_MAX, and 0 marked. `tracks`
    names the identifiers to show (default: the first `limit`); NaN scores are left out."""
    sad = np.asarray(sad, dtype=float)
    if not sad.size:
        return message(f"No variant effects to draw: no variant was scored ({metric}); see "
                        "the log of seqnn.apply.variants.score_vcf.")
    if sad.ndim != 2 or sad.shape[1] != len(identifiers):
        raise SeqnnError(f"variant_effects: {metric} of shape {sad.shape} for "
                         f"{len(identifiers)} track identifiers; give [variants, tracks]")
    shown = [t for (t,) in track_groups(identifiers, range(len(identifiers)), tracks, limit)]
    names = [str(identifiers[t]) for t in shown]
    data = pd.DataFrame({"track": np.repeat(names, len(sad)),
                         metric: sad[:, shown].T.ravel()}).dropna()
    fig, (ax,) = grid(1, 1, _width(len(shown), 0.9, 2.0), 3.4)
    ax.axhline(0, color="0.5", lw=0.8, ls=":")
    few = len(sad) <= STRIP_MAX
    sns.violinplot(data, x="track", y=metric, order=names, ax=ax, cut=0, fill=False,
                   inner=None if few else "quart", density_norm="width", color="0.4")
    if few:
        sns.stripplot(data, x="track", y=metric, order=names, ax=ax, size=3, alpha=0.7, jitter=0.2)
    if len(shown) > 4:
        ax.tick_params(axis="x", rotation=45)
    ax.set(xlabel="track", ylabel=metric, title=f"{metric} of {len(sad)} variant(s) per track")
    return fig


def _region_figure(grads, ism, i: int, width: int) -> Figure:
    """Region i: logo and ISM heatmap over the centre `width` bp of its ISM window, for the
    track the substitutions there change most relative to its value (sum of |ISM centre| over
    the shown bases divided by the reference aggregate |A|): the measured effect, not the
    gradient, which a saturated non-linearity can inflate."""
    if i >= len(ism["start"]):
        return message(f"No region {i + 1}: the BED has {len(ism['start'])} region(s) on the "
                        "genome (interpret.plot_regions asks for more).")
    w0 = int(ism["start"][i] - ism["seq_start"][i])  # the ISM window in the input window
    lo = max((len(ism["seqs"][i]) - width) // 2, 0)
    hi = min(lo + width, len(ism["seqs"][i]))
    x, g = grads["seqs"][i], grads["grads"][i].astype(np.float32)
    shown = slice(w0 + lo, w0 + hi)
    contrib = input_x_gradient(x[None, shown], g[None, shown])[0]  # [W, K]
    effect = np.abs(ism["centre"][i, lo:hi]).sum(axis=(0, 1))
    k = int(np.argmax(effect / np.maximum(np.abs(ism["ref"][i]), 1e-6)))
    per_base = x[shown].astype(np.float32) * contrib[:, k : k + 1]
    track = ism["identifiers"][k]
    strand = ism["strand"][i]
    first = int(ism["start"][i]) + lo + 1  # 1-based, as genome browsers show it
    title = (f"{ism['name'][i]} ({strand}) {ism['chrom'][i]}:{first:,}-{first + hi - lo - 1:,}"
             f" · track {track}")
    ref = ism["seqs"][i, lo:hi]
    codes = np.where(ref.sum(-1) > 0, ref.argmax(-1), dna.N_CODE)
    return region(per_base, ism["centre"][i, lo:hi, :, k], codes, first, ism["chrom"][i], title,
                  label=f"ISM: Δ {track} (centre bins)")


def _read(path: str) -> dict:
    with h5py.File(path, "r") as f:
        return {k: f[k].asstr()[:] if f[k].dtype.kind in "OS" else f[k][:] for k in f}


def workflow_plots(gradients: str | None, ism: str | None, variants: str | None,
                   out: dict[str, str], formats=("png",), width: int = 60,
                   tracks=None, dpi: int = 150) -> None:
    """Draw the `interpret_plots` rule's outputs: ``region{i}`` (logo over ISM of the i-th
    region, from the gradients and ISM files) and ``variants`` (SAD per track); `out` maps a
    name to its path, written in each of `formats` (by suffix)."""
    grads = _read(gradients) if gradients else None
    mutagenesis = _read(ism) if ism else None
    for name, path in out.items():
        if name == "variants":
            scores = _read(variants)
            fig = variant_effects(scores["SAD"], list(scores["track_ids"]), tracks=tracks)
        else:
            fig = _region_figure(grads, mutagenesis, int(name.removeprefix("region")), width)
        stem = path.rsplit(".", 1)[0]
        save(fig, [f"{stem}.{fmt}" for fmt in formats], dpi)
    log.info("interpret plots: %s", ", ".join(out))
