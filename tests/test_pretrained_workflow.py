"""config/pretrained on the Basenji2-like reference model: real snakemake runs with no training,
whose predictions equal the imported model's own outputs, and bad pretrained settings that stop
before any job in one line."""

import shutil

import h5py
import numpy as np
import pyBigWig
import pytest
import yaml
from conftest import write_tiny_bigwig, write_tiny_fasta, write_tiny_sheet
from helpers import REPO, run_snakemake

pytest.importorskip("tensorflow")
from seqnn.model.build import load_model  # noqa: E402

pytestmark = [pytest.mark.workflow]
MINI = REPO.parent / "shared" / "data" / "pretrained" / "basenji_mini"
if not MINI.is_dir():
    pytestmark.append(pytest.mark.skip(reason=f"{MINI} is absent (the shared reference vectors)"))
SIZES = {"c1": 12000, "c2": 10000, "c3": 9000}
L, P, CROP, T = 4096, 32, 256, 112  # the model's geometry: 112 bins of 32 bp, 256 bp cropped
MODEL_TRACKS = [  # the model's sheet (its head predicts 4 tracks): a stranded CAGE pair last
    {"identifier": "m0", "file": "", "strand_pair": 0},
    {"identifier": "m1", "file": "", "strand_pair": 1},
    {"identifier": "m2", "file": "", "strand_pair": 3},
    {"identifier": "m3", "file": "", "strand_pair": 2},
]


def setup_config(work, **changes):
    """config/pretrained/config.yaml with its paths swapped for the reference model, a random
    genome and two bigWig tracks (the user's `chip` and `dnase`, evaluated as m1 and m0)."""
    (work / "tracks").mkdir(parents=True, exist_ok=True)
    write_tiny_fasta(work / "genome.fa", SIZES, seed=3)
    rng = np.random.default_rng(5)
    for name in ("chip", "dnase"):
        write_tiny_bigwig(work / "tracks" / f"{name}.bw", SIZES,
                          {c: rng.gamma(1.0, 2.0, n) for c, n in SIZES.items()})
    write_tiny_sheet(work / "targets.tsv", [{"identifier": n, "file": f"tracks/{n}.bw"}
                                            for n in ("chip", "dnase")])
    write_tiny_sheet(work / "model_targets.txt", MODEL_TRACKS)
    (work / "variants.vcf").write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\n")
    config = yaml.safe_load((REPO / "config/pretrained/config.yaml").read_text())
    config.update(genome={"fasta": "genome.fa"}, targets="targets.tsv")
    config["data"].update(valid_frac=0.3, test_frac=0.3, break_length=None)
    config["model"]["pretrained"].update(weights=str(MINI / "model0.h5"),
                                         params=str(MINI / "params.json"),
                                         targets="model_targets.txt")
    config["evaluate"].update(tracks=["m1", "m0"], threads=2, batch_size=4)
    config["predict"].update(tracks=["m3"], shards=1, overlap=0, untransform=False, threads=2)
    config["interpret"].update(vcf=None, tracks=["m1"], threads=2)
    for key, value in changes.items():
        section, _, name = key.partition("__")
        config[section][name] = value
    shutil.copytree(REPO / "config", work / "config", dirs_exist_ok=True)
    (work / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return work / "config.yaml"


def snakemake(work, *targets, check=True):
    return run_snakemake(work, *targets, "--configfile", str(work / "config.yaml"), check=check)


def test_pretrained_config_runs_without_training(tmp_path):
    setup_config(tmp_path)
    plan = [line.split() for line in snakemake(tmp_path, "-n").stdout.splitlines()]
    jobs = {words[0] for words in plan if len(words) == 2 and words[1].isdigit()}
    assert {"import_model", "evaluate", "predict", "plots"} <= jobs and "train" not in jobs
    snakemake(tmp_path, "results/eval/cv_summary.tsv", "results/predict/m3.bw",
              "results/predict/m2.bw")
    assert not (tmp_path / "results/models/f0").exists()
    assert not (tmp_path / "results/logs/train").exists()

    # predictions: window 1 of c1 (bins 112..223) is the model's own output, averaged with the
    # reverse complement's (m3 <-> m2 swapped back): the head cut to m3 + its partner m2
    model, meta = load_model(tmp_path / "results/models/pretrained/model.keras")
    assert meta["statistics"]["seq_length"] == L and model.output_shape == (None, T, 4)
    fasta = (tmp_path / "genome.fa").read_text().split(">")[1:]
    seq = {r.split("\n", 1)[0]: r.split("\n", 1)[1].replace("\n", "") for r in fasta}["c1"]
    lo = T * P - CROP
    x = np.eye(4, dtype=np.float32)[["ACGT".index(b) for b in seq[lo : lo + L]]][None]
    fwd = np.asarray(model(x, training=False))[0]
    rev = np.asarray(model(np.ascontiguousarray(x[:, ::-1, ::-1]), training=False))[0][::-1]
    want = {"m3": (fwd[:, 3] + rev[:, 2]) / 2, "m2": (fwd[:, 2] + rev[:, 3]) / 2}
    for track, values in want.items():
        with pyBigWig.open(str(tmp_path / f"results/predict/{track}.bw")) as bw:
            got = np.array(bw.values("c1", T * P, 2 * T * P)).reshape(T, P)
        np.testing.assert_allclose(got, np.repeat(values[:, None], P, 1), rtol=1e-4, atol=1e-5)

    # evaluation on the user's tracks: both rows, at the model's geometry
    acc = (tmp_path / "results/eval/f0/acc.tsv").read_text().splitlines()
    assert [line.split("\t")[1] for line in acc[1:]] == ["chip", "dnase"]
    with h5py.File(tmp_path / "results/eval/f0/examples.h5") as f:
        assert f.attrs["pool_width"] == P and f["loci/pred"].shape[1:] == (T, 2)


@pytest.mark.parametrize("changes, message", [
    ({"data__seq_length": 2048},
     "data.seq_length 2048 in {cfg} contradicts the pretrained model's 4096"),
    ({"predict__tracks": ["m9"]},
     "predict.tracks in {cfg}: track 'm9' is neither an identifier nor an index of "
     "model_targets.txt"),
])
def test_bad_pretrained_settings_stop_before_any_job(tmp_path, changes, message):
    cfg = setup_config(tmp_path, **changes)
    result = snakemake(tmp_path, "-n", check=False)
    out = result.stdout + result.stderr
    assert result.returncode and message.format(cfg=cfg) in out, out[-2000:]
    assert "Job stats" not in out


@pytest.mark.parametrize("pretrained, message", [
    ({"weights": "absent.h5"},
     "absent.h5: model.pretrained.weights not found; fix the path in {cfg}"),
    ({"format": "keras2"},
     "model.pretrained.format 'keras2' in {cfg} is not a known format; use baskerville or "
     "enformer"),
])
def test_bad_pretrained_block_stops_before_any_job(tmp_path, pretrained, message):
    cfg = setup_config(tmp_path)
    config = yaml.safe_load(cfg.read_text())
    config["model"]["pretrained"].update(pretrained)
    cfg.write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "-n", check=False)
    out = result.stdout + result.stderr
    assert result.returncode and message.format(cfg=cfg) in out, out[-2000:]
