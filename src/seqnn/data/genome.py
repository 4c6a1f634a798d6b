"""Genome: FASTA access, contigs split at gaps, cross-validation folds and sequence tiling.

Intervals are 0-based, half-open, as in BED. Tables are pandas DataFrames with columns
chrom, start, end (and `label`: fold0..fold{K-1}, or train/valid/test).
"""

from __future__ import annotations

import gzip
import logging
import os
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pysam

from seqnn import SeqnnError
from seqnn.data import dna
from seqnn.io import atomic_path

log = logging.getLogger("seqnn")

BED_COLUMNS = ["chrom", "start", "end"]
REGION_COLUMNS = ["name", "score", "strand"]


def sniff_fasta(path: str) -> bool:
    """Fail with one line unless `path` starts like a FASTA (plain or bgzipped, not empty, not
    plain gzip); returns whether it is bgzipped."""
    try:
        with open(path, "rb") as f:
            head = f.read(18)
    except OSError as e:
        raise SeqnnError(f"{path}: cannot read the FASTA ({e.strerror}); give an existing, "
                         "readable FASTA") from None
    if not head:
        raise SeqnnError(f"{path}: the FASTA is empty; give the genome's sequences")
    if head[:2] == b"\x1f\x8b":
        if len(head) < 14 or not head[3] & 4 or head[12:14] != b"BC":
            raise SeqnnError(f"{path}: compressed with plain gzip, which cannot be indexed; "
                             "decompress it (gunzip) or recompress it with bgzip")
        return True
    if head[:1] != b">":
        raise SeqnnError(f"{path}: not a FASTA (its first byte is not '>'); give the genome "
                         "in FASTA format")
    return False


NAMELESS = "a '>' header line without a name; name every sequence"


def _duplicate(fasta: str, name: str) -> SeqnnError:
    return SeqnnError(f"{fasta}: sequence name {name} appears twice; rename or remove one copy "
                      "(samtools faidx keeps only the first)")


def scan_fasta(path: str) -> dict[str, int]:
    """Sequence lengths of a FASTA read once without an index (C-speed searches over 16 MB
    chunks); fails on duplicate names, which `samtools faidx` drops with a warning."""
    bgzf = sniff_fasta(path)
    sizes: dict[str, int] = {}
    current = [None, 0]  # name, bases so far

    def close():
        name = current[0]
        if name is not None:
            if name in sizes:
                raise _duplicate(path, name)
            if current[1]:  # as faidx, which leaves sequences without bases out
                sizes[name] = current[1]

    def consume(body: bytes) -> None:  # whole lines, each after a newline
        pos = 0
        while True:
            header = body.find(b"\n>", pos)
            seg = body[pos : header + 1 if header >= 0 else len(body)]
            current[1] += len(seg) - seg.count(b"\n") - seg.count(b"\r")
            if header < 0:
                return
            end = body.find(b"\n", header + 1)
            close()
            words = body[header + 2 : end].split()
            if not words:
                raise SeqnnError(f"{path}: {NAMELESS}")
            current[:] = [words[0].decode(errors="replace"), 0]
            pos = end

    with (gzip.open if bgzf else open)(path, "rb") as f:
        carry = b"\n"
        for chunk in iter(lambda: f.read(1 << 24), b""):
            buf = carry + chunk
            cut = buf.rfind(b"\n")
            consume(buf[: cut + 1])
            carry = buf[cut:]
        consume(carry + b"\n")
    close()
    if not sizes:
        raise SeqnnError(f"{path}: no sequence in the FASTA; give the genome's sequences")
    return sizes


def check_index(fasta: str, fai: str | None = None) -> None:
    """Fail unless the FASTA index `fai` (default FASTA.fai) fits the file: each sequence's header
    line right before its offset, lines ending where the index says and the next header (or
    the file's end) right after its last line. An index left from before the FASTA was edited
    or rewrapped would read sequences at wrong offsets; one built with a duplicate name lacks
    the second copy."""
    fai = fai or f"{fasta}.fai"
    with open(fai) as f:
        rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    names = {row[0] for row in rows}
    stale = (f"{fai}: the index does not fit {fasta} (the FASTA changed after indexing); delete "
             f"the index to rebuild it (samtools faidx {fasta})")
    with open(fasta, "rb") as fa:
        expected = 0  # where the next header line should start
        for row in [*rows, None]:
            fa.seek(expected)
            line = fa.readline()
            while True:  # skip blank lines, and sequences without bases (faidx leaves them out)
                if line and not line.strip():
                    line = fa.readline()
                    continue
                if line.startswith(b">"):
                    here, after = fa.tell(), fa.readline()
                    if not after or after.startswith(b">"):
                        line = after
                        continue
                    fa.seek(here)
                break
            found = line[1:].split()[:1] if line.startswith(b">") else []
            found = found[0].decode(errors="replace") if found else None
            if line.startswith(b">") and found is None:
                raise SeqnnError(f"{fasta}: {NAMELESS}")
            if row is None:
                if line:
                    raise _duplicate(fasta, found) if found in names else SeqnnError(stale)
                return
            try:
                name, length, offset, bases, width = row[0], *map(int, row[1:5])
            except ValueError:
                raise SeqnnError(f"{fai}: not a FASTA index (5 tab-separated columns); "
                                 f"delete it to rebuild it (samtools faidx {fasta})") from None
            if found != name or fa.tell() != offset:
                if found in names and found != name:
                    raise _duplicate(fasta, found)
                raise SeqnnError(stale)
            if length > bases:
                fa.seek(offset + bases)
                if fa.read(width - bases).strip():
                    raise SeqnnError(stale)
            lines, rest = divmod(length, bases) if bases else (0, 0)
            expected = offset + lines * width + (rest + width - bases if rest else 0)


def open_fasta(fasta: str, fai: str | None = None) -> pysam.FastaFile:
    """Open an indexed FASTA, checking that its index fits (`check_index`; pysam writes one
    where there is none); `fai` names an index kept apart from a read-only FASTA."""
    bgzf = sniff_fasta(fasta)
    index = fai or f"{fasta}.fai"
    existed = os.path.exists(index)
    try:
        fa = pysam.FastaFile(fasta, filepath_index=fai)
    except (OSError, ValueError) as e:
        msg = (f"{fasta}: cannot open FASTA ({e}); give a FASTA whose lines have one length per "
               "sequence, in a folder where its index can be written")
        raise SeqnnError(msg) from e
    if not bgzf:  # also when pysam built it just now: a duplicate name leaves a gap
        try:
            check_index(fasta, fai)
        except SeqnnError:
            fa.close()
            if not existed:  # not one of ours to keep
                os.remove(index)
            raise
    return fa


def index_fasta(fasta: str, fai: str) -> None:
    """Write the FASTA's index `fai` with samtools faidx (atomically), its failure as one line."""
    sniff_fasta(fasta)
    with atomic_path(fai) as tmp:
        try:
            pysam.faidx(fasta, "--fai-idx", tmp)
        except pysam.utils.SamtoolsError:
            raise SeqnnError(f"{fasta}: samtools faidx cannot index it (its reason is on the "
                             "line above); give every line of a sequence but its last the same "
                             "length") from None


def chrom_sizes(fasta: str, fai: str | None = None) -> dict[str, int]:
    """Chromosome lengths in FASTA order."""
    with open_fasta(fasta, fai) as fa:
        return dict(zip(fa.references, fa.lengths, strict=True))


def fasta_sizes(fasta: str, fai: str | None = None) -> dict[str, int]:
    """Chromosome lengths in FASTA order, from `fai` where it is newer than the FASTA and fits
    it, else read from the FASTA itself (`scan_fasta`): checks before any index is built."""
    if fai and os.path.exists(fai) and os.path.getmtime(fai) >= os.path.getmtime(fasta):
        check_index(fasta, fai)
        with open(fai) as f:
            return {row[0]: int(row[1]) for row in (line.split("\t") for line in f)}
    return scan_fasta(fasta)


def fetch_codes(fa: pysam.FastaFile, chrom: str, start: int, end: int) -> np.ndarray:
    """Codes of chrom:start-end, padded with N where the interval leaves the chromosome."""
    length = fa.get_reference_length(chrom)
    codes = np.full(end - start, dna.N_CODE, dtype=np.uint8)
    lo, hi = max(start, 0), min(end, length)
    if hi > lo:
        codes[lo - start : hi - start] = dna.encode(fa.fetch(chrom, lo, hi))
    return codes


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


def runs(mask: np.ndarray) -> np.ndarray:
    """[n, 2] start/end of the runs of True in a boolean array."""
    edges = np.diff(np.concatenate([[0], mask.view(np.int8), [0]]))
    return np.stack([np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)], axis=1)


def _complement(length: int, cuts: np.ndarray) -> np.ndarray:
    """Intervals of [0, length) not covered by the [n, 2] intervals `cuts`."""
    if len(cuts) == 0:
        return np.array([[0, length]])
    cuts = cuts[np.argsort(cuts[:, 0], kind="stable")]
    ends = np.maximum.accumulate(cuts[:, 1])
    starts = np.concatenate([[0], ends])
    stops = np.concatenate([cuts[:, 0], [length]])
    keep = stops > starts
    return np.stack([starts[keep], stops[keep]], axis=1)


def chosen_chroms(fasta: str, names: list[str], chroms: list[str] | None) -> list[str]:
    """The sequences of genome.chroms (`chroms`; None: all `names` of the FASTA)."""
    missing = sorted(set(chroms or []) - set(names))
    if missing:
        raise SeqnnError(f"{fasta}: genome.chroms lists {', '.join(missing)} which the FASTA "
                         f"lacks; use names from its index ({', '.join(names[:5])}…)")
    return chroms or names


def split_contigs(
    fasta: str,
    fai: str | None = None,
    chroms: list[str] | None = None,
    min_gap: int = 32,
    gaps: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Contigs: chromosomes split at runs of >= min_gap N and at the `gaps` regions."""
    rows = []
    with open_fasta(fasta, fai) as fa:
        for chrom in chosen_chroms(fasta, list(fa.references), chroms):
            codes = dna.encode(fa.fetch(chrom))
            cuts = runs(codes == dna.N_CODE)
            cuts = cuts[cuts[:, 1] - cuts[:, 0] >= min_gap]
            if gaps is not None and len(gaps):
                g = gaps[gaps.chrom == chrom][["start", "end"]].to_numpy()
                cuts = np.concatenate([cuts, np.clip(g, 0, len(codes))])
            for start, end in _complement(len(codes), cuts):
                rows.append((chrom, int(start), int(end)))
    return pd.DataFrame(rows, columns=BED_COLUMNS)


def break_contigs(contigs: pd.DataFrame, min_length: int, break_length: int | None) -> pd.DataFrame:
    """Drop contigs shorter than min_length; cut longer than break_length into equal pieces."""
    contigs = contigs[contigs.end - contigs.start >= min_length]
    if not break_length:
        return contigs.reset_index(drop=True)
    rows = []
    for chrom, start, end in contigs[BED_COLUMNS].itertuples(index=False):
        pieces = -(-(end - start) // break_length)
        bounds = np.linspace(start, end, pieces + 1).round().astype(int)
        rows += [(chrom, int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]
    out = pd.DataFrame(rows, columns=BED_COLUMNS)
    return out[out.end - out.start >= min_length].reset_index(drop=True)


def fold_labels(folds: int) -> list[str]:
    """Split labels: fold0..fold{K-1}, or train/valid/test when folds is 0."""
    return [f"fold{k}" for k in range(folds)] if folds else ["train", "valid", "test"]


def assign_folds(
    contigs: pd.DataFrame,
    folds: int,
    seed: int,
    valid_frac: float = 0.1,
    test_frac: float = 0.1,
) -> pd.DataFrame:
    """Label contigs with folds balanced by total length (seeded greedy: longest first).

    With folds=0, label train/valid/test with about valid_frac/test_frac of the length.
    """
    rng = np.random.default_rng(seed)
    labels = np.empty(len(contigs), dtype=object)
    if folds:
        order = rng.permutation(len(contigs))
        lengths = (contigs.end - contigs.start).to_numpy()[order]
        order = order[np.argsort(-lengths, kind="stable")]
        load = np.zeros(folds)
        for i in order:
            k = int(np.argmin(load))
            labels[i] = f"fold{k}"
            load[k] += contigs.end.iat[i] - contigs.start.iat[i]
    else:
        # Basenji's percentage split: shuffled contigs fill test, then valid, then train.
        target = {"test": test_frac, "valid": valid_frac}
        total = float((contigs.end - contigs.start).sum())
        filled = dict.fromkeys(target, 0.0)
        for i in rng.permutation(len(contigs)):
            label = next((s for s in target if filled[s] < target[s] * total), "train")
            labels[i] = label
            if label != "train":
                filled[label] += contigs.end.iat[i] - contigs.start.iat[i]
    return contigs.assign(label=labels)


def tile(contigs: pd.DataFrame, seq_length: int, strides: dict[str, int]) -> pd.DataFrame:
    """Windows of seq_length along each labelled contig, with the stride of its label.

    The windows are centred in the contig (the leftover split between both ends).
    """
    parts = []
    for chrom, start, end, label in contigs[BED_COLUMNS + ["label"]].itertuples(index=False):
        stride = strides[label]
        n = (end - start - seq_length) // stride + 1
        offset = start + (end - start - seq_length - (n - 1) * stride) // 2
        starts = offset + stride * np.arange(n, dtype=np.int64)
        parts.append(pd.DataFrame(
            {"chrom": chrom, "start": starts, "end": starts + seq_length, "label": label}
        ))
    if not parts:
        return pd.DataFrame(columns=BED_COLUMNS + ["label"])
    return pd.concat(parts, ignore_index=True)


def masked_fraction(seqs: pd.DataFrame, regions: pd.DataFrame, sizes: dict[str, int]) -> np.ndarray:
    """Fraction of each sequence's bases covered by `regions` (vectorised prefix sums)."""
    frac = np.zeros(len(seqs))
    for chrom, idx in seqs.groupby("chrom", sort=False).indices.items():
        reg = regions[regions.chrom == chrom]
        if reg.empty:
            continue
        diff = np.zeros(sizes[chrom] + 1, dtype=np.int32)
        np.add.at(diff, np.clip(reg.start.to_numpy(), 0, sizes[chrom]), 1)
        np.add.at(diff, np.clip(reg.end.to_numpy(), 0, sizes[chrom]), -1)
        covered = np.concatenate([[0], np.cumsum(np.cumsum(diff[:-1]) > 0)])
        s, e = seqs.start.to_numpy()[idx], seqs.end.to_numpy()[idx]
        frac[idx] = (covered[e] - covered[s]) / (e - s)
    return frac


def write_bed(df: pd.DataFrame, path: str) -> None:
    """Write a headerless, tab-separated BED (atomically)."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, sep="\t", header=False, index=False)


def read_labelled_bed(path: str) -> pd.DataFrame:
    """Read contigs.bed or sequences.bed (chrom start end label)."""
    return read_bed(path, ["label"])


def _genome_order(df: pd.DataFrame, chroms: list[str], by_label: list[str] | None = None):
    keys = {"chrom": lambda c: c.map({n: i for i, n in enumerate(chroms)})}
    if by_label:
        keys["label"] = lambda c: c.map({n: i for i, n in enumerate(by_label)})
    cols = (["label"] if by_label else []) + ["chrom", "start"]
    return df.sort_values(cols, key=lambda c: keys.get(c.name, lambda x: x)(c),
                          kind="stable").reset_index(drop=True)


def write_contigs(
    fasta: str,
    out: str,
    seq_length: int,
    folds: int,
    seed: int,
    fai: str | None = None,
    chroms: list[str] | None = None,
    min_gap: int = 32,
    break_length: int | None = None,
    gaps: str | None = None,
    valid_frac: float = 0.1,
    test_frac: float = 0.1,
) -> pd.DataFrame:
    """contigs.bed: contigs of at least seq_length bp, labelled with balanced folds.

    Args:
        fasta: the genome FASTA.
        out: the BED to write (chrom, start, end, label).
        seq_length: contigs shorter than this are dropped.
        folds: K folds (0: train/valid/test by `valid_frac` and `test_frac`).
        seed: seed of the fold assignment's tie-breaking shuffle.
        fai: the FASTA's index (default: FASTA.fai).
        chroms: sequences to use (default: all).
        min_gap: runs of at least this many N split contigs.
        break_length: contigs longer than this are cut into equal pieces.
        gaps: BED of assembly gaps, split like N runs.
        valid_frac: fraction of the genome for `valid` when `folds` is 0.
        test_frac: fraction of the genome for `test` when `folds` is 0.
    """
    contigs = split_contigs(fasta, fai, chroms, min_gap, read_bed(gaps))
    contigs = break_contigs(contigs, seq_length, break_length)
    if contigs.empty:
        raise SeqnnError(f"{fasta}: no contig of at least seq_length={seq_length} bp between N "
                         "runs and gaps; lower data.seq_length or raise data.min_gap")
    if folds and len(contigs) < folds:
        raise SeqnnError(f"{fasta}: {len(contigs)} contig(s) for {folds} folds; lower data.folds "
                         "or data.break_length")
    contigs = assign_folds(contigs, folds, seed, valid_frac, test_frac)
    contigs = _genome_order(contigs, list(chrom_sizes(fasta, fai)))
    write_bed(contigs, out)
    return contigs


def write_sequences(
    contigs_bed: str,
    out: str,
    seq_length: int,
    folds: int,
    stride_train: int,
    stride_test: int,
    sizes: dict[str, int],
    unmappable: str | None = None,
    unmappable_max_frac: float = 0.3,
) -> pd.DataFrame:
    """sequences.bed: windows tiled along the contigs, grouped by label, in genome order.

    Folds are tiled with stride_train (each fold trains K-2 models, as in Basenji); valid and
    test of a train/valid/test split (folds: 0) with stride_test. Windows with more than
    unmappable_max_frac of their bases in `unmappable` regions are dropped.
    """
    labels = fold_labels(folds)
    strides = {lab: stride_test if lab in ("valid", "test") else stride_train for lab in labels}
    seqs = tile(read_labelled_bed(contigs_bed), seq_length, strides)
    if unmappable:
        seqs = seqs[masked_fraction(seqs, read_bed(unmappable), sizes) <= unmappable_max_frac]
    counts = seqs.label.value_counts()
    empty = [lab for lab in labels if counts.get(lab, 0) == 0]
    if empty:
        fix = ("use fewer data.folds, a smaller data.break_length or data.stride_train" if folds
               else "adjust data.valid_frac / data.test_frac or lower data.break_length")
        if unmappable:
            fix += ", or raise data.unmappable_max_frac"
        raise SeqnnError(f"{contigs_bed}: {', '.join(empty)} got no sequence; {fix}")
    seqs = _genome_order(seqs, list(sizes), by_label=labels)
    write_bed(seqs, out)
    return seqs
