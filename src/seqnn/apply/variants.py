"""Variant effect prediction: score the ALT alleles of a VCF with an ensemble of models.

Variants. Each ALT allele of a VCF record (plain or bgzipped) is one variant: a multi-allelic
record gives one per ALT, all with the record's ID (or chrom:pos:ref:alt when it has none).
Symbolic alleles (<DEL>, *, breakends, a missing ALT) are skipped and counted.

Sequences. A variant is scored from two windows of L = seq_length bp in which its first allele
base sits at index L//2, padded with N past chromosome ends: the reference window is the genome;
the alternative one is the same left flank, the ALT allele, then the genome after REF. Indels
are scored, by shifting and stitching so the window stays L bp: after a deletion the right
flank reaches further along the genome; an insertion of d bp drops d//2 bp from the left end
and the rest from the right end (the ALT straddles the centre). Bins are compared position by
position, so flanking sequence that moved contributes to an indel's scores (as in Basenji).

Reference check. REF must match the FASTA at POS (any case). If it does not but ALT does, the
variant is `flipped`: the genome window carries ALT and REF is stitched in. `ref`, `alt` and the
scores keep the VCF's orientation, the effect of ALT relative to REF: SAD and logFC are those of
the swapped variant negated (D1 and D2 are symmetric). If neither allele matches, POS is below 1
or REF reaches past the chromosome's end, or the chromosome is not in the FASTA, the variant is
skipped, counted and reported (never scored); a VCF with no variant left to score is an error.

Scores, per variant and track, of the mean predictions r (REF) and a (ALT) [bins] over models
and (shift, strand) augmentations (reverse-complement predictions unflipped via strand_pair):

    SAD = sum(a - r)    logFC = log2((sum(a) + 1) / (sum(r) + 1))
    D1 = mean |a - r|   D2 = sqrt(mean (a - r)^2)

Predictions are the models' outputs (as Basenji's SAD), or with `untransform` the tracks'
units per base (`seqnn.data.coverage.track_untransform`); logFC is NaN where a sum is below -1.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Sequence

import h5py
import numpy as np
import pandas as pd
import pysam

from seqnn import SeqnnError
from seqnn.apply.ensemble import MemberMoments, compiled_inference, load_ensemble
from seqnn.data import dna
from seqnn.data.coverage import track_untransform
from seqnn.data.fasta import fetch_codes, open_fasta
from seqnn.io import atomic_path
from seqnn.log import Progress
from seqnn.train.runtime import set_threads

log = logging.getLogger("seqnn")

SCORES = ("SAD", "logFC", "D1", "D2")
SKIPS = {
    "symbolic": "symbolic or missing ALT allele (<DEL>, *, breakend)",
    "missing_chrom": "chromosome not in the FASTA",
    "ref_mismatch": "neither REF nor ALT matches the FASTA",
    "past_end": "POS below 1 or REF past the end of its chromosome",
}
_FIX = {
    "symbolic": "only sequence alleles (A, C, G, T, N) are scored",
    "missing_chrom": "name chromosomes as the FASTA does, or map them with aliases",
    "ref_mismatch": "check that the VCF and the FASTA share a genome build",
    "past_end": "fix POS (1-based) or use the FASTA of the VCF's genome build",
}
_ALLELE = re.compile(r"[ACGTN]+")
COLUMNS = ["id", "chrom", "pos", "ref", "alt"]


def read_vcf(vcf: str) -> tuple[pd.DataFrame, dict[str, int]]:
    """Variants of a VCF, one row per ALT allele (id, chrom, pos 1-based, ref, alt, upper case),
    with the number of records and of skipped symbolic alleles."""
    rows, records, symbolic, examples = [], 0, 0, []
    try:
        with pysam.VariantFile(str(vcf)) as f:
            for rec in f:
                records += 1
                ref = (rec.ref or "").upper()
                for alt in rec.alts or (None,):
                    alt = (alt or ".").upper()
                    vid = rec.id or f"{rec.chrom}:{rec.pos}:{ref}:{alt}"
                    if not (_ALLELE.fullmatch(ref) and _ALLELE.fullmatch(alt)):
                        symbolic += 1
                        examples.append(vid)
                        continue
                    rows.append((vid, rec.chrom, rec.pos, ref, alt))
    except (OSError, ValueError) as e:
        raise SeqnnError(f"{vcf}: cannot read VCF ({e}); give a VCF (plain or bgzipped) with "
                         "its ##fileformat and #CHROM header lines") from e
    _report(vcf, "symbolic", examples)
    table = pd.DataFrame(rows, columns=COLUMNS).astype({"pos": np.int64})
    return table, {"records": records, "skipped_symbolic": symbolic}


def _report(vcf, reason: str, ids: list[str], extra: str = "") -> None:
    if ids:
        log.warning("%s: %d variant(s) skipped, %s (e.g. %s)%s; %s", vcf, len(ids),
                    SKIPS[reason], ", ".join(ids[:5]), extra, _FIX[reason])


def check_alleles(variants: pd.DataFrame, fa: pysam.FastaFile, vcf: str = "VCF",
                  aliases: dict[str, str] | None = None) -> tuple[pd.DataFrame, dict[str, int]]:
    """The variants that can be scored, with `fasta_chrom` and `flipped` (module docstring),
    and the numbers skipped for a chromosome missing from the FASTA, a REF past its end or a
    REF mismatch.

    `aliases` maps FASTA names to the VCF's (as genome.chrom_aliases).
    """
    inverse = {v: k for k, v in (aliases or {}).items()}
    known = set(fa.references)
    chroms = variants.chrom.map(lambda c: c if c in known else inverse.get(c, c))
    present = chroms.isin(known).to_numpy()
    missing = sorted(set(variants.chrom[~present]))
    _report(vcf, "missing_chrom", list(variants.id[~present]),
            f" on {', '.join(missing[:5])} (the FASTA has {', '.join(fa.references[:5])})")
    sizes = dict(zip(fa.references, fa.lengths, strict=True))
    ends = variants.pos.to_numpy() - 1 + variants.ref.str.len().to_numpy()
    past = present & ((ends > chroms.map(sizes).fillna(np.inf).to_numpy())
                      | (variants.pos.to_numpy() < 1))
    _report(vcf, "past_end", list(variants.id[past]), " (" + ", ".join(
        f"{c} has {sizes[c]:,} bp" for c in sorted(set(chroms[past]))[:5]) + " in the FASTA)")
    ref_ok = np.zeros(len(variants), bool)
    alt_ok = np.zeros(len(variants), bool)
    inside = present & ~past
    columns = (c.to_numpy()[inside] for c in (chroms, variants.pos, variants.ref, variants.alt))
    for i, chrom, pos, ref, alt in zip(np.flatnonzero(inside), *columns):
        genome = fetch_codes(fa, chrom, pos - 1, pos - 1 + max(len(ref), len(alt)))
        ref_ok[i] = np.array_equal(genome[: len(ref)], dna.encode(ref))
        alt_ok[i] = np.array_equal(genome[: len(alt)], dna.encode(alt))
    mismatch = inside & ~ref_ok & ~alt_ok
    _report(vcf, "ref_mismatch", list(variants.id[mismatch]))
    keep = inside & (ref_ok | alt_ok)
    out = variants.assign(fasta_chrom=chroms, flipped=~ref_ok)[keep].reset_index(drop=True)
    if out.flipped.any():
        log.info("%s: %d variant(s) flipped: the FASTA carries ALT, not REF (e.g. %s); scored "
                 "as ALT relative to REF", vcf, out.flipped.sum(),
                 ", ".join(out.id[out.flipped][:5]))
    return out, {"skipped_missing_chrom": int((~present).sum()),
                 "skipped_ref_mismatch": int(mismatch.sum()), "skipped_past_end": int(past.sum())}


def stitch(fa: pysam.FastaFile, chrom: str, pos0: int, old: str, new: str,
           seq_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Codes [L] of the genome window with base pos0 (0-based) at index L//2, and of that
    window with the genome's allele `old` at pos0 replaced by `new` (module docstring)."""
    length, half = seq_length, seq_length // 2
    r, a = len(old), len(new)
    codes = fetch_codes(fa, chrom, pos0 - length, pos0 + r + length)
    joined = np.concatenate([codes[:length], dna.encode(new), codes[length + r :]])
    start = length - half + max(a - r, 0) // 2
    return codes[length - half : 2 * length - half], joined[start : start + length]


def windows(fa: pysam.FastaFile, variants: pd.DataFrame,
            seq_length: int) -> tuple[np.ndarray, np.ndarray]:
    """One-hot REF and ALT windows [n, L, 4] of checked variants (`check_alleles`)."""
    ref_codes, alt_codes = [], []
    for chrom, pos, ref, alt, flipped in variants[["fasta_chrom", "pos", "ref", "alt",
                                                   "flipped"]].itertuples(index=False):
        if flipped:  # the genome carries ALT: stitch REF in
            a, r = stitch(fa, chrom, pos - 1, alt, ref, seq_length)
        else:
            r, a = stitch(fa, chrom, pos - 1, ref, alt, seq_length)
        ref_codes.append(r)
        alt_codes.append(a)
    return dna.one_hot(np.stack(ref_codes)), dna.one_hot(np.stack(alt_codes))


def scores(ref: np.ndarray, alt: np.ndarray) -> dict[str, np.ndarray]:
    """SAD, logFC, D1 and D2 [n, T] of REF and ALT predictions [n, bins, T]."""
    ref = np.asarray(ref, np.float64)
    diff = np.asarray(alt, np.float64) - ref
    ref_sum, alt_sum = ref.sum(1), ref.sum(1) + diff.sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        logfc = np.log2(alt_sum + 1) - np.log2(ref_sum + 1)
    return {"SAD": diff.sum(1), "logFC": logfc, "D1": np.abs(diff).mean(1),
            "D2": np.sqrt(np.square(diff).mean(1))}


def score_vcf(models: Sequence[str] | str, fasta: str, vcf: str, out_h5: str, *,
              fai: str | None = None, rc: bool = True, shifts: Sequence[int] = (0,),
              batch_size: int = 16, head: int | None = None, tracks=None,
              sum_tracks: bool = False, untransform: bool = False,
              aliases: dict[str, str] | None = None, threads: int | None = None) -> dict:
    """Score every ALT allele of `vcf` with the models' mean prediction into HDF5 `out_h5`.

    Args:
        models: one model file or several, averaged.
        fasta, fai: the genome (and its index).
        vcf: the variants (plain or bgzipped); out_h5: the scores file.
        rc, shifts: augmentations averaged over (module docstring).
        batch_size: variants predicted together (their REF and ALT windows in one batch of
            2 x batch_size).
        head: the output of multi-head models.
        tracks, sum_tracks: score only these tracks (`ensemble.load_ensemble`; with `rc`,
            stranded ones bring their partners), or their sum.
        untransform: score in the tracks' units per base (module docstring).
        aliases: FASTA chromosome name -> the VCF's.
        threads: CPU threads of TensorFlow (None: its default).

    Returns:
        The counts also stored as the file's attributes (records, variants, scored, flipped,
        indels and skipped_* per reason) and the seconds taken.
    """

    if batch_size < 1:
        raise SeqnnError(f"batch_size {batch_size}: give at least 1 variant per batch")
    set_threads(threads)
    models = [models] if isinstance(models, str | os.PathLike) else list(models)
    tic = time.perf_counter()
    variants, counts = read_vcf(vcf)
    alleles = len(variants) + counts["skipped_symbolic"]
    with open_fasta(fasta, fai) as fa:
        variants, skipped = check_alleles(variants, fa, vcf, aliases)
        counts = {"records": counts["records"], "variants": alleles, "scored": len(variants),
                  "flipped": int(variants.flipped.sum()),
                  "indels": int((variants.ref.str.len() != variants.alt.str.len()).sum()),
                  "skipped_symbolic": counts["skipped_symbolic"], **skipped}
        if not len(variants):
            reasons = ", ".join(f"{k.removeprefix('skipped_')} {v}" for k, v in counts.items()
                                if k.startswith("skipped_") and v)
            raise SeqnnError(f"{vcf}: none of its {alleles} variant(s) can be scored "
                             f"({reasons or 'no record'}); fix the VCF as the warnings say")
        ens = load_ensemble(models, head, tracks=tracks, sum_tracks=sum_tracks, partners=rc)
        moments = MemberMoments(
            [compiled_inference(m, ens.seq_length, 2 * batch_size) for m in ens.models], rc,
            shifts, ens.strand_pair,
            track_untransform(ens.tracks, ens.pool_width) if untransform else None)
        with atomic_path(out_h5) as tmp, h5py.File(tmp, "w") as f:
            _write_variant_table(f, variants, ens.identifiers)
            out = {k: f.create_dataset(k, (len(variants), len(ens.tracks)), np.float32,
                                       track_times=False) for k in SCORES}
            with Progress(len(variants), "variants", "variants") as progress:
                for lo in range(0, len(variants), batch_size):
                    x_ref, x_alt = windows(fa, variants.iloc[lo : lo + batch_size],
                                           ens.seq_length)
                    mean, _ = moments(np.concatenate([x_ref, x_alt]))
                    for key, value in scores(mean[: len(x_ref)], mean[len(x_ref) :]).items():
                        out[key][lo : lo + len(x_ref)] = value
                    progress.update(len(x_ref))
            f.attrs.update({**counts, "models": json.dumps([str(path) for path in ens.paths]),
                            "rc": bool(rc), "shifts": list(shifts),
                            "untransformed": bool(untransform),
                            "seq_length": ens.seq_length, "pool_width": ens.pool_width})
    counts["seconds"] = round(time.perf_counter() - tic, 2)
    log.info("%s: %d of %d variant(s) scored (%d flipped, %d indels) over %d track(s) x %d "
             "member(s) in %.1f s", out_h5, counts["scored"], alleles, counts["flipped"],
             counts["indels"], len(ens.tracks), len(ens.models) * moments.per_model,
             counts["seconds"])
    return counts


def _write_variant_table(f, variants: pd.DataFrame, identifiers: list[str]) -> None:
    """The variants' columns (as in the VCF) and the track identifiers into HDF5 `f`."""
    text = h5py.string_dtype()
    for name, column in (("variant_ids", "id"), ("chrom", "chrom"), ("ref", "ref"),
                         ("alt", "alt")):
        f.create_dataset(name, data=np.array(variants[column].tolist(), dtype=object),
                         dtype=text)
    f.create_dataset("pos", data=variants.pos.to_numpy(np.int64))
    f.create_dataset("flipped", data=variants.flipped.to_numpy(bool))
    f.create_dataset("track_ids", data=np.array(identifiers, dtype=object), dtype=text)


def read_scores(path: str) -> dict:
    """A scores file of `score_vcf` as arrays (strings decoded) plus its attributes."""
    with h5py.File(path, "r") as f:
        out = {k: f[k].asstr()[:] if f[k].dtype.kind == "O" else f[k][:] for k in f}
        out["attrs"] = dict(f.attrs)
    return out
