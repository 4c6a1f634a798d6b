"""FASTA access: sniffing, scanning and indexing a genome, checks that its index fits, sizes,
and integer codes of a region (A, C, G, T, N = 0..4).
"""

from __future__ import annotations

import gzip
import logging
import os

import numpy as np
import pysam

from seqnn import SeqnnError
from seqnn.data import dna
from seqnn.io import atomic_path

log = logging.getLogger("seqnn")


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
