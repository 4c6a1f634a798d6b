"""Hidden layers of BED regions' windows: a named layer's activations and the gradients of the
aggregate with respect to them (Basenji's `hidden(layers)` and `gradients(..., layers)`),
averaged over the members as input gradients are (`seqnn.apply.interpreter`, "Hidden layers").

Layout of the HDF5 file (N regions, L_h x C the layer's activations, K selected tracks):

    hidden       float32 [N, L_h, C]     the layer's mean activations over members
    grads        dtype [N, L_h, C, K]    mean gradient of each track's statistic w.r.t. them
    aggregate    float32 [N, K]          the statistic's mean over members
    chrom, name, strand, start, end, identifiers, track_index, bin_window, attrs: as the
    gradient maps' (`seqnn.apply.interpret.GRADIENT_LAYOUT`), plus attrs layer and layer_bp
    (bp per position, L / L_h)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import h5py
import numpy as np

from seqnn.apply.interpret import _batches, _setup, _write_regions
from seqnn.io import atomic_path

log = logging.getLogger("seqnn")


def layer_maps(models: Sequence[str], fasta: str, bed: str, out_h5: str, layer: str, *,
               fai: str | None = None, dtype: str = "float16", batch_size: int = 8,
               **options) -> dict:
    """A layer's activations and gradients for the BED regions' windows into `out_h5` (module
    docstring).

    Args:
        models, fasta, bed, out_h5, fai: as `seqnn.apply.interpret.gradient_maps`.
        layer: the layer's name (`seqnn summary` lists them).
        dtype: of the stored gradients.
        batch_size: windows per batch.
        **options: `gradient_maps`' tracks, window, reduce, rc, shifts, tss, head, aliases,
            missing, threads, mc_n, seed, statistic, untransform, pseudo, denominator.

    Returns:
        A summary (regions, skipped, tracks, members, layer, shape).
    """
    defaults = {"tracks": None, "window": None, "reduce": "sum", "rc": True, "shifts": (0,),
                "tss": False, "head": None, "aliases": None, "missing": "skip",
                "threads": None}
    run = _setup(models, fasta, bed, fai=fai, batch_size=batch_size, layer=layer,
                 **{**defaults, **options})
    interp, n, k = run.interp, len(run.regions), len(run.selected)
    shape = interp.grad_shape
    with atomic_path(out_h5) as tmp, h5py.File(tmp, "w") as f:
        _write_regions(f, run, run.starts, run.starts + run.ens.seq_length)
        f.attrs.update({"dtype": np.dtype(dtype).name, "layer": layer,
                        "layer_bp": run.ens.seq_length / shape[0]})
        hidden = f.create_dataset("hidden", (n, *shape), np.float32, chunks=(1, *shape))
        grads = f.create_dataset("grads", (n, *shape, k), dtype, chunks=(1, *shape, k))
        values = f.create_dataset("aggregate", (n, k), np.float32)
        for rows, x in _batches(fasta, fai, run.regions.chrom.to_numpy(), run.starts,
                                run.ens.seq_length, batch_size, f"layer {layer}"):
            g, a = interp.gradients(x, run.agg[rows])
            hidden[rows], grads[rows], values[rows] = interp.hidden(x), g.astype(dtype), a
    log.info("%s: layer %s %s of %d regions x %d tracks (%d members)", out_h5, layer, shape, n,
             k, interp.members)
    ids = [str(t) for t in np.array(run.ens.identifiers)[run.selected]]
    return {"regions": n, "skipped": run.skipped, "tracks": ids, "members": interp.members,
            "layer": layer, "shape": list(shape)}
