"""BED files: reading (UCSC track lines, ragged rows, gzip), placing regions on a genome,
writing and the labelled BEDs of the data stage (chrom, start, end, label).

Intervals are 0-based, half-open.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from seqnn import SeqnnError
from seqnn.io import atomic_path

log = logging.getLogger("seqnn")


BED_COLUMNS = ["chrom", "start", "end"]


REGION_COLUMNS = ["name", "score", "strand"]


def read_bed(path: str | None, extra: Sequence[str] = ()) -> pd.DataFrame:
    """A tab-separated BED file as columns chrom, start, end (int64) and the `extra` columns
    that follow them (strings, missing where a row has fewer), e.g. ("label",) or
    `REGION_COLUMNS`; comment, track and browser lines skipped. No path: an empty table."""
    names = [*BED_COLUMNS, *extra]
    if not path:
        dtypes = "Oii" + "O" * len(extra)
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(names, dtypes)})
    skip = ("#", "track", "browser")  # comments and UCSC header lines
    try:
        with (gzip.open if str(path).endswith(".gz") else open)(path, "rt") as f:
            rows = [line.rstrip("\r\n").split("\t") for line in f
                    if line.strip() and not line.startswith(skip)]
    except (OSError, UnicodeDecodeError) as e:
        raise SeqnnError(f"{path}: not a readable BED file ({e}); give tab-separated chrom, "
                         "start, end columns") from e
    if not rows:
        return read_bed(None, extra)
    width = max(map(len, rows))
    raw = pd.DataFrame([r + [None] * (width - len(r)) for r in rows], dtype=str)
    short = [r for r in rows if len(r) < 3]
    if short:
        raise SeqnnError(f"{path}: a line with fewer than 3 columns ({' '.join(short[0])!r}); "
                         "give chrom, start, end (tab-separated)")
    try:
        bed = pd.DataFrame({"chrom": raw[0], "start": raw[1].astype(np.int64),
                            "end": raw[2].astype(np.int64)})
    except ValueError as e:
        raise SeqnnError(f"{path}: start/end are not integers ({e}); fix the BED") from e
    for i, name in enumerate(extra, 3):
        bed[name] = raw[i] if raw.shape[1] > i else None
    if (bed.end < bed.start).any() or (bed.start < 0).any():
        raise SeqnnError(f"{path}: a region ends before it starts or starts below 0; fix its "
                         "start/end columns")
    return bed.reset_index(drop=True)


def read_regions(path: str, sizes: dict[str, int], aliases: dict[str, str] | None = None,
                 ) -> pd.DataFrame:
    """BED regions (chrom start end [name [score strand]]) on the genome (`place_regions`)."""
    return place_regions(read_bed(path, REGION_COLUMNS), sizes, aliases, path)


def place_regions(bed: pd.DataFrame, sizes: dict[str, int], aliases: dict[str, str] | None,
                  path: str) -> pd.DataFrame:
    """Regions of a BED (`read_bed` with `REGION_COLUMNS`) in FASTA chromosome names.

    Chromosomes may be named as in the FASTA or by their `aliases` (FASTA name -> alias).
    Regions on other chromosomes are reported and dropped, ends past a chromosome clipped;
    the original name stays in `bed_chrom`. Names default to chrom:start-end, strands to +.
    """
    df = pd.DataFrame({"bed_chrom": bed.chrom, "start": bed.start, "end": bed.end})
    df["name"] = bed["name"].fillna(df.bed_chrom + ":" + df.start.astype(str) + "-"
                                 + df.end.astype(str))
    df["strand"] = bed["strand"].fillna("+")
    inverse = {v: k for k, v in (aliases or {}).items()}
    df.insert(0, "chrom", df.bed_chrom.map(lambda c: c if c in sizes else inverse.get(c, c)))
    known = df.chrom.isin(list(sizes))
    if not known.all():
        missing = df.bed_chrom[~known].unique()
        log.warning("%s: %d region(s) on %d chromosome(s) not in the genome skipped (%s); the "
                    "genome has %s", path, (~known).sum(), len(missing), ", ".join(missing[:5]),
                    ", ".join(list(sizes)[:5]))
    df = df[known].reset_index(drop=True)
    if bed.empty:
        raise SeqnnError(f"{path}: no region in the BED; give chrom, start, end lines")
    if df.empty:
        raise SeqnnError(f"{path}: no region lies on a chromosome of the genome "
                         f"({', '.join(list(sizes)[:5])}…); use the FASTA's chromosome names")
    size = df.chrom.map(sizes)
    past = df.start >= size
    if past.any():
        i = int(np.flatnonzero(past)[0])
        raise SeqnnError(f"{path}: region {df.name[i]} ({df.bed_chrom[i]}:{df.start[i]}-"
                         f"{df.end[i]}) starts past the end of {df.chrom[i]} ({size[i]:,} bp) and "
                         f"{past.sum()} in all; fix or drop them (is the BED of another "
                         "genome build?)")
    if (df.end > size).any():
        log.warning("%s: %d region(s) end past their chromosome; clipped", path,
                    (df.end > size).sum())
        df["end"] = np.minimum(df.end, size)
    return df


def write_bed(df: pd.DataFrame, path: str) -> None:
    """Write a headerless, tab-separated BED (atomically)."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, sep="\t", header=False, index=False)


def read_labelled_bed(path: str) -> pd.DataFrame:
    """Read contigs.bed or sequences.bed (chrom start end label)."""
    return read_bed(path, ["label"])
