"""Bad input to the workflow stops `snakemake -n` before any job with one line on stderr (its
last), naming the file, the problem and the fix, and without a traceback or a results folder."""

import gzip
import json
import subprocess
import sys

import pytest
import yaml
from conftest import write_tiny_bigwig, write_tiny_config, write_tiny_sheet
from test_bad_input import JOB, REPO

from seqnn.train.options import TRAIN_KEYS

SCHEMA = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())


def dry_run(g) -> tuple[int, str, str]:
    cmd = [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--snakefile",
           str(REPO / "Snakefile"), "--directory", str(g.dir), "--configfile", str(g.config)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    return run.returncode, run.stdout, run.stderr


def edit_config(g, **changes):
    config = yaml.safe_load(g.config.read_text())
    for key, value in changes.items():
        section, _, sub = key.partition("__")
        if sub:
            config.setdefault(section, {})[sub] = value
        else:
            config[section] = value
    g.config.write_text(yaml.safe_dump(config, sort_keys=False))


def case(g, name):
    """Make case `name` in tiny_genome `g`; return the expected line."""
    cfg = str(g.config)
    if name == "key typo":
        write_tiny_config(g.config, "genome.fa", "targets.tsv", seq_lenght=512)
        return (f"{cfg}: unknown key data.seq_lenght; did you mean seq_length? valid keys of "
                f"data: {', '.join(SCHEMA['properties']['data']['properties'])}")
    if name == "sheet column typo":
        g.sheet.write_text("identifier\tfile\tsumstat\na\ttracks/a.bw\tmean\n")
        return ("targets.tsv: unknown column 'sumstat'; did you mean sum_stat? columns: "
                "identifier, file, clip, clip_soft, scale, sum_stat, strand_pair, description, "
                "bam_strand, sha256")
    if name == "plain gzip FASTA":
        g.fasta.write_bytes(gzip.compress(g.fasta.read_bytes()))
        return ("genome.fa: compressed with plain gzip, which cannot be indexed; decompress it "
                "(gunzip) or recompress it with bgzip")
    if name == "duplicate chromosome":
        g.fasta.write_text(g.fasta.read_text() + ">chrII\nACGT\n")
        return ("genome.fa: sequence name chrII appears twice; rename or remove one copy "
                "(samtools faidx keeps only the first)")
    if name == "not a bigWig":
        (g.dir / "tracks" / "a.bw").write_text("chrI\t0\t10\t1\n")
        return "tracks/a.bw: cannot open as bigWig; check the path and the file format"
    if name == "chromosome absent from a track":
        write_tiny_bigwig(g.track, {"chrI": 3000, "chrII": 2500})
        return ("tracks/a.bw: no chromosome chrIII of the FASTA (it has chrI, chrII); map FASTA "
                "names to the track's in genome.chrom_aliases, restrict genome.chroms or fix the "
                "track")
    if name == "unknown genome.chroms":
        edit_config(g, genome={"fasta": "genome.fa", "chroms": ["chrI", "chrV"]})
        return ("genome.fa: genome.chroms lists chrV which the FASTA lacks; use names from its "
                "index (chrI, chrII, chrIII…)")
    if name == "negative preset width":
        edit_config(g, model={"preset": "dilated_conv", "size": "micro", "width": -64})
        return f"{cfg}: preset dilated_conv: scale width -64 must be an integer >= 1, as its " \
               "default 64"
    if name == "preset size typo":
        edit_config(g, model={"preset": "conv", "size": "mikro"})
        return f"{cfg}: preset conv: no size 'mikro'; sizes: micro"
    if name == "unknown params train key":
        params = json.loads((REPO / "config/models/demo.json").read_text())
        params["train"]["learning_rat"] = 0.01
        params["model"]["seq_length"] = 512
        (g.dir / "p.json").write_text(json.dumps(params))
        edit_config(g, model="p.json")
        return ("p.json: unknown train key 'learning_rat'; did you mean learning_rate? train "
                f"keys: {', '.join(TRAIN_KEYS)}")
    raise ValueError(name)


@pytest.mark.workflow
@pytest.mark.parametrize("name", ["key typo", "sheet column typo", "plain gzip FASTA",
                                  "duplicate chromosome", "not a bigWig",
                                  "chromosome absent from a track", "unknown genome.chroms",
                                  "negative preset width", "preset size typo",
                                  "unknown params train key"])
def test_dry_run_fails_before_any_job(tiny_genome, name):
    message = case(tiny_genome, name)
    rc, out, err = dry_run(tiny_genome)
    assert rc == 1
    assert err.strip().splitlines()[-1] == message
    assert "Traceback" not in err and not JOB.search(out + err)
    assert not (tiny_genome.dir / "results").exists()


@pytest.mark.workflow
def test_sheet_row_against_its_schema(tiny_genome):
    write_tiny_sheet(tiny_genome.sheet, [{"identifier": "a", "file": "tracks/a.bw"}])
    tiny_genome.sheet.write_text(tiny_genome.sheet.read_text().replace("\t\t\t1.0", "\t-2\t\t1.0"))
    rc, _, err = dry_run(tiny_genome)
    assert rc == 1 and err.strip().splitlines()[-1] == (
        "targets.tsv: row 0 (a) column clip is -2; give a number > 0 or null")
