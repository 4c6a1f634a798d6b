"""Variant scores against a hand-made model whose outputs are known functions of the input.

The count model predicts, per 8 bp bin, the number of G (track g), C (track c, g's strand pair)
and G + C bases (track gc), so every score follows from windows cut out of the FASTA string by
hand here (N-padded past chromosome ends; indels stitched by the documented rule).
"""

import itertools
import logging

import keras
import numpy as np
import pysam
import pytest
from conftest import TINY_SIZES, write_tiny_fasta

from seqnn import SeqnnError
from seqnn import log as seqnn_log
from seqnn.apply import variants as V
from seqnn.data.dna import decode
from seqnn.model.build import save_model

L, PW, CROP = 64, 8, 8
T = (L - 2 * CROP) // PW  # 6 bins
H = L // 2
TRACKS = [
    {"identifier": "g", "sum_stat": "sum", "scale": 1.0, "clip_soft": None, "strand_pair": 1},
    {"identifier": "c", "sum_stat": "sum", "scale": 1.0, "clip_soft": None, "strand_pair": 0},
    {"identifier": "gc", "sum_stat": "sum", "scale": 1.0, "clip_soft": None, "strand_pair": 2},
]
HEADER = ("##fileformat=VCFv4.2\n"
          + "".join(f"##contig=<ID={c},length={n}>\n" for c, n in TINY_SIZES.items())
          + "##contig=<ID=chrX,length=5000>\n"
          + "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")


def count_model(path, weight=1.0):
    x = keras.Input((L, 4), name="sequence")
    pooled = keras.layers.AveragePooling1D(PW)(keras.layers.Cropping1D(CROP)(x))
    dense = keras.layers.Dense(3, name="final")
    w = np.zeros((4, 3), np.float32)
    w[2, 0] = w[1, 1] = w[1, 2] = w[2, 2] = PW * weight
    model = keras.Model(x, dense(pooled))
    dense.set_weights([w, np.zeros(3, np.float32)])
    stats = {"seq_length": L, "pool_width": PW, "crop_bp": CROP, "target_length": T,
             "num_targets": 3}
    save_model(model, path, params={"model": {"seq_length": L}}, targets=TRACKS,
               statistics=stats)
    return str(path)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("variants")
    fasta = write_tiny_fasta(d / "genome.fa")
    pysam.faidx(str(fasta))
    with pysam.FastaFile(str(fasta)) as fa:
        genome = {c: fa.fetch(c) for c in fa.references}
    return {"fasta": str(fasta), "genome": genome, "model": count_model(d / "m.keras"),
            "double": count_model(d / "m2.keras", weight=2.0)}


def write_vcf(path, rows):
    """A VCF of (chrom, pos, id, ref, alt) rows."""
    path.write_text(HEADER + "".join(f"{c}\t{p}\t{i}\t{r}\t{a}\t.\t.\t.\n"
                                     for c, p, i, r, a in rows))
    return str(path)


def cut(seq, start, length=L):
    """seq[start:start + length], N past either end."""
    s = "N" * max(0, -start) + seq[max(start, 0) : start + length]
    return s.ljust(length, "N")


def bins(window, shift=0):
    """Per-bin G, C and G+C counts [T, 3] of a window moved `shift` bp right."""
    moved = ("N" * shift + window)[:L] if shift >= 0 else window[-shift:] + "N" * -shift
    core = np.array(list(moved[CROP : L - CROP])).reshape(T, PW)
    g, c = (core == "G").sum(1), (core == "C").sum(1)
    return np.stack([g, c, g + c], 1).astype(float)


def expected(ref_window, alt_window, shifts=(0,), weight=1.0):
    r = weight * np.mean([bins(ref_window, s) for s in shifts], 0)
    a = weight * np.mean([bins(alt_window, s) for s in shifts], 0)
    return {"SAD": (a - r).sum(0), "logFC": np.log2((a.sum(0) + 1) / (r.sum(0) + 1)),
            "D1": np.abs(a - r).mean(0), "D2": np.sqrt(((a - r) ** 2).mean(0))}


def snv_windows(seq, pos, alt):
    """REF and ALT windows of an SNV at 1-based pos (its base at index L//2)."""
    ref = cut(seq, pos - 1 - H)
    return ref, ref[:H] + alt + ref[H + 1 :]


def other(base, skip=()):
    return next(b for b in "ACGT" if b != base and b not in skip)


def assert_scores(got, i, want):
    for key in V.SCORES:
        np.testing.assert_allclose(got[key][i], want[key], rtol=1e-6, atol=1e-6, err_msg=key)


def test_snvs_multiallelic_and_h5(tiny, tmp_path):
    """SNVs (one with no ID, one multi-allelic record) equal hand-made scores, averaged over
    two models and both strands (strand pairs unflipped); the file holds every column."""
    chrI = tiny["genome"]["chrI"]
    p0 = chrI.index("A", 499) + 1  # an A to G: one more G in one bin
    b1, b2 = chrI[1199], chrI[1999]
    rows = [("chrI", p0, "rs1", "A", "G"), ("chrI", 1200, ".", b1, other(b1)),
            ("chrI", 2000, "rs3", b2, f"{other(b2)},{other(b2, other(b2))}")]
    vcf = write_vcf(tmp_path / "snv.vcf", rows)
    out = tmp_path / "scores.h5"
    summary = V.score_vcf([tiny["model"], tiny["double"]], tiny["fasta"], vcf, out, rc=True)
    assert {k: summary[k] for k in ("records", "variants", "scored", "flipped", "indels",
                                    "skipped_symbolic", "skipped_missing_chrom",
                                    "skipped_ref_mismatch", "skipped_past_end")} == {
        "records": 3, "variants": 4, "scored": 4, "flipped": 0, "indels": 0,
        "skipped_symbolic": 0, "skipped_missing_chrom": 0, "skipped_ref_mismatch": 0,
        "skipped_past_end": 0}
    got = V.read_scores(out)
    alts = [rows[0][4], rows[1][4], *rows[2][4].split(",")]
    poss = [p0, 1200, 2000, 2000]
    assert got["variant_ids"].tolist() == ["rs1", f"chrI:1200:{rows[1][3]}:{alts[1]}", "rs3",
                                           "rs3"]
    assert got["chrom"].tolist() == ["chrI"] * 4 and got["pos"].tolist() == poss
    assert got["ref"].tolist() == [chrI[p - 1] for p in poss] and got["alt"].tolist() == alts
    assert got["flipped"].tolist() == [False] * 4 and got["track_ids"].tolist() == ["g", "c",
                                                                                   "gc"]
    assert all(got[k].shape == (4, 3) and got[k].dtype == np.float32 for k in V.SCORES)
    assert got["attrs"]["scored"] == 4 and got["attrs"]["seq_length"] == L
    assert list(got["attrs"]["shifts"]) == [0] and bool(got["attrs"]["rc"])
    for i, (pos, alt) in enumerate(zip(poss, alts)):
        assert_scores(got, i, expected(*snv_windows(chrI, pos, alt), weight=1.5))
    # A to G adds one G in one bin of tracks g and gc: 1.5 (the mean of weights 1 and 2)
    np.testing.assert_allclose(got["SAD"][0], [1.5, 0, 1.5])
    np.testing.assert_allclose(got["D1"][0], [1.5 / T, 0, 1.5 / T])
    np.testing.assert_allclose(got["D2"][0], [1.5 / np.sqrt(T), 0, 1.5 / np.sqrt(T)])


def test_flipped_and_mismatched_reference(tiny, tmp_path, caplog):
    """REF wrong but ALT in the genome: flipped, scored as ALT relative to REF (the swapped
    SNV's scores negated); neither allele in the genome: skipped and reported with its ID."""
    chrII = tiny["genome"]["chrII"]
    g1, g2 = chrII[699], chrII[1499]
    rows = [("chrII", 700, "flip", other(g1), g1),           # the genome carries ALT
            ("chrII", 1500, "bad", other(g2), other(g2, other(g2))),
            ("chrII", 1500, "good", g2, other(g2))]
    vcf = write_vcf(tmp_path / "flip.vcf", rows)
    caplog.set_level(logging.INFO, logger="seqnn")
    summary = V.score_vcf([tiny["model"]], tiny["fasta"], vcf, tmp_path / "s.h5", rc=False)
    assert summary["scored"] == 2 and summary["flipped"] == 1
    assert summary["skipped_ref_mismatch"] == 1
    assert "1 variant(s) skipped, neither REF nor ALT matches the FASTA (e.g. bad)" in caplog.text
    assert "1 variant(s) flipped" in caplog.text
    got = V.read_scores(tmp_path / "s.h5")
    assert got["variant_ids"].tolist() == ["flip", "good"]
    assert got["flipped"].tolist() == [True, False]
    assert got["ref"][0] == other(g1) and got["alt"][0] == g1  # as in the VCF
    genome_w, stitched_w = snv_windows(chrII, 700, other(g1))
    want = expected(stitched_w, genome_w)  # REF stitched in, ALT = genome
    swapped = expected(genome_w, stitched_w)
    assert_scores(got, 0, want)
    np.testing.assert_allclose(want["SAD"], -swapped["SAD"])
    np.testing.assert_allclose(want["logFC"], -swapped["logFC"])
    assert_scores(got, 1, expected(*snv_windows(chrII, 1500, other(g2))))


def test_chromosome_ends_missing_chromosome_and_symbolic(tiny, tmp_path, caplog):
    """Variants on the first and last bases score with N padding; a chromosome missing from the
    FASTA and symbolic alleles are counted and reported; aliases rename the VCF's chromosomes."""
    chrIII = tiny["genome"]["chrIII"]
    n = len(chrIII)
    first, last = other(chrIII[0]), other(chrIII[-1])
    rows = [("chrIII", 1, "start", chrIII[0], first), ("chrIII", n, "end", chrIII[-1], last),
            ("chrIII", n - 2, "del_end", chrIII[-3:], chrIII[-3]),
            ("chrX", 10, "x1", "A", "C"), ("chrX", 20, "x2", "A", "G"),
            ("chrIII", 50, "sv", chrIII[49], "<DEL>"), ("chrIII", 60, "star", chrIII[59], "*")]
    vcf = write_vcf(tmp_path / "ends.vcf", rows)
    caplog.set_level(logging.INFO, logger="seqnn")
    summary = V.score_vcf(tiny["model"], tiny["fasta"], vcf, tmp_path / "e.h5", rc=True)
    assert (summary["records"], summary["variants"], summary["scored"]) == (7, 7, 3)
    assert summary["skipped_missing_chrom"] == 2 and summary["skipped_symbolic"] == 2
    assert "2 variant(s) skipped, chromosome not in the FASTA (e.g. x1, x2) on chrX" in caplog.text
    assert "2 variant(s) skipped, symbolic" in caplog.text and "sv, star" in caplog.text
    got = V.read_scores(tmp_path / "e.h5")
    assert got["attrs"]["skipped_missing_chrom"] == 2 and got["attrs"]["skipped_symbolic"] == 2
    assert_scores(got, 0, expected(*snv_windows(chrIII, 1, first)))
    assert_scores(got, 1, expected(*snv_windows(chrIII, n, last)))
    ref_w = cut(chrIII, n - 3 - H)  # a deletion of the last two bases: N fills the right
    assert_scores(got, 2, expected(ref_w, ref_w[: H + 1] + "N" * (L - H - 1)))
    # the same VCF with its chromosomes renamed through aliases (FASTA name -> VCF name)
    renamed = write_vcf(tmp_path / "renamed.vcf", [("3",) + r[1:] for r in rows[:2]])
    summary = V.score_vcf(tiny["model"], tiny["fasta"], renamed, tmp_path / "r.h5",
                          aliases={"chrIII": "3"})
    assert summary["scored"] == 2
    assert V.read_scores(tmp_path / "r.h5")["chrom"].tolist() == ["3", "3"]


def test_indels_stitched(tiny, tmp_path):
    """A deletion extends from the genome on the right; an insertion of d bp trims d//2 bp on
    the left and the rest on the right; a flipped deletion is the insertion negated."""
    seq = tiny["genome"]["chrI"]
    p = 1000  # 1-based position of the anchor base
    ref_w = cut(seq, p - 1 - H)
    deletion = ("chrI", p, "del", seq[p - 1 : p + 4], seq[p - 1])  # 4 bp deleted
    del_w = ref_w[:H] + seq[p - 1] + seq[p + 4 : p + 4 + L - H - 1]
    ins = seq[p - 1] + "GGGGCC"  # 6 bp inserted: 3 trimmed on the left
    insertion = ("chrI", p, "ins", seq[p - 1], ins)
    ins_w = cut(seq, p - 1 - H + 3, H - 3) + ins + seq[p : p + L - (H - 3) - len(ins)]
    extra = "".join(other(b) for b in seq[p : p + 3])  # not in the genome
    flipped = ("chrI", p, "flip", seq[p - 1] + extra, seq[p - 1])  # the genome carries ALT
    mnp = ("chrI", p, "mnp", seq[p - 1 : p + 1], "GC")
    vcf = write_vcf(tmp_path / "indel.vcf", [deletion, insertion, flipped, mnp])
    summary = V.score_vcf([tiny["model"]], tiny["fasta"], vcf, tmp_path / "i.h5", rc=True,
                          shifts=(0, 1))
    assert summary["scored"] == 4 and summary["indels"] == 3 and summary["flipped"] == 1
    assert len(del_w) == len(ins_w) == L and ins_w[H - 3 : H + 4] == ins
    got = V.read_scores(tmp_path / "i.h5")
    assert_scores(got, 0, expected(ref_w, del_w, (0, 1)))
    assert_scores(got, 1, expected(ref_w, ins_w, (0, 1)))
    # the genome window carries ALT; REF (3 bp inserted, 1 trimmed on the left) is stitched in
    stitched = cut(seq, p - 1 - H + 1, H - 1) + seq[p - 1] + extra + seq[p : p + L - H - 3]
    assert_scores(got, 2, expected(stitched, ref_w, (0, 1)))
    assert_scores(got, 3, expected(ref_w, ref_w[:H] + "GC" + ref_w[H + 2 :], (0, 1)))
    with pysam.FastaFile(tiny["fasta"]) as fa:
        genome, alt = V.stitch(fa, "chrI", p - 1, ins, ins[0], L)  # the insertion's inverse
    assert decode(genome) == cut(seq, p - 1 - H) and decode(alt)[: H + 1] == ref_w[: H + 1]


def test_bgzipped_batches_and_errors(tiny, tmp_path, monkeypatch):
    """A bgzipped VCF scores as the plain one; REF and ALT windows of several variants go
    through the model together (never one sequence at a time); bad input fails in one line."""
    seq = tiny["genome"]["chrII"]
    rows = [("chrII", p, f"v{p}", seq[p - 1], other(seq[p - 1])) for p in range(100, 600, 100)]
    plain = write_vcf(tmp_path / "v.vcf", rows)
    gz = str(tmp_path / "v.vcf.gz")
    pysam.tabix_compress(plain, gz)
    sizes = []
    forward = V.compiled_inference

    def recording(model, seq_length, batch_size, jit_compile=False):
        fn = forward(model, seq_length, batch_size, jit_compile)
        return lambda x, training=False: sizes.append(len(x)) or fn(x)

    monkeypatch.setattr(V, "compiled_inference", recording)
    V.score_vcf([tiny["model"]], tiny["fasta"], gz, tmp_path / "gz.h5", rc=True, batch_size=3)
    assert sizes == [6, 6, 4, 4]  # (3 + 3 windows, then 2 + 2) x both strands
    V.score_vcf([tiny["model"]], tiny["fasta"], plain, tmp_path / "plain.h5", batch_size=16)
    a, b = V.read_scores(tmp_path / "gz.h5"), V.read_scores(tmp_path / "plain.h5")
    assert a["variant_ids"].tolist() == [r[2] for r in rows]
    for key in V.SCORES:
        np.testing.assert_allclose(a[key], b[key], atol=1e-6)
    for i, (_, pos, _, _, alt) in enumerate(rows):
        assert_scores(a, i, expected(*snv_windows(seq, pos, alt)))
    (tmp_path / "bad.vcf").write_text("chrI\t1\n")
    with pytest.raises(SeqnnError, match=r"bad.vcf: cannot read VCF .*; give a VCF"):
        V.score_vcf([tiny["model"]], tiny["fasta"], tmp_path / "bad.vcf", tmp_path / "b.h5")
    assert not (tmp_path / "b.h5").exists()
    with pytest.raises(SeqnnError, match="batch_size 0"):
        V.score_vcf([tiny["model"]], tiny["fasta"], plain, tmp_path / "b.h5", batch_size=0)


def test_progress_lines_count_every_variant(tiny, tmp_path, monkeypatch, caplog):
    """In a log (not a terminal) each batch past the interval gives a progress line, and the
    last count is the number of variants scored (a clock 31 s on per read)."""
    seq = tiny["genome"]["chrII"]
    rows = [("chrII", p, f"v{p}", seq[p - 1], other(seq[p - 1])) for p in range(100, 600, 100)]
    ticks = itertools.count(0, 31)
    monkeypatch.setattr(seqnn_log, "perf_counter", lambda: next(ticks))
    caplog.set_level(logging.INFO, "seqnn")
    V.score_vcf([tiny["model"]], tiny["fasta"], write_vcf(tmp_path / "v.vcf", rows),
                tmp_path / "v.h5", batch_size=2)
    assert [r.getMessage() for r in caplog.records if r.module == "log"] == [
        "variants: 2/5 variants (40%), 0.0645/s, ETA 46s",
        "variants: 4/5 variants (80%), 0.0645/s, ETA 16s",
        "variants: 5/5 variants (100%), 0.0538/s, ETA 0s",
        "variants: 5 variants in 124.0 s (0.0403/s)"]


def test_scores_formulas_and_empty(tiny, tmp_path):
    """`scores` on random predictions equals the formulas; a VCF with nothing to score fails
    with the counts and writes nothing."""
    rng = np.random.default_rng(0)
    ref, alt = rng.random((5, 7, 2)), rng.random((5, 7, 2))
    got = V.scores(ref, alt)
    for i in range(5):
        for t in range(2):
            r, a = ref[i, :, t], alt[i, :, t]
            np.testing.assert_allclose(
                [got["SAD"][i, t], got["logFC"][i, t], got["D1"][i, t], got["D2"][i, t]],
                [a.sum() - r.sum(), np.log2(a.sum() + 1) - np.log2(r.sum() + 1),
                 np.abs(a - r).mean(), np.linalg.norm(a - r) / np.sqrt(7)])
    vcf = write_vcf(tmp_path / "none.vcf", [("chrX", 5, "x", "A", "C")])
    with pytest.raises(SeqnnError) as e:
        V.score_vcf([tiny["model"]], tiny["fasta"], vcf, tmp_path / "n.h5")
    assert str(e.value) == (f"{vcf}: none of its 1 variant(s) can be scored (missing_chrom 1); "
                            "fix the VCF as the warnings say")
    assert not (tmp_path / "n.h5").exists()
