"""How well gradient maps recover known motifs (the demo's planted ones): AUROC and effect sign.

For windows centred on motif occurrences (a gradients.h5 of `seqnn.apply.interpret`, its BED
names the motif kind), |input x gradient| on the track the kind acts on should rank the bases
inside occurrences of any motif (a BED6 of them) above every other base of the window, and the
centre motif's summed contribution should have the kind's effect sign.
"""

from __future__ import annotations

from collections.abc import Callable

import h5py
import numpy as np
import pandas as pd
from scipy.stats import rankdata

from seqnn.apply.attribution import input_x_gradient
from seqnn.data.bed import read_bed
from seqnn.data.demo import EFFECT, motif_track


def auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(a positive scores above a negative), ties counted half: U / (n1 n0)."""
    ranks = rankdata(np.concatenate([pos, neg]))
    u = ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2
    return float(u / (len(pos) * len(neg)))


def motif_mask(motifs: pd.DataFrame, chrom: str, start: int, length: int) -> np.ndarray:
    """[length] True at the window's bases inside any occurrence of `motifs` (BED columns
    chrom, start, end)."""
    m = motifs[(motifs.chrom == chrom) & (motifs.end > start) & (motifs.start < start + length)]
    mask = np.zeros(length, bool)
    for s, e in zip(m.start - start, m.end - start):
        mask[max(s, 0) : min(e, length)] = True
    return mask


def motif_recovery(gradients_h5: str, motifs: pd.DataFrame,
                   track_of: Callable[[str, str], str], sign_of: Callable[[str], int],
                   stranded: tuple[str, ...] = ()) -> dict:
    """Per motif kind (kinds in `stranded` per strand, as `promoter+`): `n` windows, `auroc` of
    |input x gradient| on track `track_of(kind, strand)` (bases inside `motifs` against all
    others, pooled over the windows), and `sign_frac`, the fraction of windows whose centre
    10 bp sum to the sign `sign_of(kind)`."""
    with h5py.File(gradients_h5, "r") as f:
        contrib = input_x_gradient(f["seqs"][:], f["grads"][:].astype(np.float32))  # [N, L, T]
        names, strands = f["name"][:].astype(str).tolist(), f["strand"][:].astype(str).tolist()
        chroms, starts = f["chrom"][:].astype(str), f["start"][:]
        ids = [i.decode() for i in f["identifiers"][:]]
    length = contrib.shape[1]
    centre = slice(length // 2 - 5, length // 2 + 5)
    groups = {}
    for i, (name, strand) in enumerate(zip(names, strands)):
        groups.setdefault(name + strand if name in stranded else name, []).append(i)
    out = {}
    for key, rows in sorted(groups.items()):
        pos, neg, signs = [], [], []
        for i in rows:
            c = contrib[i, :, ids.index(track_of(names[i], strands[i]))]
            mask = motif_mask(motifs, chroms[i], int(starts[i]), length)
            pos.append(np.abs(c[mask]))
            neg.append(np.abs(c[~mask]))
            signs.append(np.sign(c[centre].sum()) == sign_of(names[i]))
        out[key] = {"n": len(rows), "auroc": round(auroc(np.concatenate(pos),
                                                         np.concatenate(neg)), 4),
                    "sign_frac": round(float(np.mean(signs)), 3)}
    return out


def demo_recovery(gradients_h5: str, motifs_bed: str) -> dict:
    """`motif_recovery` of the demo's motifs (motifs.bed) on the tracks they act on."""
    return motif_recovery(gradients_h5, read_bed(motifs_bed), motif_track, EFFECT.get,
                          stranded=("promoter",))
