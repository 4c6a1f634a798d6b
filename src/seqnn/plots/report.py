"""Figures of training and evaluation (seaborn / matplotlib) and HTML pages for the report.

Every figure function returns a `matplotlib.figure.Figure` in the style of `seqnn.plots.style`,
whose `save` writes it in one or more formats. `workflow_plots` draws the figures of the
workflow's `plots` rule from its files (history.tsv, cv_summary.tsv, examples.h5 of
`seqnn.apply.evaluate`, sequences.bed); `summary_page` and `config_page` are HTML pages the
report shows inline.
"""

from __future__ import annotations

import html
import logging
import os

import h5py
import numpy as np
import pandas as pd
import seaborn as sns
import yaml
from matplotlib.figure import Figure

from seqnn import SeqnnError
from seqnn.apply.accuracy import ALL_TRACKS
from seqnn.data.bed import read_labelled_bed
from seqnn.io import atomic_path
from seqnn.plots.scatter import accuracy_joint
from seqnn.plots.style import PALETTE, grid, message, save, styled

log = logging.getLogger("seqnn")

OBSERVED = "0.55"
MAX_TRACKS = 8


def track_groups(identifiers, strand_pair, tracks=None, limit: int = MAX_TRACKS) -> list[tuple]:
    """Track indices to show, as (t,) or stranded (first, second) pairs, in sheet order.

    `tracks` names identifiers (a stranded track brings its pair); None: the first `limit`.
    """
    identifiers = list(identifiers)
    if tracks:
        unknown = sorted(set(tracks) - set(identifiers))
        if unknown:

            raise SeqnnError(f"plots.tracks: {', '.join(unknown)} not in the track sheet; "
                             f"use identifiers among {', '.join(identifiers[:10])}")
    chosen = [i for i, name in enumerate(identifiers) if not tracks or name in tracks]
    groups = []
    for t in chosen:
        pair = int(strand_pair[t])
        group = (t,) if pair == t else tuple(sorted((t, pair)))
        if group not in groups:
            groups.append(group)
    return groups if tracks else groups[:limit]


# ---------------------------------------------------------------------------------------------
# Figures


@styled
def training_curves(histories: dict[str, pd.DataFrame]) -> Figure:
    """Loss and Pearson r by epoch, one colour per fold, training solid and validation dashed;
    a dot marks each fold's best validation r (the saved model)."""
    fig, (loss_ax, r_ax) = grid(2, 2, 4.2, 3.2)
    colors = sns.color_palette(PALETTE, len(histories))
    for (fold, hist), color in zip(histories.items(), colors):
        for ax, key in ((loss_ax, "loss"), (r_ax, "pearsonr")):
            ax.plot(hist.epoch, hist[key], color=color, label=f"{fold} train")
            ax.plot(hist.epoch, hist[f"val_{key}"], color=color, ls="--", label=f"{fold} valid")
        best = hist.val_pearsonr.idxmax()
        r_ax.plot(hist.epoch[best], hist.val_pearsonr[best], "o", color=color)
    loss_ax.set(xlabel="epoch", ylabel="loss", title="Loss")
    r_ax.set(xlabel="epoch", ylabel="Pearson r", title="Pearson r (dot: best valid)")
    r_ax.legend(fontsize="small", ncols=2 if len(histories) > 3 else 1)
    return fig


def _long(summary: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per-track values of `metric`: one row per model, fold and track."""
    rows = summary[(summary.metric == metric) & (summary.identifier != ALL_TRACKS)]
    folds = [c for c in summary.columns if c not in ("model", "identifier", "metric", "mean",
                                                       "sem")]
    return rows.melt(id_vars=["model", "identifier"], value_vars=folds, var_name="fold",
                     value_name=metric).dropna()


@styled
def r_distribution(summary: pd.DataFrame, metric: str = "pearsonr") -> Figure:
    """Distribution of per-track `metric` per test fold (violin, a point per track); the
    folds' ensembles beside the single models when evaluated."""
    data = _long(summary, metric)
    hue = "model" if data.model.nunique() > 1 else None
    fig, (ax,) = grid(1, 1, max(4.0, 1.2 * data.fold.nunique() + 2), 3.6)
    sns.violinplot(data, x="fold", y=metric, hue=hue, cut=0, inner=None, ax=ax,
                   density_norm="width", fill=False, legend=False)
    sns.stripplot(data, x="fold", y=metric, hue=hue, dodge=hue is not None, ax=ax, size=4,
                  alpha=0.8, legend=hue is not None)
    ax.set(xlabel="test fold", ylabel=f"per-track {metric}",
           title=f"Per-track {metric} on each test fold")
    return fig


@styled
def fold_bars(summary: pd.DataFrame, metrics=("pearsonr", "r2", "spearmanr")) -> Figure:
    """Per test fold, the mean over tracks of each metric, error bars the SEM over tracks."""
    metrics = [m for m in metrics if m in set(summary.metric)]
    fig, axes = grid(len(metrics), 3, 3.4, 3.0)
    for ax, metric in zip(axes, metrics):
        data = _long(summary, metric)
        hue = "model" if data.model.nunique() > 1 else None
        sns.barplot(data, x="fold", y=metric, hue=hue, errorbar="se", ax=ax, capsize=0.2,
                    legend=ax is axes[0] and hue is not None)
        ax.set(xlabel="test fold", ylabel=f"mean {metric}", title=metric)
    return fig


def _position_kb(locus: dict, pool_width: int) -> np.ndarray:
    return (locus["start"] + (np.arange(len(locus["target"])) + 0.5) * pool_width) / 1000


@styled
def loci(examples: list[dict], identifiers, groups, pool_width: int) -> Figure:
    """Observed (grey) and predicted tracks along example windows (columns), one row per track
    or stranded pair (first track above the axis, its pair mirrored below)."""
    if not examples:
        return message("No example windows: the test folds have no window with a defined "
                        "Pearson r and no region was asked for (plots.loci).")
    fig, axes = grid(len(groups) * len(examples), len(examples), 4.2, 1.5)
    axes = axes.reshape(len(groups), len(examples))
    color = sns.color_palette(PALETTE)[0]
    for col, locus in enumerate(examples):
        x = _position_kb(locus, pool_width)
        for row, group in enumerate(groups):
            ax = axes[row, col]
            for sign, t in zip((1, -1), group):
                ax.fill_between(x, 0, sign * locus["target"][:, t], step="mid", color=OBSERVED,
                                lw=0, label="observed" if sign > 0 else None)
                ax.plot(x, sign * locus["pred"][:, t], drawstyle="steps-mid", color=color,
                        lw=1, label="predicted" if sign > 0 else None)
            if len(group) == 2:
                ax.axhline(0, color="0.2", lw=0.6)
            ax.set_xlim(x[0], x[-1])
            if col == 0:
                ax.set_ylabel(" / ".join(identifiers[t] for t in group), fontsize="small")
            if row == len(groups) - 1:
                ax.set_xlabel(f"{locus['chrom']} position (kb)")
            else:
                ax.tick_params(labelbottom=False)
        axes[0, col].set_title(f"{locus['chrom']}:{locus['start']:,}-{locus['end']:,}\n"
                               f"{locus['reason']}, {locus['fold']}, r = {locus['r']:.3f}",
                               fontsize="small")
    axes[0, 0].legend(fontsize="x-small", loc="upper left")
    return fig


def _curves(label: np.ndarray, score: np.ndarray):
    """ROC (fpr, tpr) and precision-recall (recall, precision) points, thresholds descending."""
    order = np.argsort(-score, kind="stable")
    tp = np.concatenate([[0], np.cumsum(label[order])])
    fp = np.concatenate([[0], np.cumsum(~label[order])])
    precision = tp[1:] / np.arange(1, len(label) + 1)
    return (fp / max(fp[-1], 1), tp / max(tp[-1], 1)), (tp[1:] / max(tp[-1], 1), precision)


@styled
def roc_pr(samples: list[tuple[np.ndarray, np.ndarray]], identifiers, auc_labels, shown,
           auroc: dict[str, float] | None = None) -> Figure:
    """ROC and precision-recall curves of the tracks with labels (binary tracks, or called
    peaks), from the bins sampled in each fold, pooled."""
    if all(auc_labels[t] == "none" for t in shown):
        return message("No ROC / PR curves: no track is binary (0/1) and peak calling is off "
                        "(set evaluate.peaks: true).")
    label = np.concatenate([lab for lab, _ in samples])
    score = np.concatenate([s for _, s in samples])
    positives = label.sum(axis=0)
    tracks = [t for t in shown if auc_labels[t] != "none" and 0 < positives[t] < len(label)]
    if not tracks:
        return message("No ROC / PR curves: no peak was called in the sampled test bins "
                        "(or every bin is one).")
    fig, (roc_ax, pr_ax) = grid(2, 2, 4.0, 3.6)
    for t in tracks:
        (fpr, tpr), (recall, precision) = _curves(label[:, t], score[:, t])
        name = identifiers[t]
        text = f"{name} ({auc_labels[t]})"
        if auroc:
            text += f" AUROC {auroc[name]:.3f}"
        roc_ax.plot(fpr, tpr, label=text)
        pr_ax.plot(recall, precision, label=name)
    roc_ax.plot([0, 1], [0, 1], color="0.5", lw=0.8, ls=":")
    roc_ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    pr_ax.set(xlabel="recall", ylabel="precision", title="Precision-recall", ylim=(0, 1.02))
    roc_ax.legend(fontsize="x-small", loc="lower right")
    return fig


@styled
def data_overview(sequences: pd.DataFrame) -> Figure:
    """Windows per split (fold), stacked by chromosome."""
    counts = pd.crosstab(sequences.label, sequences.chrom)
    counts = counts.reindex(sorted(counts.index, key=lambda s: (len(s), s)))
    fig, (ax,) = grid(1, 1, max(4.0, 0.8 * len(counts) + 2.5), 3.4)
    bottom = np.zeros(len(counts))
    for chrom, color in zip(counts.columns, sns.color_palette(PALETTE, len(counts.columns))):
        ax.bar(counts.index, counts[chrom], bottom=bottom, label=chrom, color=color)
        bottom += counts[chrom].to_numpy()
    ax.set(xlabel="split", ylabel="windows", title="Sequence windows per split")
    ax.legend(title="chromosome", fontsize="small", bbox_to_anchor=(1.02, 1), loc="upper left")
    return fig


# ---------------------------------------------------------------------------------------------
# Files


_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title><style>
body {{font-family: sans-serif; font-size: 14px; margin: 1em}}
table {{border-collapse: collapse}}
th, td {{padding: 3px 10px; border-bottom: 1px solid #ddd; text-align: right}}
th {{background: #f3f3f3}}
</style></head><body><h3>{title}</h3>
{body}
</body></html>
"""


def write_page(title: str, body: str, path: str) -> None:
    """A self-contained HTML page (title, then `body` HTML), written atomically."""
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write(_PAGE.format(title=html.escape(title), body=body))


def summary_page(summary: pd.DataFrame, path: str) -> None:
    """cv_summary as an HTML table: one row per model and track, 'mean ± SEM' per metric."""
    cells = [f"{m:.3f}" + (f" ± {s:.3f}" if np.isfinite(s) else "") if np.isfinite(m) else ""
             for m, s in zip(summary["mean"], summary["sem"])]
    table = summary.assign(value=cells).pivot_table(
        index=["model", "identifier"], columns="metric", values="value", aggfunc="first",
        sort=False).rename_axis(columns=None)
    write_page("Cross-validated accuracy: mean ± SEM over test folds",
               table.to_html(na_rep="", border=0), path)


def config_page(config: dict, path: str) -> None:
    """The workflow configuration as YAML on an HTML page."""
    text = yaml.safe_dump(config, sort_keys=False)
    write_page("Configuration used", f"<pre>{html.escape(text, quote=False)}</pre>", path)


def read_examples(path: str) -> dict:
    """examples.h5 of `seqnn.apply.evaluate` as arrays: attrs, sample and loci (list of dicts)."""
    with h5py.File(path) as h5:
        out = {key: h5.attrs[key] for key in h5.attrs}
        out["identifiers"] = [str(s) for s in out["identifiers"]]
        out["auc_labels"] = [str(s) for s in out["auc_labels"]]
        out["sample"] = {k: h5["sample"][k][:] for k in h5["sample"]}
        group = h5["loci"]
        n_bins = group["target"].shape[1]
        out["loci"] = [
            {"chrom": group["chrom"][i].decode(), "start": int(group["start"][i]),
             "end": int(group["start"][i]) + n_bins * int(out["pool_width"]),
             "reason": group["reason"][i].decode(), "r": float(group["r"][i]),
             "pred": group["pred"][i], "target": group["target"][i]}
            for i in range(len(group["r"]))
        ]
    return out


def pick_loci(examples: dict[str, dict], n: int) -> list[dict]:
    """The `n` best and `n` worst windows over all folds' candidates, then those asked for."""
    found = [{**locus, "fold": fold} for fold, ex in examples.items() for locus in ex["loci"]]
    best = sorted((e for e in found if e["reason"] == "best"), key=lambda e: -e["r"])[:n]
    worst = sorted((e for e in found if e["reason"] == "worst"), key=lambda e: e["r"])[:n]
    return best + worst + [e for e in found if e["reason"].startswith("asked")]


def workflow_plots(histories: dict[str, str], summary: str, examples: dict[str, str],
                   sequences: str, out: dict[str, str], formats=("png",), tracks=None,
                   n_loci: int = 2, dpi: int = 150) -> None:
    """Draw the `plots` rule's outputs. `out` maps a figure name (training, data, scatter,
    r_distribution, folds, loci, roc_pr) to its path, written in each of `formats` (by
    suffix), and ``summary`` to the HTML table's path. Inputs are per fold {name: path}.
    """
    table = pd.read_csv(summary, sep="\t")
    ex = {fold: read_examples(path) for fold, path in examples.items()}
    first = next(iter(ex.values()))
    ids = first["identifiers"]
    groups = track_groups(ids, first["strand_pair"], tracks)
    single = table[(table.model == "single")].set_index(["identifier", "metric"])["mean"]
    metric = {m: single.xs(m, level="metric").to_dict() for m in ("pearsonr", "auroc")
              if m in set(table.metric)}
    figures = {
        "training": lambda: training_curves(
            {fold: pd.read_csv(path, sep="\t") for fold, path in histories.items()}),
        "data": lambda: data_overview(read_labelled_bed(sequences)),
        "scatter": lambda: accuracy_joint([(e["sample"]["pred"], e["sample"]["target"])
                                           for e in ex.values()], ids, groups,
                                          metric.get("pearsonr")),
        "r_distribution": lambda: r_distribution(table),
        "folds": lambda: fold_bars(table),
        "loci": lambda: loci(pick_loci(ex, n_loci), ids, groups, int(first["pool_width"])),
        "roc_pr": lambda: roc_pr([(e["sample"]["label"], e["sample"]["pred"])
                                  for e in ex.values()], ids, first["auc_labels"],
                                 [t for g in groups for t in g], metric.get("auroc")),
    }
    for name, path in out.items():
        if name == "summary":
            summary_page(table, path)
            continue
        stem = os.path.splitext(path)[0]
        save(figures[name](), [f"{stem}.{fmt}" for fmt in formats], dpi)
    log.info("plots: %d outputs (%s) from %d fold(s), %d track group(s) shown", len(out),
             ", ".join(formats), len(ex), len(groups))
