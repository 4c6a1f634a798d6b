"""Bad input to the `seqnn` command: exit code, one last stderr line naming the file or option,
the problem and the fix (no traceback), and no finished-looking output left behind.

The models are test_predict's count model (256 bp windows, 12 bins of 16 bp, 3 tracks).
"""

import os
import re
import shutil

import numpy as np
import pyBigWig
import pysam
import pytest
from conftest import write_tiny_fasta
from test_predict import count_model
from test_variants import write_vcf

from seqnn import cli
from seqnn.cli import apply as cli_apply
from seqnn.cli import train as cli_train


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli_bad")
    fasta = write_tiny_fasta(d / "genome.fa")
    pysam.faidx(str(fasta))
    bed = d / "ok.bed"
    bed.write_text("chrII\t100\t300\n")
    return {"dir": d, "fasta": str(fasta), "model": count_model(d / "c.keras"), "bed": str(bed)}


def run(capsys, *argv) -> tuple[int, str]:
    """Exit code and last stderr line of `seqnn ARGV` (its timestamp and level cut off)."""
    try:
        rc = cli.main([str(a) for a in argv])
    except SystemExit as e:  # argparse's usage errors
        rc = e.code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return rc, re.sub(r"^\d\d:\d\d:\d\d ERROR ", "", err.strip().splitlines()[-1])


def assert_empty(path):
    assert not os.path.exists(path) or os.listdir(path) == []


# --- numeric options ----------------------------------------------------------------------

@pytest.mark.parametrize("argv, option, low", [
    (["predict", "m.keras", "--fasta", "g.fa", "-o", "o", "--batch-size", "0"], "--batch-size", 1),
    (["predict", "m.keras", "--fasta", "g.fa", "-o", "o", "--overlap", "-16"], "--overlap", 0),
    (["predict", "m.keras", "--fasta", "g.fa", "-o", "o", "--threads", "0"], "--threads", 1),
    (["evaluate", "m.keras", "d", "-o", "o", "--tss-window", "0"], "--tss-window", 1),
    (["interpret", "m.keras", "--fasta", "g", "--input", "b", "-o", "o", "--ism-width", "-1"],
     "--ism-width", 0),
    (["interpret", "m.keras", "--fasta", "g", "--input", "b", "-o", "o", "--window", "0"],
     "--window", 1),
    (["variants", "m.keras", "--fasta", "g", "--input", "v", "-o", "o", "--head", "-1"],
     "--head", 0),
    (["train", "p.json", "d", "-o", "o", "--epochs", "0"], "--epochs", 1),
    (["train", "p.json", "d", "-o", "o", "--test-fold", "x"], "--test-fold", 0),
    (["demo", "out", "--seed", "-3"], "--seed", 0),
])
def test_numeric_options_out_of_range(capsys, tmp_path, monkeypatch, argv, option, low):
    monkeypatch.chdir(tmp_path)
    rc, line = run(capsys, *argv)
    value = argv[argv.index(option) + 1]
    assert rc == 2 and line.endswith(f"argument {option}: {value!r} is not an integer >= {low}; "
                                     "give one")
    assert os.listdir(tmp_path) == []


# --- outputs --------------------------------------------------------------------------------

def test_variants_out_is_a_folder_interpret_out_is_a_file(tiny, capsys, tmp_path):
    vcf = write_vcf(tmp_path / "v.vcf", [("chrI", 10, "x", "A", "C")])
    folder = tmp_path / "scores"
    folder.mkdir()
    rc, line = run(capsys, "variants", tiny["model"], "--fasta", tiny["fasta"], "--input", vcf,
                   "-o", folder)
    assert (rc, line) == (1, f"-o {folder}: exists and is not a file; give a new or existing "
                             "file")
    assert_empty(folder)
    taken = tmp_path / "taken"
    taken.write_text("x")
    rc, line = run(capsys, "interpret", tiny["model"], "--fasta", tiny["fasta"], "--input",
                   tiny["bed"], "-o", taken)
    assert (rc, line) == (1, f"-o {taken}: exists and is not a folder; give a new or existing "
                             "folder")
    assert taken.read_text() == "x"


def test_output_below_a_file(tiny, capsys, tmp_path):
    (tmp_path / "f").write_text("x")
    out = tmp_path / "f" / "sub" / "pred"
    rc, line = run(capsys, "predict", tiny["model"], "--fasta", tiny["fasta"], "-o", out)
    assert (rc, line) == (1, f"-o {out}: {tmp_path / 'f'} is a file, so the folder cannot be "
                             "made there; choose another place")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folder(tiny, capsys, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        rc, line = run(capsys, "predict", tiny["model"], "--fasta", tiny["fasta"], "-o",
                       locked / "out")
        assert (rc, line) == (1, f"-o {locked / 'out'}: {locked} is not writable; choose a "
                                 "writable place")
    finally:
        locked.chmod(0o755)


# --- models ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name, content", [
    ("random.keras", np.random.default_rng(0).bytes(300)),
    ("text.keras", b"not a model\n"),
    ("params.json", b'{"model": {"seq_length": 256}}'),
])
def test_file_that_is_not_a_model(tiny, capsys, tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    out = tmp_path / "out"
    rc, line = run(capsys, "predict", path, "--fasta", tiny["fasta"], "-o", out)
    assert (rc, line) == (1, f"{path}: not a model file (a .keras file is a zip archive); give "
                             "a .keras file written by seqnn train or seqnn import")
    assert_empty(out)


def test_zip_that_is_not_a_model(tiny, capsys, tmp_path):
    path = tmp_path / "zip.keras"
    shutil.make_archive(str(tmp_path / "zip"), "zip", tiny["dir"], "ok.bed")
    os.replace(tmp_path / "zip.zip", path)
    rc, line = run(capsys, "predict", path, "--fasta", tiny["fasta"], "-o", tmp_path / "out")
    assert rc == 1 and line.startswith(f"{path}: cannot load the model (")
    assert line.endswith("); give a .keras file written by seqnn train or seqnn import")
    assert_empty(tmp_path / "out")


# --- genome and regions ---------------------------------------------------------------------

def test_stale_fasta_index(tiny, capsys, tmp_path):
    fasta = tmp_path / "g.fa"
    shutil.copy(tiny["fasta"], fasta)
    pysam.faidx(str(fasta))
    with pysam.FastaFile(tiny["fasta"]) as fa:  # rewrapped at 80 bp after indexing
        fasta.write_text("".join(f">{c}\n" + "\n".join(fa.fetch(c)[i:i + 80] for i in
                                                       range(0, n, 80)) + "\n"
                                 for c, n in zip(fa.references, fa.lengths, strict=True)))
    out = tmp_path / "out"
    rc, line = run(capsys, "predict", tiny["model"], "--fasta", fasta, "-o", out, "--bed",
                   tiny["bed"])
    assert (rc, line) == (1, f"{fasta}.fai: the index does not fit {fasta} (the FASTA changed "
                             f"after indexing); delete the index to rebuild it (samtools faidx "
                             f"{fasta})")
    assert_empty(out)
    os.remove(f"{fasta}.fai")  # the fix works: the predictions of the original FASTA
    for f, o in ((fasta, out), (tiny["fasta"], tmp_path / "want")):
        assert run(capsys, "predict", tiny["model"], "--fasta", f, "-o", o, "--bed",
                   tiny["bed"])[0] == 0
    with pyBigWig.open(str(out / "gc.bw")) as got, \
            pyBigWig.open(str(tmp_path / "want" / "gc.bw")) as want:
        np.testing.assert_array_equal(got.values("chrII", 0, 2500, numpy=True),
                                      want.values("chrII", 0, 2500, numpy=True))


def test_bed_region_past_the_chromosome_end(tiny, capsys, tmp_path):
    bed = tmp_path / "r.bed"
    bed.write_text("track name=x description=\"regions\"\nchrII\t100\t300\nchrII\t9000\t9100\n")
    out = tmp_path / "out"
    for argv in (["predict", tiny["model"], "--fasta", tiny["fasta"], "-o", out, "--bed", bed,
                  "--regions-h5"],
                 ["interpret", tiny["model"], "--fasta", tiny["fasta"], "--input", bed, "-o",
                  out, "--ism-width", 10]):
        rc, line = run(capsys, *argv)
        assert (rc, line) == (1, f"{bed}: region chrII:9000-9100 (chrII:9000-9100) starts past "
                                 "the end of chrII (2,500 bp) and 1 in all; fix or drop them (is "
                                 "the BED of another genome build?)")
        assert_empty(out)


def test_ism_width_larger_than_the_window(tiny, capsys, tmp_path):
    out = tmp_path / "out"
    rc, line = run(capsys, "interpret", tiny["model"], "--fasta", tiny["fasta"], "--input",
                   tiny["bed"], "-o", out, "--ism-width", 5000)
    assert (rc, line) == (1, "ISM width 5000 bp does not fit the models' 256 bp windows; give "
                             "--ism-width (interpret.ism_width) 1..256")
    assert_empty(out)


# --- variants -------------------------------------------------------------------------------

def test_vcf_with_every_variant_skipped(tiny, capsys, tmp_path):
    with pysam.FastaFile(tiny["fasta"]) as fa:
        base = fa.fetch("chrI", 9, 10)
    wrong = next(b for b in "ACGT" if b != base)
    other = next(b for b in "ACGT" if b not in (base, wrong))
    vcf = write_vcf(tmp_path / "v.vcf", [("chrX", 5, "a", "A", "C"), ("chrI", 10, "b", wrong,
                                                                      other),
                                         ("chrI", 20, "c", "A", "<DEL>"),
                                         ("chrII", 2600, "d", "A", "C")])
    out = tmp_path / "v.h5"
    rc, line = run(capsys, "variants", tiny["model"], "--fasta", tiny["fasta"], "--input", vcf,
                   "-o", out)
    assert (rc, line) == (1, f"{vcf}: none of its 4 variant(s) can be scored (symbolic 1, "
                             "missing_chrom 1, ref_mismatch 1, past_end 1); fix the VCF as the "
                             "warnings say")
    assert not out.exists() and os.listdir(tmp_path) == ["v.vcf"]


def test_pos_past_the_chromosome_end_is_named(tiny, caplog, tmp_path):
    from seqnn.apply.variants import score_vcf

    with pysam.FastaFile(tiny["fasta"]) as fa:
        first = fa.fetch("chrI", 0, 1)
    vcf = write_vcf(tmp_path / "v.vcf", [("chrI", 1, "ok", first, "G" if first != "G" else "C"),
                                         ("chrII", 2500, "end", "AC", "A")])
    counts = score_vcf([tiny["model"]], tiny["fasta"], vcf, tmp_path / "v.h5", rc=False)
    assert (counts["scored"], counts["skipped_past_end"]) == (1, 1)
    assert (f"{vcf}: 1 variant(s) skipped, POS below 1 or REF past the end of its chromosome (e.g. "
            "end) "
            "(chrII has 2,500 bp in the FASTA); fix POS (1-based) or use the FASTA of the VCF's "
            "genome build") in caplog.messages


# --- Ctrl-C ---------------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["predict", "train"])
def test_ctrl_c_is_one_line(tiny, capsys, tmp_path, monkeypatch, command):
    def interrupted(args, log):
        raise KeyboardInterrupt

    module = {"predict": cli_apply, "train": cli_train}[command]
    monkeypatch.setattr(module, f"_{command}", interrupted)
    argv = (["predict", tiny["model"], "--fasta", tiny["fasta"], "-o", tmp_path / "o"]
            if command == "predict" else ["train", "p.json", "d", "-o", tmp_path / "o"])
    rc, line = run(capsys, *argv)
    again = ("run it again to resume after the last finished epoch" if command == "train"
             else "unfinished outputs were removed; run it again")
    assert (rc, line) == (130, f"seqnn {command}: interrupted; {again}")


# --- found in the second round ------------------------------------------------------------

@pytest.mark.parametrize("option, value, message", [
    ("--head", 2, "{model}: the model has one head, so there is no head 2; drop --head "
                  "(predict.head) or give 0"),
    ("--shifts", 5000, "shifts 5000: a shift must be shorter than the 256 bp window; give "
                       "--shifts within -255..255 (a few bp, e.g. -1,0,1)"),
])
def test_head_or_shift_the_model_cannot_take(tiny, capsys, tmp_path, option, value, message):
    out = tmp_path / "out"
    rc, line = run(capsys, "predict", tiny["model"], "--fasta", tiny["fasta"], "-o", out,
                   "--bed", tiny["bed"], option, value)
    assert (rc, line) == (1, message.format(model=tiny["model"]))
    assert_empty(out)


def test_vcf_pos_zero(tiny, capsys, tmp_path):
    vcf = write_vcf(tmp_path / "v.vcf", [("chrI", 0, "x", "A", "C")])
    rc, line = run(capsys, "variants", tiny["model"], "--fasta", tiny["fasta"], "--input", vcf,
                   "-o", tmp_path / "v.h5")
    assert (rc, line) == (1, f"{vcf}: none of its 1 variant(s) can be scored (past_end 1); fix "
                             "the VCF as the warnings say")
    assert not (tmp_path / "v.h5").exists()
