"""Bad input fails with one line naming the file, the problem and the fix, and leaves no output.

Library-level tests call seqnn directly; the `workflow` ones run real snakemake on tiny_genome.
"""

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import (
    TINY_DATA,
    TINY_SIZES,
    tiny_values,
    write_tiny_bigwig,
    write_tiny_config,
    write_tiny_fasta,
    write_tiny_sheet,
)

from seqnn import SeqnnError
from seqnn.config import check_data
from seqnn.data.coverage import open_track, read_targets, write_coverage
from seqnn.data.fasta import chrom_sizes
from seqnn.data.genome import write_contigs, write_sequences
from seqnn.data.records import split_files, write_split
from seqnn.data.targets import read_sheet
from seqnn.io import atomic_path

REPO = Path(__file__).resolve().parents[1]
ROW = {"identifier": "a", "sum_stat": "sum", "scale": 1.0, "clip": None, "clip_soft": None}
WINDOWS = [("chrI", 0, 512, "fold0"), ("chrII", 512, 1024, "fold1"),
           ("chrIII", 1000, 1512, "fold2")]


def one_line(e: pytest.ExceptionInfo) -> str:
    message = str(e.value)
    assert "\n" not in message
    return message


def expected(windows, values=tiny_values, pool=16):
    """Sum-pooled targets of `values(length)` over (chrom, start, end) windows."""
    return np.stack([values(TINY_SIZES[c])[s:e].reshape(-1, pool).sum(1)
                     for c, s, e, *_ in windows])


def coverage(g, track, windows=WINDOWS, **options):
    """write_coverage of `track` over `windows` into g.dir/coverage/a.h5."""
    bed = g.dir / "sequences.bed"
    pd.DataFrame(windows).to_csv(bed, sep="\t", header=False, index=False)
    out = g.dir / "coverage" / "a.h5"
    targets = write_coverage({**ROW, "file": str(track)}, str(bed), str(out),
                             chrom_sizes(str(g.fasta)), 16, **options)
    return out, targets


def assert_nothing_in(folder: Path):
    assert not folder.exists() or list(folder.iterdir()) == []


# --- chromosome names, lengths and values of a track ---------------------------------------

@pytest.mark.parametrize("fasta_names, track_names", [
    (["chrI", "chrII", "chrIII"], ["I", "II", "III"]),
    (["I", "II", "III"], ["chrI", "chrII", "chrIII"]),
])
def test_chrom_names_differ_suggest_aliases_which_then_work(tiny_genome, fasta_names,
                                                            track_names):
    g = tiny_genome
    write_tiny_fasta(g.fasta, dict(zip(fasta_names, TINY_SIZES.values(), strict=True)))
    track = write_tiny_bigwig(g.dir / "renamed.bw",
                              dict(zip(track_names, TINY_SIZES.values(), strict=True)))
    windows = [(fasta_names[list(TINY_SIZES).index(c)], *rest) for c, *rest in WINDOWS]
    with pytest.raises(SeqnnError) as e:
        coverage(g, track, windows)
    aliases = dict(zip(fasta_names, track_names, strict=True))
    pairs = ", ".join(f"{a}: {b}" for a, b in aliases.items())
    assert one_line(e) == (
        f"{track}: no chromosome {', '.join(fasta_names)} of the FASTA (it has "
        f"{', '.join(track_names)}); set genome.chrom_aliases: {{{pairs}}}")
    assert_nothing_in(g.dir / "coverage")
    out, _ = coverage(g, track, windows, chrom_aliases=aliases)
    np.testing.assert_array_equal(read_targets(str(out)), expected(WINDOWS))


def test_chrom_names_unrelated(tiny_genome):
    track = write_tiny_bigwig(tiny_genome.dir / "other.bw", {"scaffold_1": 9000})
    with pytest.raises(SeqnnError) as e:
        coverage(tiny_genome, track)
    assert one_line(e).startswith(f"{track}: no chromosome chrI, chrII, chrIII of the FASTA "
                                  "(it has scaffold_1); map FASTA names to the track's in "
                                  "genome.chrom_aliases")


def test_chrom_length_mismatch(tiny_genome):
    track = write_tiny_bigwig(tiny_genome.dir / "hg.bw", {**TINY_SIZES, "chrII": 2600})
    with pytest.raises(SeqnnError) as e:
        coverage(tiny_genome, track)
    assert one_line(e) == (f"{track}: chromosome chrII is 2,600 bp but 2,500 bp in the FASTA; "
                           "use a track made on the same assembly")
    assert_nothing_in(tiny_genome.dir / "coverage")


def test_nan_stored_in_bigwig(tiny_genome):
    values = tiny_values(TINY_SIZES["chrI"])
    values[100] = np.nan
    track = write_tiny_bigwig(tiny_genome.dir / "nan.bw", values={"chrI": values})
    with pytest.raises(SeqnnError) as e:  # pyBigWig's header() segfaulted on such a file
        coverage(tiny_genome, track)
    assert one_line(e) == (f"{track}: the track stores NaN values; remove those intervals from "
                           "the file (bases left out of a bigWig read as data.nan_value)")
    assert_nothing_in(tiny_genome.dir / "coverage")


def negative_values(length):
    values = tiny_values(length) - 0.5  # min -0.5: pyBigWig's header() rounds it to 0
    values[7] = -3.25
    return values


def test_negative_values_error_by_default_and_clip(tiny_genome):
    track = write_tiny_bigwig(tiny_genome.dir / "neg.bw",
                              values={c: negative_values(n) for c, n in TINY_SIZES.items()})
    with pytest.raises(SeqnnError) as e:
        coverage(tiny_genome, track)
    assert one_line(e) == (f"{track}: negative values (min -3.25); coverage must be >= 0 for "
                           "count losses: fix the track or set data.negative: clip")
    assert_nothing_in(tiny_genome.dir / "coverage")
    out, _ = coverage(tiny_genome, track, negative="clip")
    want = expected(WINDOWS, lambda n: np.maximum(negative_values(n), 0))
    np.testing.assert_array_equal(read_targets(str(out)), want.astype(np.float16))
    assert (want > expected(WINDOWS, negative_values)).any()


# --- track files ----------------------------------------------------------------------------

def test_missing_or_unreadable_track(tiny_genome):
    missing = tiny_genome.dir / "tracks" / "missing.bw"
    with pytest.raises(SeqnnError) as e:
        open_track(str(missing))
    assert one_line(e) == (f"{missing}: track file is missing or unreadable; fix its path in "
                           "the sheet")
    for name, content in [("garbage.bw", b"not a bigwig\n"), ("empty.bw", b"")]:
        bad = tiny_genome.dir / name
        bad.write_bytes(content)
        with pytest.raises(SeqnnError) as e:
            coverage(tiny_genome, bad)
        assert one_line(e) == f"{bad}: cannot open as bigWig; check the path and the file format"
    assert_nothing_in(tiny_genome.dir / "coverage")


# --- the track sheet --------------------------------------------------------------------------

def sheet(tmp_path, pairs, ids=("a", "b")):
    return write_tiny_sheet(tmp_path / "t.tsv", [
        {"identifier": i, "file": f"{i}.bw", "strand_pair": p}
        for i, p in zip(ids, pairs, strict=True)
    ])


def test_duplicate_identifiers(tmp_path):
    path = sheet(tmp_path, [0, 1], ids=("a", "a"))
    with pytest.raises(SeqnnError) as e:
        read_sheet(str(path))
    assert one_line(e) == f"{path}: duplicate identifier(s) a; make each unique"


def test_strand_pair_not_symmetric(tmp_path):
    path = sheet(tmp_path, [1, 1])
    with pytest.raises(SeqnnError) as e:
        read_sheet(str(path))
    assert one_line(e) == (f"{path}: strand_pair is not symmetric: row 0 (a) points to row 1, "
                           "which points to 1; pair them both ways")
    assert list(read_sheet(str(sheet(tmp_path, [1, 0]))).strand_pair) == [1, 0]


@pytest.mark.parametrize("pair", ["2", "-1", "0.5", ""])
def test_strand_pair_out_of_range(tmp_path, pair):
    path = sheet(tmp_path, [pair, 1])
    with pytest.raises(SeqnnError) as e:
        read_sheet(str(path))
    assert re.fullmatch(rf"{re.escape(str(path))}: row 0 \(a\) strand_pair \S+ is not a row index "
                        r"0\.\.1; give its pair's row \(its own if unstranded\)", one_line(e))


# --- data settings ----------------------------------------------------------------------------

@pytest.mark.parametrize("data, message", [
    ({"seq_length": 500}, "data.seq_length 500 is not divisible by data.pool_width 16; pick a "
                          "multiple of it"),
    ({"crop_bp": 256}, "data.crop_bp 256 leaves nothing of data.seq_length 512; crop less than "
                       "half of it"),
    ({"crop_bp": 8}, "data.crop_bp 8 is not divisible by data.pool_width 16; crop whole bins"),
    ({"break_length": 300}, "data.break_length 300 is shorter than data.seq_length 512, so every "
                            "contig piece would be dropped; raise it or set it to null"),
    ({"folds": 2}, "data.folds must be 0 (train/valid/test split) or at least 3 (test, valid "
                   "and train folds)"),
])
def test_inconsistent_data_settings(data, message):
    with pytest.raises(SeqnnError) as e:
        check_data({**TINY_DATA, **data}, "my.yaml")
    assert one_line(e) == f"my.yaml: {message}"


# --- contigs and folds ------------------------------------------------------------------------

def contigs(g, **options):
    args = {"seq_length": 512, "folds": 3, "seed": 1, **options}
    return write_contigs(str(g.fasta), str(g.dir / "data" / "contigs.bed"), **args)


def test_no_contig_long_enough(tiny_genome):
    with pytest.raises(SeqnnError) as e:
        contigs(tiny_genome, seq_length=4096)
    assert one_line(e) == (f"{tiny_genome.fasta}: no contig of at least seq_length=4096 bp "
                           "between N runs and gaps; lower data.seq_length or raise data.min_gap")
    assert_nothing_in(tiny_genome.dir / "data")


@pytest.mark.parametrize("options, n", [({"folds": 5}, 3),
                                        ({"chroms": ["chrI"], "break_length": 100_000}, 1)])
def test_too_few_contigs_for_folds(tiny_genome, options, n):
    with pytest.raises(SeqnnError) as e:
        contigs(tiny_genome, **options)
    folds = options.get("folds", 3)
    assert one_line(e) == (f"{tiny_genome.fasta}: {n} contig(s) for {folds} folds; lower "
                           "data.folds or data.break_length")
    assert_nothing_in(tiny_genome.dir / "data")
    if "break_length" in options:  # a smaller break_length makes enough contigs
        assert len(contigs(tiny_genome, **{**options, "break_length": 1000})) == 3


def sequences(g, **options):
    out = g.dir / "data" / "sequences.bed"
    args = {"seq_length": 512, "folds": 3, "stride_train": 256, "stride_test": 512,
            "sizes": chrom_sizes(str(g.fasta)), **options}
    return write_sequences(str(g.dir / "data" / "contigs.bed"), str(out), **args), out


def test_fold_left_without_sequence(tiny_genome):
    table = contigs(tiny_genome)
    fold = table.label[table.chrom == "chrIII"].item()
    blocked = tiny_genome.dir / "unmappable.bed"
    blocked.write_text("chrIII\t0\t2000\n")
    with pytest.raises(SeqnnError) as e:
        sequences(tiny_genome, unmappable=str(blocked))
    assert one_line(e) == (f"{tiny_genome.dir}/data/contigs.bed: {fold} got no sequence; use "
                           "fewer data.folds, a smaller data.break_length or data.stride_train, "
                           "or raise data.unmappable_max_frac")
    assert not (tiny_genome.dir / "data" / "sequences.bed").exists()


def test_split_left_without_sequence(tiny_genome):
    contigs(tiny_genome, folds=0, chroms=["chrI", "chrII"])  # 2 contigs: test and valid
    with pytest.raises(SeqnnError) as e:
        sequences(tiny_genome, folds=0)
    assert one_line(e) == (f"{tiny_genome.dir}/data/contigs.bed: train got no sequence; adjust "
                           "data.valid_frac / data.test_frac or lower data.break_length")
    assert not (tiny_genome.dir / "data" / "sequences.bed").exists()


# --- failed or killed jobs leave no finished-looking output -----------------------------------

def test_atomic_path_failure_leaves_nothing(tmp_path):
    for error in (RuntimeError, KeyboardInterrupt):
        with pytest.raises(error), atomic_path(tmp_path / "out" / "x.json") as tmp:
            Path(tmp).write_text("{half")
            raise error("mid-way")
        assert_nothing_in(tmp_path / "out")


@pytest.fixture
def split_inputs(tiny_genome):
    """sequences.bed rows and a coverage file of 10 fold0 sequences (3 shards of <= 4)."""
    g = tiny_genome
    seqs = pd.DataFrame({"chrom": "chrI", "start": np.arange(10) * 200, "label": "fold0"})
    seqs["end"] = seqs.start + 512
    seqs = seqs[["chrom", "start", "end", "label"]]
    from seqnn.data.coverage import write_targets

    write_targets(str(g.dir / "a.h5"), np.ones((10, 32), np.float16), {})
    return str(g.fasta), seqs, [str(g.dir / "a.h5")], g.dir / "data"


def test_write_split_failure_leaves_no_shard(split_inputs, monkeypatch):
    import seqnn.data.records

    fasta, seqs, cov, data = split_inputs
    real = seqnn.data.records._examples
    calls = []

    def failing(fa, rows, targets):
        calls.append(len(rows))
        if len(calls) == 2:  # the second shard dies after one record
            yield next(real(fa, rows, targets))
            raise OSError("disk full")
        yield from real(fa, rows, targets)

    monkeypatch.setattr(seqnn.data.records, "_examples", failing)
    with pytest.raises(OSError, match="disk full"):
        write_split(fasta, None, seqs, cov, str(data / "tfrecords"), "fold0", 4,
                    index=str(data / "tfrecords" / "fold0.json"))
    assert_nothing_in(data / "tfrecords")


KILLED = """
import os, signal, sys
import pandas as pd
import seqnn.data.records as r
seqs = pd.read_csv(sys.argv[2], sep="\\t")
real, calls = r._examples, []
def dying(fa, rows, targets):
    calls.append(1)
    yield next(real(fa, rows, targets))
    if len(calls) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    yield from real(fa, rows, targets)
r._examples = dying
r.write_split(sys.argv[1], None, seqs, [sys.argv[3]], sys.argv[4], "fold0", 4,
              index=os.path.join(sys.argv[4], "fold0.json"))
"""


def test_killed_write_split_leaves_nothing_finished(split_inputs, tmp_path):
    fasta, seqs, cov, data = split_inputs
    seqs.to_csv(tmp_path / "seqs.tsv", sep="\t", index=False)
    out = data / "tfrecords"
    run = subprocess.run([sys.executable, "-c", textwrap.dedent(KILLED), fasta,
                          str(tmp_path / "seqs.tsv"), cov[0], str(out)], capture_output=True)
    assert run.returncode == -9
    left = [p.relative_to(out).parts[0] for p in out.rglob("*")]
    assert left and all(p.startswith(".") for p in left)  # only hidden temporary names
    assert not list(out.glob("*.tfr")) and not (out / "fold0.json").exists()
    with pytest.raises(SeqnnError, match=r"no fold0-\*\.tfr shard"):
        split_files(str(data), "fold0")


def test_write_coverage_failure_leaves_no_file(tiny_genome, monkeypatch):
    import seqnn.data.coverage

    def failing(*args, **kwargs):
        raise MemoryError("killed mid-way")

    monkeypatch.setattr(seqnn.data.coverage, "transform", failing)
    with pytest.raises(MemoryError):
        coverage(tiny_genome, tiny_genome.track)
    assert_nothing_in(tiny_genome.dir / "coverage")


# --- real snakemake runs --------------------------------------------------------------------

def snakemake(g, *targets):
    cmd = [sys.executable, "-m", "snakemake", *targets, "--cores", "1", "--snakefile",
           str(REPO / "Snakefile"), "--directory", str(g.dir), "--configfile", str(g.config)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    return run.returncode, run.stdout + run.stderr


JOB = re.compile(r"^\s*(local)?rule \w+:", re.M)


@pytest.mark.workflow
@pytest.mark.parametrize("case", ["duplicate", "missing", "pool_width"])
def test_workflow_fails_before_any_job(tiny_genome, case):
    g = tiny_genome
    rows = [{"identifier": "a", "file": "tracks/a.bw"}]
    if case == "duplicate":
        write_tiny_sheet(g.sheet, rows * 2)
        message = "targets.tsv: duplicate identifier(s) a; make each unique"
    elif case == "missing":
        write_tiny_sheet(g.sheet, rows + [{"identifier": "b", "file": "tracks/b.bw"}])
        message = (f"tracks/b.bw: track b file not found or unreadable (relative to {g.dir}); "
                   "fix its file in targets.tsv")
    else:
        write_tiny_config(g.config, "genome.fa", "targets.tsv", seq_length=500)
        message = (f"{g.config}: data.seq_length 500 is not divisible by data.pool_width 16; "
                   "pick a multiple of it")
    rc, log = snakemake(g)
    assert rc != 0
    assert message in log.splitlines()
    assert not JOB.search(log) and not (g.dir / "results").exists()


@pytest.mark.workflow
def test_workflow_chrom_names_fail_before_any_job_then_aliases_fix_it(tiny_genome):
    g = tiny_genome
    names = {"chrI": "I", "chrII": "II", "chrIII": "III"}
    write_tiny_bigwig(g.track, {names[c]: n for c, n in TINY_SIZES.items()})
    out = g.dir / "results" / "data" / "coverage" / "a.h5"
    rc, log = snakemake(g, "results/data/coverage/a.h5")
    assert rc == 1 and not JOB.search(log) and not (g.dir / "results").exists()
    assert log.strip().splitlines()[-1] == (
        "tracks/a.bw: no chromosome chrI, chrII, chrIII of the FASTA (it has I, II, III); set "
        "genome.chrom_aliases: {chrI: I, chrII: II, chrIII: III}")

    write_tiny_config(g.config, "genome.fa", "targets.tsv", genome={"chrom_aliases": names})
    rc, log = snakemake(g, "results/data/coverage/a.h5")
    assert rc == 0, log
    seqs = pd.read_csv(g.dir / "results" / "data" / "sequences.bed", sep="\t", header=None)
    assert len(seqs) == sum((n - 512) // 256 + 1 for n in TINY_SIZES.values())
    np.testing.assert_array_equal(read_targets(str(out)), expected(seqs.to_numpy()))
    assert os.listdir(out.parent) == ["a.h5"]
