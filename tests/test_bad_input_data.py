"""Bad genomes, BEDs, sheets, configs and params: one line naming the file, the problem and the
fix, from the library functions the workflow runs before any job (and the CLI before work)."""

import gzip
import re

import numpy as np
import pandas as pd
import pysam
import pytest
import yaml
from conftest import TINY_DATA, TINY_SIZES, write_tiny_bigwig, write_tiny_fasta
from test_bad_input import REPO, one_line

from seqnn import SeqnnError
from seqnn.config import check, check_schema, check_sheet_schema, complete
from seqnn.data.bed import read_bed, read_regions
from seqnn.data.coverage import check_track, open_track
from seqnn.data.fasta import chrom_sizes, fasta_sizes, index_fasta, open_fasta, scan_fasta
from seqnn.data.genome import chosen_chroms
from seqnn.data.targets import COLUMNS, OPTIONAL, read_sheet
from seqnn.model.params import parse_params
from seqnn.model.presets import resolve_model
from seqnn.train.options import train_options

SCHEMA = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
SHEET_SCHEMA = yaml.safe_load((REPO / "workflow/schemas/targets.schema.yaml").read_text())


# --- FASTA --------------------------------------------------------------------------------

@pytest.mark.parametrize("content, problem", [
    (b"", "the FASTA is empty; give the genome's sequences"),
    (b"chrI\tACGT\n", "not a FASTA (its first byte is not '>'); give the genome in FASTA "
                      "format"),
    (gzip.compress(b">chrI\nACGT\n", mtime=0),
     "compressed with plain gzip, which cannot be indexed; decompress it (gunzip) or recompress it "
     "with bgzip"),
    (b">\nACGT\n", "a '>' header line without a name; name every sequence"),
], ids=["empty", "text", "plain gzip", "nameless"])
def test_fasta_that_cannot_be_a_genome(tmp_path, content, problem):
    fasta = tmp_path / "g.fa"
    fasta.write_bytes(content)
    for check_it in (scan_fasta, chrom_sizes):
        with pytest.raises(SeqnnError) as e:
            check_it(str(fasta))
        assert one_line(e) == f"{fasta}: {problem}"
    assert not (tmp_path / "g.fa.fai").exists()


def test_duplicate_sequence_name(tmp_path):
    fasta = tmp_path / "g.fa"
    fasta.write_text(">chrI\nACGT\n>chrII\nAAAA\n>chrI second copy\nGGGG\n")
    message = (f"{fasta}: sequence name chrI appears twice; rename or remove one copy (samtools "
               "faidx keeps only the first)")
    with pytest.raises(SeqnnError) as e:  # the workflow's check before any job
        scan_fasta(str(fasta))
    assert one_line(e) == message
    with pytest.raises(SeqnnError) as e:  # the index pysam builds lacks the copy
        open_fasta(str(fasta))
    assert one_line(e) == message


def test_scan_agrees_with_the_index(tmp_path):
    """Names and lengths without an index equal faidx's, for CRLF, blank lines, descriptions
    and a bgzipped copy; a fresh index is used, a stale one refused."""
    fasta = tmp_path / "g.fa"
    write_tiny_fasta(fasta)
    text = fasta.read_text().replace(">chrII\n", ">chrII some description\n")
    crlf = tmp_path / "crlf.fa"
    crlf.write_bytes(text.replace("\n", "\r\n").encode() + b"\r\n")
    pysam.tabix_compress(str(fasta), str(tmp_path / "g.fa.gz"))
    for path in (fasta, crlf, tmp_path / "g.fa.gz"):
        assert scan_fasta(str(path)) == TINY_SIZES
    pysam.faidx(str(crlf))
    assert chrom_sizes(str(crlf)) == TINY_SIZES
    fai = tmp_path / "kept.fai"
    index_fasta(str(fasta), str(fai))
    assert fasta_sizes(str(fasta), str(fai)) == TINY_SIZES
    fasta.write_text(fasta.read_text().replace("ACGT", "ACGTA", 1))  # edited after indexing
    assert fasta_sizes(str(fasta), str(tmp_path / "none.fai"))["chrI"] == 3001


def test_fasta_lines_of_differing_length(tmp_path):
    fasta = tmp_path / "g.fa"
    fasta.write_text(">chrI\nACGT\nACGTAA\nAC\n")
    with pytest.raises(SeqnnError) as e:
        index_fasta(str(fasta), str(tmp_path / "results" / "g.fa.fai"))
    assert one_line(e) == (f"{fasta}: samtools faidx cannot index it (its reason is on the line "
                           "above); give every line of a sequence but its last the same length")
    assert list((tmp_path / "results").iterdir()) == []


def test_unknown_genome_chroms():
    with pytest.raises(SeqnnError) as e:
        chosen_chroms("g.fa", list(TINY_SIZES), ["chrI", "chr1"])
    assert one_line(e) == ("g.fa: genome.chroms lists chr1 which the FASTA lacks; use names from "
                           "its index (chrI, chrII, chrIII…)")


# --- BED ----------------------------------------------------------------------------------

def test_bed_with_ucsc_lines_ragged_rows_and_crlf(tmp_path):
    bed = tmp_path / "r.bed"
    bed.write_text('browser position chrI:1-100\ntrack name="peaks" description="a b"\n'
                   "# comment\n\nchrI\t10\t20\r\nchrII\t5\t50\tpeak1\t0\t-\n")
    got = read_bed(str(bed), ["name", "score", "strand"])
    assert got.chrom.tolist() == ["chrI", "chrII"] and got.end.tolist() == [20, 50]
    assert got.name.fillna("").tolist() == ["", "peak1"]
    assert got.strand.fillna("").tolist() == ["", "-"]


@pytest.mark.parametrize("reader, text, problem", [
    (read_bed, "chrI 10 20\n", "a line with fewer than 3 columns ('chrI 10 20'); give chrom, "
                               "start, end (tab-separated)"),
    (read_bed, "chrI\t10\t20\nchrI\t30\n", "a line with fewer than 3 columns ('chrI 30'); give "
                                            "chrom, start, end (tab-separated)"),
    (read_bed, "chrI\t10.5\t20\n", "start/end are not integers (invalid literal for int() with "
                                   "base 10: '10.5'); fix the BED"),
    (read_bed, "chrI\t30\t20\n", "a region ends before it starts or starts below 0; fix its "
                                 "start/end columns"),
    (read_sheet, "identifier\tfile\tfile\na\ta.bw\tb.bw\n", "column file appears twice; keep "
                                                          "one"),
    (read_sheet, "identifier\tfile\n\ta.bw\nb\tb.bw\n", "row 0 has no identifier; fill it in"),
    (read_sheet, "identifier\tfile\tscale\na\ta.bw\t1,5\n", "row 0 (a) scale 1,5 is not a "
     "positive number; give one such as 1 or 0.5 (a point, not a comma)"),
])
def test_malformed_bed_or_sheet(tmp_path, reader, text, problem):
    path = tmp_path / "file.txt"
    path.write_text(text)
    with pytest.raises(SeqnnError) as e:
        reader(str(path))
    assert one_line(e) == f"{path}: {problem}"


def test_region_past_the_chromosome_end(tmp_path):
    bed = tmp_path / "r.bed"
    bed.write_text("chrII\t100\t300\nchrII\t2500\t2600\tlate\n")
    with pytest.raises(SeqnnError) as e:
        read_regions(str(bed), TINY_SIZES)
    assert one_line(e) == (f"{bed}: region late (chrII:2500-2600) starts past the end of chrII "
                           "(2,500 bp) and 1 in all; fix or drop them (is the BED of another "
                           "genome build?)")
    bed.write_text("chrII\t100\t2600\n")  # an end past it is clipped
    assert read_regions(str(bed), TINY_SIZES).end.tolist() == [2500]


# --- tracks -------------------------------------------------------------------------------

def test_mixed_case_chromosome_names_suggest_aliases(tmp_path):
    track = write_tiny_bigwig(tmp_path / "t.bw", {c.upper(): n for c, n in TINY_SIZES.items()})
    with pytest.raises(SeqnnError) as e:
        check_track(open_track(str(track)), TINY_SIZES)
    assert one_line(e) == (f"{track}: no chromosome chrI, chrII, chrIII of the FASTA (it has "
                           "CHRI, CHRII, CHRIII); set genome.chrom_aliases: {chrI: CHRI, chrII: "
                           "CHRII, chrIII: CHRIII}")
    check_track(open_track(str(track)), TINY_SIZES, {c: c.upper() for c in TINY_SIZES})


def test_bam_without_index(tmp_path):
    header = {"HD": {"VN": "1.6"}, "SQ": [{"SN": c, "LN": n} for c, n in TINY_SIZES.items()]}
    bam = tmp_path / "r.bam"
    with pysam.AlignmentFile(str(bam), "wb", header=header):
        pass
    with pytest.raises(SeqnnError) as e:
        open_track(str(bam))
    assert re.fullmatch(rf"{re.escape(str(bam))}: cannot read as an indexed BAM \(.+\); run "
                        "samtools index", one_line(e))
    pysam.index(str(bam))
    check_track(open_track(str(bam)), TINY_SIZES)


# --- the track sheet ----------------------------------------------------------------------

def test_sheet_columns_match_its_schema():
    assert list(SHEET_SCHEMA["properties"]) == COLUMNS + OPTIONAL
    assert all(isinstance(v, dict) for v in SHEET_SCHEMA["properties"].values())


@pytest.mark.parametrize("header, near", [("sumstat", "sum_stat"), ("strand", "bam_strand"),
                                          ("colour", None)])
def test_unknown_sheet_column_names_the_nearest(tmp_path, header, near):
    sheet = tmp_path / "t.tsv"
    sheet.write_text(f"identifier\tfile\t{header}\na\ta.bw\tmean\n")
    with pytest.raises(SeqnnError) as e:
        read_sheet(str(sheet))
    hint = f"did you mean {near}? " if near else ""
    assert one_line(e) == (f"{sheet}: unknown column {header!r}; {hint}columns: "
                           f"{', '.join(COLUMNS + OPTIONAL)}")


def test_sheet_not_utf8_or_not_tab_separated(tmp_path):
    sheet = tmp_path / "t.tsv"
    sheet.write_bytes("identifier\tfile\tdescription\na\ta.bw\tRNA caf\xe9 \x96 ok\n"
                      .encode("latin-1"))
    with pytest.raises(SeqnnError) as e:
        read_sheet(str(sheet))
    assert one_line(e) == (f"{sheet}: line 2 is not UTF-8 text (byte 0xe9, e.g. from "
                           "Windows-1252); save the sheet as UTF-8")
    sheet.write_text("identifier file\na a.bw\n")
    with pytest.raises(SeqnnError) as e:
        read_sheet(str(sheet))
    assert one_line(e) == f"{sheet}: the columns are not tab-separated; separate them with tabs"


@pytest.mark.parametrize("row, problem", [
    ({"clip": -1.0}, "row 0 (a) column clip is -1.0; give a number > 0 or null"),
    ({"identifier": "a b"}, 'row 0 (a b) column identifier is "a b"; give a string matching '
                            "^[A-Za-z0-9_.-]+$"),
    ({"bam_strand": "plus"}, 'row 0 (a) column bam_strand is "plus"; give one of +, -, ., null'),
])
def test_sheet_values_against_the_schema(row, problem):
    sheet = pd.DataFrame([{"identifier": "a", "file": "a.bw", "strand_pair": 0,
                           "clip": float("nan"), **row}])
    with pytest.raises(SeqnnError) as e:
        check_sheet_schema(sheet, SHEET_SCHEMA, "t.tsv")
    assert one_line(e) == f"t.tsv: {problem}"


# --- the config ---------------------------------------------------------------------------

def config(**sections):
    base = {"genome": {"fasta": "g.fa"}, "targets": "t.tsv", "data": dict(TINY_DATA)}
    for key, value in sections.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    return base


DATA_KEYS = ", ".join(SCHEMA["properties"]["data"]["properties"])


@pytest.mark.parametrize("given, problem", [
    (config(data={"seq_lenght": 512}), "unknown key data.seq_lenght; did you mean seq_length? "
                                        f"valid keys of data: {DATA_KEYS}"),
    (config(data={"seq_length": "512"}), 'data.seq_length is "512"; give an integer >= 1'),
    (config(data={"seq_length": 0}), "data.seq_length is 0; give an integer >= 1"),
    (config(train={"epochs": 0}), "train.epochs is 0; give an integer >= 1 or null"),
    (config(train={"learning_rat": 0.1}), "unknown key train.learning_rat; valid keys of train: "
     + ", ".join(SCHEMA["properties"]["train"]["properties"])),
    (config(data={"negative": "drop"}), 'data.negative is "drop"; give one of error, clip'),
    (config(data={"nan_value": "median"}), 'data.nan_value is "median"; give a number or '
                                           "baseline"),
    (config(model={"size": "micro"}), 'model is {"size": "micro"}; give a string or a mapping '
                                      "with key(s) preset or a mapping with key(s) pretrained"),
    (config(evaluate={"shifts": [0, "1"]}), 'evaluate.shifts[1] is "1"; give an integer'),
    (config(genom={"fasta": "g.fa"}), "unknown key genom; did you mean genome? valid keys: "
     + ", ".join(SCHEMA["properties"])),
    ({"genome": {"fasta": "g.fa"}, "targets": "t.tsv"}, "the config lacks the required key data; "
                                                        "add it"),
])
def test_schema_errors_are_one_line(given, problem):
    with pytest.raises(SeqnnError) as e:
        check_schema(given, SCHEMA, "my.yaml")
    assert one_line(e) == f"my.yaml: {problem}"


def test_ism_width_beyond_the_window():
    given = config(interpret={"ism_width": 600})
    check_schema(given, SCHEMA, "my.yaml")
    from snakemake.utils import validate

    validate(given, str(REPO / "workflow/schemas/config.schema.yaml"))
    with pytest.raises(SeqnnError) as e:
        check(complete(given), ["a"], "my.yaml")
    assert one_line(e) == ("my.yaml: interpret.ism_width 600 exceeds data.seq_length 512; mutate "
                           "at most the whole window")


# --- params -------------------------------------------------------------------------------

def params(**block):
    return {"seq_length": 64, "trunk": [{"name": "conv_block", "filters": 8, **block}],
            "head": {"name": "final", "units": 2, "activation": "softplus"}}


@pytest.mark.parametrize("block, problem", [
    ({"filters": "32"}, 'filters "32" must be an integer >= 1 or null'),
    ({"filters": -4}, "filters -4 must be an integer >= 1 or null"),
    ({"kernel_size": 0}, "kernel_size 0 must be an integer >= 1"),
    ({"dropout": 1.5}, "dropout 1.5 must be a number in [0, 1)"),
    ({"residual": "yes"}, 'residual "yes" must be true or false'),
    ({"pool_size": 2.5}, "pool_size 2.5 must be an integer >= 1"),
])
def test_block_key_types_and_ranges(block, problem):
    with pytest.raises(SeqnnError) as e:
        parse_params(params(**block))
    assert one_line(e) == f"model.trunk[0] (conv_block): {problem}"


def test_model_key_types_and_params_files_named(tmp_path):
    with pytest.raises(SeqnnError) as e:
        parse_params({**params(), "seq_length": "64"})
    assert one_line(e) == 'model: seq_length "64" must be an integer >= 1'
    path = tmp_path / "p.json"
    path.write_text('{"model": ' + str(params(filters=-4)).replace("'", '"') + "}")
    with pytest.raises(SeqnnError) as e:
        resolve_model(str(path))
    assert one_line(e) == (f"{path}: model.trunk[0] (conv_block): filters -4 must be an integer "
                           ">= 1 or null")


@pytest.mark.parametrize("scale, problem", [
    ({"width": -64}, "scale width -64 must be an integer >= 1, as its default 64"),
    ({"width": "64"}, "scale width '64' must be an integer >= 1, as its default 64"),
    ({"size": "mikro"}, "no size 'mikro'; sizes: micro"),
])
def test_preset_scale_values(scale, problem):
    with pytest.raises(SeqnnError) as e:
        resolve_model({"preset": "dilated_conv", "size": "micro", **scale})
    assert one_line(e) == f"preset dilated_conv: {problem}"


def test_unknown_train_key_rejected(caplog):
    with pytest.raises(SeqnnError) as e:
        train_options({"train": {"learning_rat": 0.1}}, where="p.json")
    assert one_line(e).startswith("p.json: unknown train key 'learning_rat'; did you mean "
                                  "learning_rate? train keys: batch_size, ")
    opts = train_options({"train": {"clipnorm": 2, "train_epochs": 3}}, where="basenji.json")
    assert opts["clip_norm"] is None and opts["train_epochs_max"] == 10000
    assert ("basenji.json: train.clipnorm is an older key seqnn does not read; use "
            "train.clip_norm to set it") in caplog.messages


KEYWORDS = {"$schema", "description", "type", "properties", "additionalProperties", "required",
            "default", "x-default", "items", "minimum", "maximum", "exclusiveMinimum", "enum",
            "const", "oneOf", "pattern", "minItems"}


@pytest.mark.parametrize("schema", [SCHEMA, SHEET_SCHEMA])
def test_schemas_hold_only_known_keywords(schema):
    """An unquoted `: ` in a description makes a stray key that validation ignores."""
    def walk(node, where):
        assert set(node) <= KEYWORDS, (where, set(node) - KEYWORDS)
        for key, sub in node.get("properties", {}).items():
            walk(sub, f"{where}.{key}")
        for sub in node.get("oneOf", []) + ([node["items"]] if "items" in node else []):
            walk(sub, where)

    walk(schema, "schema")


# --- found in the second round ------------------------------------------------------------

def test_sequence_without_bases_and_empty_index(tmp_path):
    fasta = tmp_path / "g.fa"
    fasta.write_text(">chrM\n>chrI\nACGTACGT\nAC\n")  # faidx leaves chrM out
    assert scan_fasta(str(fasta)) == chrom_sizes(str(fasta)) == {"chrI": 10}
    (tmp_path / "g.fa.fai").write_text("")
    with pytest.raises(SeqnnError, match=r"g\.fa\.fai: the index does not fit"):
        chrom_sizes(str(fasta))


def test_bigwig_without_data_reads_as_missing(tmp_path):
    import pyBigWig

    bw = pyBigWig.open(str(tmp_path / "t.bw"), "w")
    bw.addHeader(list(TINY_SIZES.items()))
    bw.close()
    track = open_track(str(tmp_path / "t.bw"))
    check_track(track, TINY_SIZES)
    assert np.isnan(track.values("chrI", 5, 15)).all() and len(track.values("chrI", 5, 15)) == 10


def test_sheet_with_trailing_tabs_and_bom(tmp_path):
    sheet = tmp_path / "t.tsv"
    sheet.write_bytes(b"\xef\xbb\xbfidentifier\tfile\t\r\na\ta.bw\t\r\n")
    assert read_sheet(str(sheet)).identifier.tolist() == ["a"]


def test_empty_bed_of_regions(tmp_path):
    bed = tmp_path / "r.bed"
    bed.write_text("# nothing\n")
    with pytest.raises(SeqnnError) as e:
        read_regions(str(bed), TINY_SIZES)
    assert one_line(e) == f"{bed}: no region in the BED; give chrom, start, end lines"
