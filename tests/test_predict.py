"""Genome-wide prediction against hand-made models whose outputs are known functions of the input.

The count model predicts, per bin, the number of A (track a), T (track t, a's strand pair) and
C+G (track gc) bases, so every bin's expected value follows from the FASTA alone; the position
model predicts each bin's index inside its window, which shows which window a bin came from.
"""

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import keras
import numpy as np
import pandas as pd
import pyBigWig
import pysam
import pytest
from conftest import TINY_MODEL, TINY_SIZES, write_tiny_bigwig, write_tiny_fasta

from seqnn import SeqnnError, cli
from seqnn.apply import ensemble as E
from seqnn.apply import gather as G
from seqnn.apply import predict as P
from seqnn.apply import tiling as Tl
from seqnn.data.coverage import untransform
from seqnn.data.dna import N_CODE, encode
from seqnn.model.build import save_model

REPO = Path(__file__).resolve().parents[1]
L, PW, CROP = 256, 16, 32
T = (L - 2 * CROP) // PW  # 12 bins; default overlap 3 bins, stride 9
STATS = {"seq_length": L, "pool_width": PW, "crop_bp": CROP, "target_length": T}
COUNT_TRACKS = [
    {"identifier": "a", "sum_stat": "sum", "scale": 1.0, "clip_soft": None, "strand_pair": 1},
    {"identifier": "t", "sum_stat": "sum", "scale": 1.0, "clip_soft": None, "strand_pair": 0},
    {"identifier": "gc", "sum_stat": "sum", "scale": 1.0, "clip_soft": None, "strand_pair": 2},
]


@keras.saving.register_keras_serializable("test_predict")
class BinIndex(keras.layers.Layer):
    """Each bin's index in its window, [B, T, 1]."""

    def call(self, x):
        return keras.ops.zeros_like(x[..., :1]) + keras.ops.arange(
            x.shape[1], dtype=x.dtype)[None, :, None]


def _pooled(depth=4, length=L):
    x = keras.Input((length, depth), name="sequence")
    return x, keras.layers.AveragePooling1D(PW)(keras.layers.Cropping1D(CROP)(x))


def _save(path, model, tracks, stats=STATS, seq_length=L):
    save_model(model, path, params={"model": {"seq_length": seq_length}}, targets=tracks,
               statistics={**stats, "num_targets": len(tracks)})
    return str(path)


def count_model(path, tracks=COUNT_TRACKS, bias=0.0, weight=PW):
    x, pooled = _pooled()
    dense = keras.layers.Dense(3, name="final")
    model = keras.Model(x, dense(pooled))
    w = np.zeros((4, 3), np.float32)
    w[0, 0] = w[3, 1] = w[1, 2] = w[2, 2] = weight
    dense.set_weights([w, np.full(3, bias, np.float32)])
    return _save(path, model, tracks)


def position_model(path):
    x, pooled = _pooled()
    return _save(path, keras.Model(x, BinIndex()(pooled)), [{"identifier": "pos"}])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("predict")
    fasta = write_tiny_fasta(d / "genome.fa")
    pysam.faidx(str(fasta))
    with pysam.FastaFile(str(fasta)) as fa:
        codes = {c: encode(fa.fetch(c)) for c in fa.references}
    return {"dir": d, "fasta": str(fasta), "codes": codes, "counts": count_model(d / "c.keras"),
            "position": position_model(d / "p.keras")}


def expected_counts(codes, shift=0):
    """Per-bin A, T, C+G counts [bins, 3] of a chromosome whose bases moved `shift` bp right."""
    n = len(codes)
    moved = np.full(n, N_CODE, np.uint8)
    moved[max(shift, 0) : n + min(shift, 0)] = codes[max(-shift, 0) : n - max(shift, 0)]
    bins = -(-n // PW)
    padded = np.full(bins * PW, N_CODE, np.uint8)
    padded[:n] = moved
    b = padded.reshape(bins, PW)
    return np.stack([(b == 0).sum(1), (b == 3).sum(1), ((b == 1) | (b == 2)).sum(1)], -1)


def bw_bins(path, chrom):
    """(starts, ends, values) of a bigWig's entries on a chromosome."""
    with pyBigWig.open(str(path)) as bw:
        entries = bw.intervals(chrom) or []
    return tuple(np.array([e[i] for e in entries]) for i in range(3))


def all_bins(path, chroms=TINY_SIZES):
    return {c: bw_bins(path, c) for c in chroms}


# ---------------------------------------------------------------------------------------------
# Geometry


@pytest.mark.parametrize("stitch", Tl.STITCH)
@pytest.mark.parametrize("t_len,overlap", [(12, 0), (12, 3), (12, 8), (7, 4), (5, 4)])
def test_every_bin_stitched_from_its_windows(stitch, t_len, overlap):
    """Window bins carrying their own run-bin index stitch back to exactly that index, over
    uneven batches, for any bin range, with each bin counted the documented number of times."""
    tiling = Tl.Tiling(t_len, overlap, stitch)
    s, a = tiling.stride, tiling.lead
    for b0, b1 in [(0, 50), (13, 41), (7, 8)]:
        ws = tiling.windows(b0, b1)
        hits = np.zeros(b1 - b0, int)
        for w in ws:  # brute force: which bins each window keeps
            for t0, t1, off in tiling.chunks:
                p = w * s + off + np.arange(t1 - t0) - b0
                hits[p[(p >= 0) & (p < b1 - b0)]] += 1
        np.testing.assert_array_equal(hits, tiling.counts(np.arange(b0, b1)) * np.ones_like(hits))
        assert tiling.windows(b0, b1 + 1).stop >= ws.stop and (stitch == "average" or
                                                               (hits == 1).all())
        stitcher, got = Tl.Stitcher(tiling), {}
        w, sizes = ws.start, iter([1, 3, 2, 5] * 20)
        while w < ws.stop:
            n = min(next(sizes), ws.stop - w)
            y = ((w + np.arange(n))[:, None] * s - a + np.arange(t_len))[..., None]
            first, sums = stitcher.add(w, y.astype(np.float32))
            bins = first + np.arange(len(sums))
            keep = (bins >= b0) & (bins < b1)
            for b, v in zip(bins[keep], sums[keep, 0] / tiling.counts(bins[keep])):
                got.setdefault(b, []).append(v)
            w += n
        assert sorted(got) == list(range(b0, b1)) and all(len(v) == 1 for v in got.values())
        np.testing.assert_allclose([got[b][0] for b in range(b0, b1)], np.arange(b0, b1))


def test_runs_merge_snap_and_shard_every_bin_once():
    sizes = {"c1": 1000, "c2": 95}
    regions = pd.DataFrame({"chrom": ["c2", "c1", "c1", "c1", "c1"],
                            "start": [90, 500, 100, 130, 900], "end": [95, 520, 120, 200, 990]})
    runs = Tl.prediction_runs(sizes, 16, regions)
    assert runs.values.tolist() == [["c1", 96, 208, 7], ["c1", 496, 528, 2],
                                    ["c1", 896, 992, 6], ["c2", 80, 95, 1]]
    whole = Tl.prediction_runs(sizes, 16)
    assert whole.bins.tolist() == [63, 6]
    for shards in (1, 2, 5, 16):
        pieces = pd.concat([Tl.shard_pieces(runs, i, shards) for i in range(shards)])
        covered = [(c, b) for c, s, b0, b1 in pieces.values for b in range(s // 16 + b0,
                                                                         s // 16 + b1)]
        assert len(covered) == len(set(covered)) == runs.bins.sum()
    with pytest.raises(SeqnnError, match="lower predict.shards"):
        Tl.shard_pieces(runs, 0, 17)


# ---------------------------------------------------------------------------------------------
# Hand-made models end to end


@pytest.mark.parametrize("stitch", Tl.STITCH)
def test_counts_exact_every_bin_once_strand_swap_and_shards(tiny, tmp_path, stitch):
    one = P.predict_shard([tiny["counts"]], tiny["fasta"], tmp_path / "one.h5", stitch=stitch,
                          rc=True, untransform=False, batch_size=5)
    assert one["members"] == 2 and one["bp"] == sum(TINY_SIZES.values())
    shards = [tmp_path / f"{i}.h5" for i in range(3)]
    for i, path in enumerate(shards):
        P.predict_shard([tiny["counts"]], tiny["fasta"], path, shard=i, shards=3, stitch=stitch,
                        rc=True, untransform=False, batch_size=4)
    for k, track in enumerate(["a", "t", "gc"]):
        G.write_bigwig([tmp_path / "one.h5"], track, tmp_path / f"{track}.bw")
        G.write_bigwig(shards, track, tmp_path / f"{track}.3.bw")
        one_job, gathered = all_bins(tmp_path / f"{track}.bw"), all_bins(tmp_path / f"{track}.3.bw")
        for chrom, size in TINY_SIZES.items():
            starts, ends, values = one_job[chrom]
            bins = -(-size // PW)
            np.testing.assert_array_equal(starts, np.arange(bins) * PW)  # each bin once
            np.testing.assert_array_equal(ends, np.minimum((np.arange(bins) + 1) * PW, size))
            np.testing.assert_allclose(values, expected_counts(tiny["codes"][chrom])[:, k])
            for a, b in zip(one_job[chrom], gathered[chrom]):
                np.testing.assert_array_equal(a, b)
    with pyBigWig.open(str(tmp_path / "a.bw")) as bw:
        assert bw.chroms() == TINY_SIZES
    with pytest.raises(SeqnnError, match=r"got shards \[0, 2\] of 3; give every shard file"):
        G.write_bigwig(shards[::2], "a", tmp_path / "x.bw")
    assert not (tmp_path / "x.bw").exists()
    # without the strand pairs, the reverse complement's T counts land in track a
    unpaired = [{**t, "strand_pair": i} for i, t in enumerate(COUNT_TRACKS)]
    model = count_model(tmp_path / "unpaired.keras", unpaired)
    P.predict_shard([model], tiny["fasta"], tmp_path / "u.h5", rc=True, untransform=False)
    with G.Predictions([tmp_path / "u.h5"]) as pred:
        got = pred.read("chrIII", 0, 125)
    want = expected_counts(tiny["codes"]["chrIII"])
    np.testing.assert_allclose(got[0], (want[:, 0] + want[:, 1]) / 2)


@pytest.mark.parametrize("stitch", Tl.STITCH)
def test_each_bin_from_the_documented_windows(tiny, tmp_path, stitch):
    """Position model: centre takes bin p from window p // S (its bin p % S + O//2); average is
    the mean of the bin's index over every window covering it."""
    tiling = Tl.Tiling(T, 3, stitch)
    for i in range(2):
        P.predict_shard([tiny["position"]], tiny["fasta"], tmp_path / f"{i}.h5", shard=i,
                        shards=2, stitch=stitch, overlap=3 * PW, untransform=False, batch_size=3)
    G.write_bigwig([tmp_path / "0.h5", tmp_path / "1.h5"], "pos", tmp_path / "pos.bw")
    s, a = tiling.stride, tiling.lead
    for chrom, size in TINY_SIZES.items():
        p = np.arange(-(-size // PW))
        if stitch == "centre":
            want = p % s + a
        else:
            w = np.arange(-2, len(p) // s + 3)[:, None]
            t = p[None, :] - (w * s - a)
            want = np.where((t >= 0) & (t < T), t, np.nan)
            want = np.nanmean(want, axis=0)
        np.testing.assert_allclose(bw_bins(tmp_path / "pos.bw", chrom)[2], want, rtol=1e-6)


def test_shifts_variance_untransform_and_regions(tiny, tmp_path, caplog):
    bed = tmp_path / "regions.bed"
    bed.write_text("chrI\t100\t300\tr1\t0\t+\nchrX\t0\t10\tgone\t0\t+\nchrI\t250\t400\tr2\t0\t-\n"
                   "chrIII\t1990\t2600\tend\t0\t+\n")
    tracks = [{**t, "sum_stat": "sum_sqrt", "clip_soft": 3.0, "scale": 2.0}
              for t in COUNT_TRACKS]
    model = count_model(tmp_path / "sqrt.keras", tracks)
    out = tmp_path / "out"
    summary = P.predict([model], tiny["fasta"], str(out), bed=str(bed), shifts=[-1, 0, 1],
                        rc=True, variance=True, regions_h5=True, batch_size=4)
    assert summary["members"] == 6 and summary["tracks"] == ["a", "t", "gc"]
    assert "1 region(s) on 1 chromosome(s) not in the genome skipped (chrX)" in caplog.text
    members = np.stack([expected_counts(tiny["codes"]["chrI"], s) for s in (-1, 0, 1)])
    members = untransform(members, "sum_sqrt", 2.0, 3.0) / PW
    starts, ends, values = bw_bins(out / "gc.bw", "chrI")
    np.testing.assert_array_equal(starts, np.arange(96, 400, PW))  # r1 and r2 merged, snapped
    np.testing.assert_allclose(values, members.mean(0)[6:25, 2], rtol=1e-5)
    np.testing.assert_allclose(bw_bins(out / "variance" / "gc.bw", "chrI")[2],
                               members.var(0)[6:25, 2], rtol=1e-4, atol=1e-7)
    assert bw_bins(out / "gc.bw", "chrIII")[1][-1] == 2000
    assert bw_bins(out / "gc.bw", "chrII")[0].size == 0
    with h5py.File(out / "regions.h5") as f:
        assert [c.decode() for c in f["chrom"]] == ["chrI", "chrI", "chrIII"]
        assert f["end"][2] == 2000 and f["bin_start"][:].tolist() == [96, 240, 1984]
        offset = f["offset"][:]
        np.testing.assert_allclose(f["values"][2, offset[0] : offset[1]],
                                   members.mean(0)[6:19, 2], rtol=1e-5)
        assert f["variance"].shape == f["values"].shape == (3, offset[-1])


def test_tss_summary_and_embeddings(tiny, tmp_path, caplog):
    shard = tmp_path / "s.h5"
    P.predict_shard([tiny["counts"]], tiny["fasta"], shard, untransform=False)
    tss = tmp_path / "tss.bed"
    tss.write_text("chrI\t500\t501\tg1\t0\t+\nchrII\t1000\t1001\tg2\t0\t-\n"
                   "Mito\t5\t6\tg3\t0\t+\n")
    table = G.tss_summary([shard], str(tss), str(tmp_path / "tss.tsv"), window=40)
    assert "Mito" in caplog.text and table.name.tolist() == ["g1", "g2"]
    want = expected_counts(tiny["codes"]["chrI"])[(500 - 40) // PW : -(-(541) // PW)].mean(0)
    np.testing.assert_allclose(table.loc[0, ["a", "t", "gc"]].astype(float), want)
    assert pd.read_csv(tmp_path / "tss.tsv", sep="\t").shape == (2, 8)

    shape = P.write_embeddings(tiny["counts"], tiny["fasta"], str(tss), str(tmp_path / "e.h5"),
                               batch_size=1)
    assert shape == (2, T, 4)  # penultimate: the pooled base fractions
    with h5py.File(tmp_path / "e.h5") as f:
        start = f["window_start"][0]
        assert start == 500 - L // 2
        np.testing.assert_allclose(f["embeddings"][0, :, 0] * PW, expected_counts(
            tiny["codes"]["chrI"][start + CROP : start + L - CROP])[:, 0])
    with pytest.raises(SeqnnError, match="layer 'nope' is not in the model; choose one of"):
        P.write_embeddings(tiny["counts"], tiny["fasta"], str(tss), str(tmp_path / "x.h5"),
                           layer="nope")
    assert not (tmp_path / "x.h5").exists()


def test_cross_fold_takes_each_bin_from_its_held_out_model(tiny, tmp_path):
    """Fold model k predicts the constant 10(k+1); bins outside contigs get all models' mean."""
    models = [count_model(tmp_path / f"f{k}.keras", bias=10.0 * (k + 1), weight=0)
              for k in range(3)]
    contigs = tmp_path / "contigs.bed"
    contigs.write_text("chrI\t0\t1000\tfold0\nchrI\t1000\t2000\tfold1\nchrII\t0\t2500\tfold2\n")
    P.predict_shard(models, tiny["fasta"], tmp_path / "s.h5", contigs=str(contigs), rc=True,
                    variance=True, untransform=False)
    with G.Predictions([tmp_path / "s.h5"]) as pred:
        chr1, var1 = pred.read("chrI", 0, 188)[2], pred.read("chrI", 0, 188, variance=True)[2]
        chr2 = pred.read("chrII", 0, 157)[2]
    centres = np.arange(188) * PW + PW // 2
    want = np.select([centres < 1000, centres < 2000], [10.0, 20.0], 20.0)
    np.testing.assert_allclose(chr1, want)
    np.testing.assert_allclose(var1, np.where(centres < 2000, 0.0, 200 / 3), rtol=1e-5)
    np.testing.assert_allclose(chr2, 30.0)
    contigs.write_text("chrI\t0\t1000\ttrain\n")
    with pytest.raises(SeqnnError, match="cross_fold needs contigs labelled fold0..fold2"):
        P.predict_shard(models, tiny["fasta"], tmp_path / "t.h5", contigs=str(contigs))


# ---------------------------------------------------------------------------------------------
# Bad input


def test_bad_models_and_regions(tiny, tmp_path):
    x, pooled = _pooled(depth=5)
    five = _save(tmp_path / "five.keras", keras.Model(x, keras.layers.Dense(1)(pooled)),
                 [{"identifier": "x"}])
    with pytest.raises(SeqnnError, match="reads 5 channels per base .* seq_depth 4"):
        E.load_ensemble([five])
    x, pooled = _pooled()
    lying = _save(tmp_path / "lying.keras", keras.Model(x, keras.layers.Dense(1)(pooled)),
                  [{"identifier": "x"}], seq_length=512)
    with pytest.raises(SeqnnError, match=r"reads 256 bp but its params' seq_length is 512"):
        E.load_ensemble([lying])
    x, pooled = _pooled(length=2 * L)
    longer = _save(tmp_path / "long.keras", keras.Model(x, keras.layers.Dense(3)(pooled)),
                   COUNT_TRACKS, stats={**STATS, "seq_length": 2 * L, "target_length": 28},
                   seq_length=2 * L)
    with pytest.raises(SeqnnError, match="long.keras: seq_length 512 differs from 256"):
        E.load_ensemble([tiny["counts"], longer])
    with pytest.raises(SeqnnError, match="reads 256 bp but data.seq_length is 2048"):
        E.load_ensemble([tiny["counts"]], seq_length=2048)
    with pytest.raises(SeqnnError, match="model file not found"):
        E.load_ensemble([str(tmp_path / "missing.keras")])
    bed = tmp_path / "elsewhere.bed"
    bed.write_text("chrX\t0\t100\nchr1\t5\t10\n")
    with pytest.raises(SeqnnError) as e:
        P.predict_shard([tiny["counts"]], tiny["fasta"], tmp_path / "s.h5", bed=str(bed))
    assert str(e.value) == (f"{bed}: no region lies on a chromosome of the genome (chrI, chrII, "
                            "chrIII…); use the FASTA's chromosome names")
    assert not (tmp_path / "s.h5").exists()
    with pytest.raises(SeqnnError, match="overlap 20 bp is not a multiple of the 16 bp bins"):
        P.predict_shard([tiny["counts"]], tiny["fasta"], tmp_path / "s.h5", overlap=20)


def test_cli_predict(tiny, tmp_path, capsys):
    bed = tmp_path / "r.bed"
    bed.write_text("chrII\t0\t700\n")
    out = tmp_path / "cli"
    assert cli.main(["predict", tiny["counts"], "--fasta", tiny["fasta"], "-o", str(out),
                     "--bed", str(bed), "--rc", "--shifts", "-1,0,1", "--transformed",
                     "--regions-h5", "--embed", str(bed), "--embed-layer", "final",
                     "--jit-compile"]) == 0
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert summary["members"] == 6 and summary["bins"] == 700 // PW + 1
    assert {p.name for p in out.iterdir()} == {"a.bw", "t.bw", "gc.bw", "predictions.h5",
                                               "regions.h5", "embeddings.h5"}
    with h5py.File(out / "embeddings.h5") as f:
        assert f["embeddings"].shape == (1, T, 3) and f.attrs["layer"] == "final"
    with G.Predictions([out / "predictions.h5"]) as pred:  # XLA, last batch padded: exact
        want = [expected_counts(tiny["codes"]["chrII"], s)[:44, 2] for s in (-1, 0, 1)]
        np.testing.assert_allclose(pred.read("chrII", 0, 44)[2], np.mean(want, 0), rtol=1e-6)


@pytest.mark.yeast
def test_yeast_tss_regions_off_genome_are_reported(yeast_dir, tiny, tmp_path, caplog):
    """TSSs.bed lists chromosomes the 3-chromosome FASTA lacks: reported, the rest summarised."""
    fasta, tss = str(yeast_dir / "yeast_II_IV_XVI.fa"), str(yeast_dir / "TSSs.bed")
    P.predict_shard([tiny["counts"]], fasta, tmp_path / "s.h5", bed=tss, untransform=False)
    table = G.tss_summary([tmp_path / "s.h5"], tss, str(tmp_path / "tss.tsv"), window=0)
    assert "region(s) on 14 chromosome(s) not in the genome skipped" in caplog.text
    assert set(table.chrom) == {"II", "IV", "XVI"} and table[["a", "t", "gc"]].notna().all().all()
    with pysam.FastaFile(fasta) as fa:
        row = table.iloc[0]
        pos = row.start if row.strand == "+" else row.end - 1
        codes = encode(fa.fetch(row.chrom, pos // PW * PW, pos // PW * PW + PW))
    assert row.gc == ((codes == 1) | (codes == 2)).sum()


# ---------------------------------------------------------------------------------------------
# The rules


SNAKEFILE = """
configfile: "config.yaml"
include: "{repo}/workflow/rules/common.smk"
include: "{repo}/workflow/rules/data.smk"
include: "{repo}/workflow/rules/predict.smk"
rule all:
    input: PREDICT_OUTPUTS
"""


@pytest.mark.slow
@pytest.mark.workflow
def test_rules_shards_gather_cross_fold(tiny, tmp_path):
    """The rules on tiny_genome with 3 hand-made fold models: 2 shards gathered equal the
    library's one-job prediction; regions, TSS and variance are written (embed: planned; its
    function is tested through the CLI)."""
    import yaml

    shutil.copy(tiny["fasta"], tmp_path / "genome.fa")
    write_tiny_bigwig(tmp_path / "t.bw")  # read by no rule here, but checked before any job
    (tmp_path / "targets.tsv").write_text(
        "identifier\tfile\n" + "".join(f"{t['identifier']}\tt.bw\n" for t in COUNT_TRACKS))
    (tmp_path / "r.bed").write_text("chrI\t0\t3000\nchrII\t100\t900\nchrIII\t1500\t2000\n")
    for k in range(3):
        os.makedirs(tmp_path / f"results/models/f{k}")
        shutil.copy(tiny["counts"], tmp_path / f"results/models/f{k}/model_best.keras")
    predict = {"bed": "r.bed", "shards": 2, "stitch": "average", "rc": True, "shifts": [0, 1],
               "variance": True, "cross_fold": True, "batch_size": 8, "regions_h5": True,
               "tss_bed": "r.bed", "tss_window": 50, "threads": 1, "untransform": False}
    config = {"demo": False, "genome": {"fasta": "genome.fa"}, "targets": "targets.tsv",
              "data": {"seq_length": L, "pool_width": PW, "folds": 3, "stride_train": L,
                       "break_length": 1000, "seed": 1}, "predict": predict,
              "model": TINY_MODEL}  # not the demo's (2,048 bp), found in the workflow's folder
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "Snakefile").write_text(SNAKEFILE.format(repo=REPO))
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--directory", str(tmp_path),
           "--snakefile", str(tmp_path / "Snakefile")]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    planned = subprocess.run([*cmd, "-n", "--config", "predict={embed_bed: r.bed}"],
                             capture_output=True, text=True, env=env)
    assert planned.returncode == 0 and "rule embed:" in planned.stdout, planned.stderr[-3000:]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-4000:]
    res = tmp_path / "results/predict"
    P.predict_shard([tiny["counts"]] * 3, tiny["fasta"], tmp_path / "one.h5",
                    bed=str(tmp_path / "r.bed"), stitch="average", rc=True, shifts=[0, 1],
                    variance=True, contigs=str(tmp_path / "results/data/contigs.bed"),
                    untransform=False)
    for track in ("a", "gc"):
        G.write_bigwig([tmp_path / "one.h5"], track, tmp_path / "one.bw")
        for a, b in zip(all_bins(tmp_path / "one.bw").values(), all_bins(res / f"{track}.bw")
                        .values()):
            for x, y in zip(a, b):
                np.testing.assert_allclose(x, y, rtol=1e-6)
        assert (res / "variance" / f"{track}.bw").is_file()
    assert pd.read_csv(res / "tss.tsv", sep="\t").shape == (3, 8)
    assert (res / "regions.h5").is_file()
    assert "predict shard 1/2" in (tmp_path / "results/logs/predict/shard1.log").read_text()


# ---------------------------------------------------------------------------------------------
# The demo: honest genome-wide accuracy with cross_fold


def _peak_features():
    """Per 16-bp bin: activator motif matches on either strand, smoothed by the demo's peak
    shape (a Gaussian of sd 70 bp); a linear model of it is fitted to the `peak` track."""
    from seqnn.data.demo import MOTIFS
    from seqnn.data.dna import one_hot

    motif = one_hot(encode(MOTIFS["activator"]))
    x = keras.Input((2048, 4), name="sequence")
    match = keras.layers.Conv1D(2, 10, padding="same", activation="relu")
    smooth = keras.layers.Conv1D(1, 39, padding="same", use_bias=False, name="features")
    y = smooth(keras.layers.AveragePooling1D(16)(match(x)))
    match.set_weights([np.stack([motif, motif[::-1, ::-1]], -1), np.full(2, -9.0)])
    gauss = np.exp(-0.5 * (np.arange(-19, 20) * 16 / 70) ** 2)
    smooth.set_weights([np.repeat(gauss[:, None, None], 2, 1).astype(np.float32)])
    return x, y


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from seqnn.data.demo import make_demo
    from seqnn.data.fasta import chrom_sizes
    from seqnn.data.genome import write_contigs, write_sequences
    from seqnn.data.targets import read_sheet

    d = tmp_path_factory.mktemp("demo")
    make_demo(d, seed=7)
    write_contigs(str(d / "genome.fa"), str(d / "contigs.bed"), 2048, 3, 44,
                  break_length=150_000)
    seqs = write_sequences(str(d / "contigs.bed"), str(d / "sequences.bed"), 2048, 3, 2048, 2048,
                           chrom_sizes(str(d / "genome.fa")))
    sheet = read_sheet(str(REPO / "config/targets.tsv"))
    sheet["file"] = [str(d / os.path.basename(f)) for f in sheet.file]
    return d, seqs, sheet


def test_demo_cross_fold_prediction_tracks_the_held_out_signal(demo):
    """Linear models fitted (least squares) on two folds each predict the third: the genome-wide
    cross-fold bigWig of `peak` correlates with the observed track on bins no model trained on."""
    from seqnn.data.coverage import write_coverage
    from seqnn.data.dna import one_hot
    from seqnn.data.fasta import chrom_sizes

    d, seqs, sheet = demo
    fasta, sizes = str(d / "genome.fa"), chrom_sizes(str(d / "genome.fa"))
    row = sheet.set_index("identifier").loc["peak"].to_dict() | {"identifier": "peak"}
    targets = write_coverage(row, str(d / "sequences.bed"), str(d / "peak.h5"), sizes, 16)
    x_in, feats = _peak_features()
    with pysam.FastaFile(fasta) as fa:
        onehot = one_hot(np.stack([encode(fa.fetch(c, s, e)) for c, s, e in
                                   seqs[["chrom", "start", "end"]].itertuples(index=False)]))
    features = keras.Model(x_in, feats).predict(onehot, batch_size=64, verbose=0)
    models = []
    for k in range(3):
        train = (seqs.label != f"fold{k}").to_numpy()
        a = np.stack([features[train].ravel(), np.ones(train.sum() * 128)], 1)
        coef = np.linalg.lstsq(a, targets[train].ravel().astype(float), rcond=None)[0]
        dense = keras.layers.Dense(1, name="final")
        model = keras.Model(x_in, dense(feats))
        dense.set_weights([coef[:1, None].astype(np.float32), coef[1:].astype(np.float32)])
        models.append(_save(d / f"f{k}.keras", model, [dict(row, strand_pair=0)],
                            stats={"seq_length": 2048, "pool_width": 16, "crop_bp": 0,
                                   "target_length": 128}, seq_length=2048))
    bed = d / "chr3.bed"
    bed.write_text("chr3\t0\t500000\n")
    out = d / "pred"
    summary = P.predict(models, fasta, str(out), bed=str(bed), contigs=str(d / "contigs.bed"),
                        rc=True, batch_size=64)
    assert summary["members"] == 2
    predicted = bw_bins(out / "peak.bw", "chr3")[2]
    with pyBigWig.open(str(d / "peak.bw")) as bw:
        observed = np.nan_to_num(bw.values("chr3", 0, 500_000, numpy=True)).reshape(-1, 16)
    contigs = pd.read_csv(d / "contigs.bed", sep="\t", header=None, names=["c", "s", "e", "f"])
    inside = np.zeros(500_000, bool)
    for s, e in contigs[contigs.c == "chr3"][["s", "e"]].itertuples(index=False):
        inside[s:e] = True
    held_out = inside.reshape(-1, 16).all(1)
    r = np.corrcoef(predicted[held_out], observed.mean(1)[held_out])[0, 1]
    assert r > 0.9, r
    assert math.isclose(predicted[held_out].mean(), observed.mean(1)[held_out].mean(),
                        rel_tol=0.2)
