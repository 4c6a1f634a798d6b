"""Proof that it works (issue 7): gradient maps of a model trained on the demo recover its motifs.

The demo (seqnn.data.demo) plants 10 bp motifs whose effects are known: the activator raises `peak`,
the repressor depletes `nuc`, the promoter starts transcription on its own strand (`rna_fwd`
downstream of + motifs, `rna_rev` upstream of - ones). The module fixture runs the data stage
in-process (the library calls of the workflow's data rules with config/config.yaml's `data`
block: the same TFRecords, byte for byte, as `snakemake data`, without its ~30 s of job
start-ups), trains one small model for a few epochs, and computes gradient maps. The tests read
the trained model as a user would:

- gradient maps (`seqnn.apply.interpret.gradient_maps`, rc) over 2048 bp windows centred on planted
  motifs, 30 per kind from fold0 (no weight update sees it) and the demo's regions.bed: on the
  motif's track, |input x gradient| ranks the bases inside motif occurrences (motifs.bed) above
  all other bases of the window (AUROC), and the centre motif's summed contribution has the
  motif's effect sign;
- ISM (`saturation_mutagenesis`) and g[alt] - g[ref] agree in sign at the strongest
  substitutions;
- the first layer's filters, as PWMs (`seqnn.apply.filters`), match the three planted motifs
  (Tomtom-like Pearson r of PWMs) better than any random 10-mer does;
- predictions downcast to float16 / bfloat16 (`seqnn.apply.outputs.downcast`) cost the
  held-out Pearson r almost nothing.

The figures are measured on this seeded pipeline (demo seed 7, data seed 44, train seed 0; CPU
training is deterministic for a seed); each threshold sits below the value measured, with the
range over train seeds 0-3 (a stand-in for platform noise) in the comment beside it. Run alone:

    .venv/bin/python -m pytest tests/test_interpret_demo.py -s

(-s shows the figures); `python benchmarks/interpret_demo.py --seed N --ism` prints them as JSON.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import REPO

pytest.importorskip("tensorflow")

from seqnn.apply import interpret as I  # noqa: E402
from seqnn.apply import interpreter as IN  # noqa: E402
from seqnn.apply.motifs import demo_recovery  # noqa: E402
from seqnn.data.demo import MOTIFS, TRACKS, make_demo, motif_track  # noqa: E402

pytestmark = [pytest.mark.slow]  # 105-125 s measured on 2 shared cores (training 65-90 s)

# A small CNN that learns all three motifs within 5 epochs on 2 CPU cores: the first convolution
# (15 bp, wider than a motif) pools straight to the 16 bp bins, and six dilated residual blocks
# spread each motif's effect (+-1 kb receptive field); config/models/demo.json is the same
# network, trained 12 epochs on one fold per model. Measured on fold2 alone: it learnt the
# motifs in as many epochs as the earlier demo's conv tower, at ~88 training sequences/s to
# the tower's ~63. The repressor (it only lowers `nuc`, where Poisson loss pushes least) is
# learnt last: after 7 to over 10 epochs of fold2 alone (train seeds 0-4), after 4-5 epochs of
# fold1 + fold2, as used here (the same steps in half the epochs and validation passes). With 4
# epochs, train seed 0's held-out AUROCs drop to 0.91-0.99, so 5 it is.
PARAMS = {
    "train": {"batch_size": 8, "optimizer": "adam", "learning_rate": 0.01, "warmup_steps": 20,
              "global_clipnorm": 1.0, "loss": "poisson", "patience": 10, "train_epochs_min": 1,
              "train_epochs_max": 30},
    "model": {
        "seq_length": 2048, "augment_rc": True, "augment_shift": 3, "activation": "gelu",
        "norm_type": "batch", "bn_momentum": 0.9,
        "trunk": [
            {"name": "conv_dna", "filters": 32, "kernel_size": 15, "pool_size": 16},
            {"name": "dilated_residual", "filters": 32, "rate_mult": 2, "repeat": 6},
        ],
        "head": {"name": "final", "units": 4, "activation": "softplus"},
    },
}
EPOCHS = 5
TRAIN_SEED = 0
SITES_PER_MOTIF = 30  # held-out planted motifs per kind (promoters: 15 per strand); fold0 has
# ~130 of each
ISM_SITES = 2  # windows per motif kind (promoters: one per strand) in the ISM check
ISM_WIDTH = 60  # bp mutated, centred on the motif: 180 substitutions per window
TOP_K = 30  # strongest substitutions compared per window (as many as a 10 bp motif has)

PEAK, NUC, RNA_FWD, RNA_REV = range(4)  # the demo's tracks in sheet order
STRAND_PAIR = [PEAK, NUC, RNA_REV, RNA_FWD]

# Thresholds. Measured with train seed 0 (seeds 0-3 in brackets), 5 epochs:
# best val_pearsonr 0.829 [0.829-0.885].
MIN_VAL_R = 0.6
# Pooled AUROC over the held-out windows: activator 0.970 [0.970-0.997], repressor 0.978
# [0.964-0.991], promoter+ 0.983 [0.983-0.995], promoter- 0.996 [0.995-0.996]; over regions.bed
# (24 windows, mostly in training folds) every kind 0.997-1.0 [0.991-1.0]. Chance is 0.5.
MIN_AUROC = 0.9
# Fraction of windows whose centre motif's contribution has the effect's sign: 1.0 for every
# kind and set [activator and promoters 1.0 at every seed; repressor 0.80-1.0 held out,
# 0.88-1.0 on regions.bed].
MIN_SIGN = {"activator": 0.9, "repressor": 0.7, "promoter+": 0.9, "promoter-": 0.9}
# ISM/gradient sign agreement, mean over the 6 windows: top 30 substitutions 1.0 (top 15: 1.0 at
# seeds 0-3; top 60: 0.99); all 180 substitutions 0.82, most of them tiny effects (chance 0.5).
MIN_TOP_AGREEMENT = 0.9
MIN_ALL_AGREEMENT = 0.65
# Best PWM similarity (r) of the 32 filters (span 3 nats) to each planted motif: activator
# 0.852, repressor 0.845, promoter 0.973; to 100 random 10-mers: mean 0.568, 99th percentile
# 0.712, max 0.723 (spans 2 and 5: motifs >= 0.818 / 0.881, random max 0.710 / 0.771).
MIN_FILTER_R = 0.78
RANDOM_KMERS = 100
# Held-out (fold0) Pearson r change from downcasting the predictions, per track: float16
# |dr| <= 1e-6 (transformed) and 3e-6 (untransformed); bfloat16 <= 6.4e-5 and 8.7e-5 (nuc).
MAX_DR = {"float16": 1e-5, "bfloat16": 1e-3}


def track_of(kind: str, strand: str) -> int:
    """The index of the track a motif acts on (`seqnn.data.demo.motif_track`)."""
    return [t.identifier for t in TRACKS].index(motif_track(kind, strand))


# ---------------------------------------------------------------------------------------------
# Pipeline: demo -> data stage (library calls) -> trained model


def build_data(root: Path) -> dict:
    """The demo and its data directory under `root` as the workflow lays them out; returns
    paths and seconds."""
    from seqnn.data.bed import read_labelled_bed
    from seqnn.data.coverage import write_coverage
    from seqnn.data.fasta import chrom_sizes
    from seqnn.data.genome import fold_labels, write_contigs, write_sequences
    from seqnn.data.records import statistics, write_json, write_split
    from seqnn.data.targets import read_sheet, write_sheet

    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    d, demo_dir, data_dir = config["data"], root / "resources/demo", root / "results/data"
    tic = time.perf_counter()
    make_demo(demo_dir, seed=config["demo_seed"])
    demo_s = time.perf_counter() - tic
    fasta, fai = str(demo_dir / "genome.fa"), str(demo_dir / "genome.fa.fai")
    (data_dir / "coverage").mkdir(parents=True)
    write_contigs(fasta, str(data_dir / "contigs.bed"), d["seq_length"], d["folds"], d["seed"],
                  fai=fai, min_gap=d["min_gap"], break_length=d["break_length"],
                  valid_frac=d["valid_frac"], test_frac=d["test_frac"])
    sizes = chrom_sizes(fasta, fai)
    seqs_bed = str(data_dir / "sequences.bed")
    write_sequences(str(data_dir / "contigs.bed"), seqs_bed, d["seq_length"], d["folds"],
                    d["stride_train"], d["stride_test"], sizes,
                    unmappable_max_frac=d["unmappable_max_frac"])
    sheet = read_sheet(str(REPO / config["targets"]))
    coverage = []
    for row in sheet.to_dict("records"):
        coverage.append(str(data_dir / "coverage" / f"{row['identifier']}.h5"))
        write_coverage({**row, "file": str(root / row["file"])}, seqs_bed, coverage[-1], sizes,
                       d["pool_width"], d["crop_bp"], nan_value=d["nan_value"],
                       negative=d["negative"])
    seqs, labels = read_labelled_bed(seqs_bed), fold_labels(d["folds"])
    for label in labels:
        write_split(fasta, fai, seqs, coverage, str(data_dir / "tfrecords"), label,
                    d["seqs_per_tfr"])
    write_json(statistics(seqs, labels, len(sheet), d["pool_width"], d["crop_bp"]),
               str(data_dir / "statistics.json"))
    write_sheet(sheet, str(data_dir / "targets.txt"))
    return {"demo": demo_dir, "data": data_dir, "fasta": fasta, "fai": fai,
            "demo_s": round(demo_s, 1), "data_s": round(time.perf_counter() - tic - demo_s, 1)}


def train_model(data_dir: Path, out_dir: Path, epochs: int = EPOCHS, seed: int = TRAIN_SEED):
    """The model trained on fold1 + fold2 for `epochs` epochs, its best epoch picked on fold0
    (which no weight update sees); returns the training summary."""
    from seqnn.data.splits import Splits
    from seqnn.train.loop import train

    return train(PARAMS, str(data_dir), str(out_dir), splits=Splits(["fold1", "fold2"], "fold0"),
                 epochs=epochs, seed=seed, threads=2)


# ---------------------------------------------------------------------------------------------
# Sites and scores


def read_motifs(demo_dir: Path) -> pd.DataFrame:
    """motifs.bed: every occurrence (planted or by chance), columns #chrom .. planted."""
    return pd.read_csv(demo_dir / "motifs.bed", sep="\t")


def held_out_sites(demo_dir: Path, data_dir: Path, per_kind: int, length: int) -> pd.DataFrame:
    """`per_kind` planted motifs of each kind (promoters: half per strand) whose whole model
    window lies in a fold0 contig, evenly spaced along the genome; BED6 rows."""
    motifs = read_motifs(demo_dir)
    contigs = pd.read_csv(data_dir / "contigs.bed", sep="\t", header=None, usecols=range(4),
                          names=["chrom", "start", "end", "label"])
    mid = (motifs.start + motifs.end) // 2
    inside = np.zeros(len(motifs), bool)
    for c in contigs[contigs.label == "fold0"].itertuples():
        inside |= ((motifs["#chrom"] == c.chrom) & (mid - length // 2 >= c.start)
                   & (mid + length // 2 <= c.end)).to_numpy()
    planted = motifs[inside & (motifs.planted == 1)]
    rows = []
    for kind in MOTIFS:
        strands = "+-" if kind == "promoter" else ["+-"]
        for strand in strands:
            g = planted[(planted.name == kind) & planted.strand.isin(list(strand))]
            n = per_kind // len(strands)
            assert len(g) >= n, f"only {len(g)} {kind} motifs in fold0"
            rows.append(g.iloc[np.linspace(0, len(g) - 1, n).round().astype(int)])
    return pd.concat(rows).rename(columns={"#chrom": "chrom"})[
        ["chrom", "start", "end", "name", "score", "strand"]].reset_index(drop=True)


def ism_agreement(model_path: str, sites: pd.DataFrame, fasta: str, fai: str) -> dict:
    """Over ISM_SITES windows per motif kind (promoters: half per strand), ISM of the centre
    ISM_WIDTH bp (``centre``: the change of the motif track's centre aggregate, rc) against
    g[alt] - g[ref] of the same aggregate: per window, the fraction of the TOP_K substitutions
    by |ISM| (``top``) and of all of them (``all``) whose signs agree."""
    from seqnn.data.dna import one_hot
    from seqnn.data.fasta import fetch_codes, open_fasta
    from seqnn.model.build import load_model

    model, _ = load_model(model_path)
    picks = pd.concat(
        [sites[sites.name == k].head(ISM_SITES) for k in ("activator", "repressor")]
        + [sites[(sites.name == "promoter") & (sites.strand == s)].head(ISM_SITES // 2)
           for s in "+-"])
    length = model.input_shape[1]
    starts = ((picks.start + picks.end) // 2 - length // 2).to_numpy()
    with open_fasta(fasta, fai) as fa:
        x = one_hot(np.stack([fetch_codes(fa, c, int(s), int(s) + length)
                              for c, s in zip(picks.chrom, starts)]))
    tracks = np.array([[track_of(k, s)] for k, s in zip(picks.name, picks.strand)])
    kw = {"tracks": tracks, "rc": True, "strand_pair": STRAND_PAIR}
    off = (length - ISM_WIDTH) // 2
    ism = IN.saturation_mutagenesis([model], x, start=off, width=ISM_WIDTH, **kw)["centre"][..., 0]
    g = IN.gradients([model], x, **kw)[:, off : off + ISM_WIDTH, :, 0]  # [n, W, 4]
    ref = x[:, off : off + ISM_WIDTH]
    delta = g - (ref * g).sum(-1, keepdims=True)  # g[alt] - g[ref]
    top, every = [], []
    for i in range(len(x)):
        alt = np.flatnonzero(ref[i].ravel() == 0)
        e, d = ism[i].ravel()[alt], delta[i].ravel()[alt]
        agree = np.sign(e) == np.sign(d)
        top.append(float(agree[np.argsort(-np.abs(e), kind="stable")[:TOP_K]].mean()))
        every.append(float(agree.mean()))
    return {"windows": picks.name.tolist(), "top": top, "all": every}


# ---------------------------------------------------------------------------------------------
# Fixture and tests


@pytest.fixture(scope="module")
def demo_model(tmp_path_factory):
    """The demo, its data, the trained model, and gradient maps (all four tracks, rc) of windows
    centred on held-out planted motifs and on regions.bed's."""
    root = tmp_path_factory.mktemp("interpret_demo")
    start = time.perf_counter()
    d = build_data(root)
    tic = time.perf_counter()
    summary = train_model(d["data"], root / "model")
    train_s = time.perf_counter() - tic
    model = str(root / "model/model_best.keras")
    sites = held_out_sites(d["demo"], d["data"], SITES_PER_MOTIF, PARAMS["model"]["seq_length"])
    sites.to_csv(root / "sites.bed", sep="\t", header=False, index=False)
    tic = time.perf_counter()
    maps = {}
    for name, bed in (("held_out", root / "sites.bed"), ("regions", d["demo"] / "regions.bed")):
        maps[name] = str(root / f"gradients_{name}.h5")
        I.gradient_maps([model], d["fasta"], str(bed), maps[name], fai=d["fai"], rc=True,
                        batch_size=16, threads=2)
    timing = {"demo_s": d["demo_s"], "data_s": d["data_s"], "train_s": round(train_s, 1),
              "gradients_s": round(time.perf_counter() - tic, 1),
              "fixture_s": round(time.perf_counter() - start, 1)}
    print(f"\ninterpret demo: {json.dumps(timing)}\ntraining: {json.dumps(summary)}")
    return {**d, "model": model, "sites": sites, "maps": maps, "summary": summary}


def test_model_learnt_the_tracks(demo_model):
    # The motifs cannot be read off a model that did not learn the tracks (MIN_VAL_R).
    assert demo_model["summary"]["best_val_pearsonr"] > MIN_VAL_R, demo_model["summary"]


@pytest.mark.parametrize("sites", ["held_out", "regions"])
def test_gradient_maps_recover_planted_motifs(demo_model, sites):
    scores = demo_recovery(demo_model["maps"][sites], str(demo_model["demo"] / "motifs.bed"))
    print(f"\n{sites}: {json.dumps(scores)}")
    if sites == "held_out":
        assert {k: s["n"] for k, s in scores.items()} == {
            "activator": SITES_PER_MOTIF, "repressor": SITES_PER_MOTIF,
            "promoter+": SITES_PER_MOTIF // 2, "promoter-": SITES_PER_MOTIF // 2}
    else:  # regions.bed: 8 per motif, promoters on either strand
        assert scores["activator"]["n"] == scores["repressor"]["n"] == 8
        assert scores["promoter+"]["n"] + scores["promoter-"]["n"] == 8
    for key, s in scores.items():
        assert s["auroc"] >= MIN_AUROC, (key, s)
        assert s["sign_frac"] >= MIN_SIGN[key], (key, s)


def test_ism_agrees_with_gradients_in_sign(demo_model):
    d = demo_model
    agree = ism_agreement(d["model"], d["sites"], d["fasta"], d["fai"])
    print(f"\nISM/gradient sign agreement: {json.dumps(agree)}")
    assert len(agree["top"]) == 2 * ISM_SITES + 2 * (ISM_SITES // 2)
    assert np.mean(agree["top"]) >= MIN_TOP_AGREEMENT, agree
    assert min(agree["top"]) >= MIN_TOP_AGREEMENT - 0.1, agree
    assert np.mean(agree["all"]) >= MIN_ALL_AGREEMENT, agree


def test_first_layer_filters_find_the_planted_motifs(demo_model, tmp_path):
    from seqnn.apply import filters as F

    summary = F.write_filters(demo_model["model"], str(tmp_path))
    pwms = np.stack(list(F.read_meme(str(tmp_path / "filters.meme")).values()))
    assert pwms.shape == (summary["filters"], 15, 4)
    best = {k: max(F.similarity(p, F.one_hot_pwm(m))[0] for p in pwms) for k, m in MOTIFS.items()}
    rng = np.random.default_rng(0)
    null = [max(F.similarity(p, F.one_hot_pwm("".join(rng.choice(list("ACGT"), 10))))[0]
                for p in pwms) for _ in range(RANDOM_KMERS)]
    print(f"\nfilters: best r {json.dumps({k: round(v, 3) for k, v in best.items()})}, random "
          f"10-mers max {max(null):.3f}")
    assert min(best.values()) >= MIN_FILTER_R > max(null), (best, max(null))


def test_downcast_costs_little_pearson_r(demo_model, tmp_path):
    import h5py

    from seqnn.apply.evaluate import evaluate
    from seqnn.apply.outputs import downcast
    from seqnn.model.metrics import pearsonr_np

    evaluate(demo_model["model"], str(demo_model["data"]), str(tmp_path), split="fold0",
             save_predictions=True, batch_size=16, threads=2)
    with h5py.File(tmp_path / "predictions.h5") as f:
        pred, target = f["pred"][:], f["target"][:].astype(np.float32)
    r = pearsonr_np(target, pred)
    change = {dt: np.abs(pearsonr_np(target, downcast(pred, dt)) - r).max() for dt in MAX_DR}
    print(f"\ndowncast: held-out r {np.round(r, 4).tolist()}, max |dr| {change}")
    for dt, limit in MAX_DR.items():
        assert change[dt] <= limit, (dt, change)
