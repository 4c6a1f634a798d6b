"""First-layer filters as position weight matrices (PWMs), in MEME format, and their match
to known motifs (numpy; `write_filters` loads the model).

PWM of a filter. A first convolution's filter w [width, 4] scores a one-hot window by
sum_l w[l, x_l]; at each position only the differences between bases matter. The PWM is
p[l, b] = softmax_b(beta * (w[l, b] - mean_b w[l, b])), with beta set per filter so that its
widest column spans `SPAN` nats (a motif's strongest base then has e^SPAN times the odds of its
weakest). Filters that are all zero (pruned or unused) give uniform PWMs.

Similarity (Tomtom-like). Two PWMs are compared at every offset where at least `min_overlap`
columns overlap, on both strands of the second, by the Pearson correlation of their
overlapping columns (flattened); the similarity is the best such r.
"""

from __future__ import annotations

import logging
import os

import numpy as np

from seqnn import SeqnnError
from seqnn.io import atomic_path
from seqnn.model.build import load_model
from seqnn.model.inspect import conv_weights

log = logging.getLogger("seqnn")

SPAN = 3.0
BASES = "ACGT"


def filter_pwms(weights: np.ndarray, span: float = SPAN) -> np.ndarray:
    """PWMs [filters, width, 4] of filters [filters, width, 4] (module docstring)."""
    w = np.asarray(weights, np.float64)
    if w.ndim != 3 or w.shape[2] != 4:
        raise SeqnnError(f"filters {w.shape}: need [filters, width, 4] (a DNA model's first "
                         "convolution)")
    c = w - w.mean(axis=2, keepdims=True)
    widest = (c.max(axis=2) - c.min(axis=2)).max(axis=1)
    beta = np.where(widest > 0, span / np.maximum(widest, 1e-30), 0.0)[:, None, None]
    e = np.exp(beta * c - (beta * c).max(axis=2, keepdims=True))
    return e / e.sum(axis=2, keepdims=True)


def one_hot_pwm(consensus: str, pseudo: float = 0.01) -> np.ndarray:
    """A PWM [len, 4] of a consensus sequence (each base 1 - 3 * pseudo, the others pseudo)."""
    idx = [BASES.index(b) for b in consensus.upper()]
    p = np.full((len(idx), 4), pseudo)
    p[np.arange(len(idx)), idx] = 1 - 3 * pseudo
    return p


def similarity(a: np.ndarray, b: np.ndarray, min_overlap: int | None = None) -> tuple:
    """(best r, offset of b in a, strand of b) over offsets and strands (module docstring);
    `min_overlap` defaults to the shorter PWM's length."""
    n = min(len(a), len(b)) if min_overlap is None else min_overlap
    best = (-np.inf, 0, "+")
    for strand, other in (("+", b), ("-", b[::-1, ::-1])):
        for off in range(n - len(other), len(a) - n + 1):
            lo, hi = max(off, 0), min(off + len(other), len(a))
            if hi - lo < n:
                continue
            x, y = a[lo:hi].ravel(), other[lo - off : hi - off].ravel()
            if x.std() == 0 or y.std() == 0:
                continue
            r = float(np.corrcoef(x, y)[0, 1])
            if r > best[0]:
                best = (r, off, strand)
    return best


def write_meme(path: str, pwms: np.ndarray, names=None, sites: int = 20) -> None:
    """PWMs [n, width, 4] as a MEME (version 4) motif file, written atomically."""
    names = names or [f"filter{i}" for i in range(len(pwms))]
    lines = ["MEME version 4", "", f"ALPHABET= {BASES}", "", "strands: + -", "",
             "Background letter frequencies", "A 0.25 C 0.25 G 0.25 T 0.25", ""]
    for name, pwm in zip(names, pwms):
        lines += [f"MOTIF {name}", "", f"letter-probability matrix: alength= 4 w= {len(pwm)} "
                  f"nsites= {sites} E= 0"]
        lines += [" ".join(f"{v:.6f}" for v in row) for row in pwm] + [""]
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write("\n".join(lines))


def read_meme(path: str) -> dict[str, np.ndarray]:
    """Motif name -> PWM [width, 4] of a MEME file's letter-probability matrices."""
    motifs, name, rows, width = {}, None, [], 0
    with open(path) as f:
        for line in f:
            words = line.split()
            if words[:1] == ["MOTIF"]:
                name = words[1]
            elif line.startswith("letter-probability matrix"):
                width, rows = int(line.split("w=")[1].split()[0]), []
            elif name and width and len(words) == 4:
                rows.append([float(v) for v in words])
                if len(rows) == width:
                    motifs[name], width = np.array(rows), 0
    return motifs


def write_filters(model_path: str, out_dir: str, *, layer: str | None = None,
                  span: float = SPAN) -> dict:
    """The first convolution's (or `layer`'s) filters of a model file as PWMs in
    out_dir/filters.meme and their raw weights in out_dir/filters.npy [filters, width, 4]."""
    model, _ = load_model(model_path)
    weights = conv_weights(model, name=layer)
    pwms = filter_pwms(weights, span)
    os.makedirs(out_dir, exist_ok=True)
    write_meme(os.path.join(out_dir, "filters.meme"), pwms)
    with atomic_path(os.path.join(out_dir, "filters.npy")) as tmp, open(tmp, "wb") as f:
        np.save(f, weights)
    info = pwms * np.log2(4 * np.maximum(pwms, 1e-12))
    log.info("%s: %d filters of %d bp as PWMs in %s", model_path, len(pwms), pwms.shape[1],
             out_dir)
    return {"filters": len(pwms), "width": int(pwms.shape[1]), "out_dir": out_dir,
            "info_bits": [round(float(v), 3) for v in info.sum(axis=(1, 2))]}
