"""The workflow runs from any working directory: `snakemake -s PATH/Snakefile` in an empty
folder runs the embedded demo there, a user config's relative paths are found in the working
directory, then beside the config file (then in the workflow's folder), and the workflow works
as a Snakemake module the way catalog workflows are deployed."""

import os
import subprocess
import sys

import pandas as pd
import pytest
from conftest import write_tiny_bigwig, write_tiny_config, write_tiny_fasta, write_tiny_sheet
from helpers import REPO

from seqnn.config import path_folders, resolve_path, resolve_paths, resolve_sheet_files

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
# what a run could write into the repository (not .snakemake/: another test lints there)
OUTPUTS = ("results", "resources/demo", "resources/downloads")


def snakemake(workdir, *args):
    """`snakemake ARGS` run in `workdir` itself (no --directory)."""
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", *args]
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=ENV, timeout=300)


def jobs(stdout: str) -> set[str]:
    """The rules of a dry run's job table."""
    table = stdout.split("Job stats:")[1].split("total")[0]
    return {line.split()[0] for line in table.splitlines()[3:] if line.strip()}


def repo_outputs():
    """What the workflow could write into the repository: each output folder's files and times."""
    found = {}
    for name in OUTPUTS:
        for root, _, files in os.walk(REPO / name):
            for f in files:
                path = os.path.join(root, f)
                found[path] = os.stat(path).st_mtime_ns
    return found


# --- the path rule ---------------------------------------------------------------------------

@pytest.fixture
def places(tmp_path, monkeypatch):
    """A working directory, a config folder and a workflow folder, each with its own files."""
    work, conf, flow = (tmp_path / n for n in ("work", "conf", "flow"))
    for folder, names in ((work, ["both.fa", "here.bed"]), (conf, ["both.fa", "conf.bed"]),
                          (flow, ["conf.bed", "config/models/demo.json", "config/t.tsv"])):
        for name in names:
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(name)
    monkeypatch.chdir(work)
    return {"work": work, "folders": path_folders([conf / "config.yaml"], str(flow)),
            "conf": conf, "flow": flow}


def test_working_directory_first_then_the_config_folder_then_the_workflow(places):
    folders, conf, flow = places["folders"], places["conf"], places["flow"]
    assert [label for label, _ in folders] == ["the config file's folder", "the workflow's folder"]
    assert resolve_path("both.fa", folders) == ("both.fa", None)  # here wins
    assert resolve_path("here.bed", folders) == ("here.bed", None)
    assert resolve_path("conf.bed", folders) == (str(conf / "conf.bed"), "the config file's folder")
    assert resolve_path("config/t.tsv", folders) == (str(flow / "config/t.tsv"),
                                                     "the workflow's folder")
    assert resolve_path("./sub/../config/t.tsv", folders)[0] == str(flow / "config/t.tsv")


def test_absolute_urls_generated_and_missing_paths_are_left_as_given(places):
    folders, conf = places["folders"], places["conf"]
    absolute = str(conf / "missing.bed")
    assert resolve_path(absolute, folders) == (absolute, None)
    for url in ("https://example.org/conf.bed", "ftp://example.org/g.fa", "file:///conf.bed"):
        assert resolve_path(url, folders) == (url, None)
    # a file a rule makes (the demo's resources/demo/*) stays where the rule writes it
    (conf / "resources/demo").mkdir(parents=True)
    (conf / "resources/demo/genome.fa").write_text(">c\nA\n")
    demo = "resources/demo/genome.fa"
    assert resolve_path(demo, folders, keep=lambda p: p.startswith("resources/demo/")) == (
        demo, None)
    assert resolve_path(demo, folders)[1] == "the config file's folder"  # when not the demo's
    # found nowhere: as given, so that the missing-file checks name what the user wrote
    assert resolve_path("nowhere.bed", folders) == ("nowhere.bed", None)
    assert resolve_path(None, folders) == (None, None)


def test_every_input_key_of_the_config_and_the_sheet_is_resolved(places):
    folders, conf, flow = places["folders"], places["conf"], places["flow"]
    for name in ("g.fa", "gaps.bed", "bl.bed", "um.bed", "t.tsv", "tss.bed", "p.bed", "ptss.bed",
                 "e.bed", "i.bed", "v.vcf", "p.json", "tracks/a.bw"):
        (conf / name).parent.mkdir(exist_ok=True)
        (conf / name).write_text(name)
    config = {"genome": {"fasta": "g.fa", "gaps": "gaps.bed", "blacklist": "bl.bed",
                         "unmappable": "um.bed"},
              "targets": "t.tsv", "model": "p.json", "evaluate": {"tss": "tss.bed"},
              "predict": {"bed": "p.bed", "tss_bed": "ptss.bed", "embed_bed": "e.bed"},
              "interpret": {"bed": "i.bed", "vcf": "v.vcf"}}
    lines = resolve_paths(config, folders)
    assert len(lines) == 12
    assert lines[0] == (f"genome.fasta g.fa: not in the working directory ({places['work']}); "
                        f"using {conf / 'g.fa'} from the config file's folder")
    assert config["interpret"]["vcf"] == str(conf / "v.vcf")
    assert config["model"] == str(conf / "p.json") and config["targets"] == str(conf / "t.tsv")
    # the schema's default model (the demo's) is the workflow's; a preset name is no path
    for model, expected in (("config/models/demo.json", str(flow / "config/models/demo.json")),
                            ("conv", "conv"), ({"preset": "conv", "size": "micro"}, None)):
        config = {"model": model}
        resolve_paths(config, folders)
        assert config["model"] == (expected or model)
    config = {"model": {"preset": "p.json", "width": 8}}
    resolve_paths(config, folders)
    assert config["model"] == {"preset": str(conf / "p.json"), "width": 8}
    config = {"model": {"pretrained": {"weights": "g.fa", "params": None, "targets": "t.tsv"}}}
    assert len(resolve_paths(config, folders)) == 2
    assert config["model"]["pretrained"] == {"weights": str(conf / "g.fa"), "params": None,
                                             "targets": str(conf / "t.tsv")}
    # the sheet's files: also beside the sheet
    sheet = pd.DataFrame({"identifier": ["a", "b", "c"],
                          "file": ["tracks/a.bw", "b.bw", "https://x.org/c.bw"]})
    (flow / "sheets").mkdir()
    (flow / "sheets/b.bw").write_text("b")
    folders = path_folders([conf / "config.yaml"], str(flow), sheet=str(flow / "sheets/t.tsv"))
    lines = resolve_sheet_files(sheet, "t.tsv", folders)
    assert list(sheet.file) == [str(conf / "tracks/a.bw"), str(flow / "sheets/b.bw"),
                                "https://x.org/c.bw"]
    assert lines[1].startswith("t.tsv: track b file b.bw: not in the working directory")
    assert lines[1].endswith("from the track sheet's folder")


# --- real snakemake runs ---------------------------------------------------------------------

@pytest.mark.workflow
def test_demo_planned_from_an_empty_folder_writes_nothing_into_the_workflow(tmp_path):
    before = repo_outputs()
    run = snakemake(tmp_path, "-s", str(REPO / "Snakefile"), "-n")
    assert run.returncode == 0, run.stderr[-3000:]
    assert {"demo", "train", "evaluate", "predict", "gradients"} <= jobs(run.stdout)
    assert (f"targets config/targets.tsv: not in the working directory ({tmp_path}); using "
            f"{REPO / 'config/targets.tsv'} from the workflow's folder") in run.stdout + run.stderr
    assert repo_outputs() == before
    assert os.listdir(tmp_path) == [".snakemake"]


@pytest.mark.workflow
def test_demo_steps_run_from_an_empty_folder_and_write_there(tmp_path):
    before = repo_outputs()
    run = snakemake(tmp_path, "-s", str(REPO / "Snakefile"), "results/data/contigs.bed")
    assert run.returncode == 0, run.stderr[-3000:]
    assert (tmp_path / "resources/demo/genome.fa").is_file()
    assert (tmp_path / "results/data/contigs.bed").stat().st_size > 0
    assert repo_outputs() == before


MODULE = """\
configfile: "{config}"


module seqnn:
    snakefile:
        "{snakefile}"
    config:
        config


use rule * from seqnn
"""


@pytest.mark.workflow
def test_the_workflow_as_a_module_with_paths_beside_the_config(tmp_path):
    """A deployment's Snakefile in its own folder; the config and its data in another, named
    relative to the config file."""
    data = tmp_path / "data"
    (data / "tracks").mkdir(parents=True)
    write_tiny_fasta(data / "genome.fa")
    write_tiny_bigwig(data / "tracks/a.bw")
    write_tiny_sheet(data / "targets.tsv", [{"identifier": "a", "file": "tracks/a.bw"}])
    config = write_tiny_config(data / "config.yaml", "genome.fa", "targets.tsv")
    work = tmp_path / "deploy"
    (work / "workflow").mkdir(parents=True)
    (work / "workflow/Snakefile").write_text(
        MODULE.format(config=config, snakefile=REPO / "Snakefile"))
    before = repo_outputs()
    run = snakemake(work, "-n")
    assert run.returncode == 0, run.stderr[-3000:]
    assert {"faidx", "coverage", "tfrecords", "train", "evaluate", "predict"} <= jobs(run.stdout)
    for line in ("genome.fasta genome.fa", "targets targets.tsv",
                 f"{data / 'targets.tsv'}: track a file tracks/a.bw"):
        assert f"{line}: not in the working directory ({work}); using " in run.stdout + run.stderr
    assert "from the config file's folder" in run.stdout + run.stderr
    # a missing file: the one-line error names it as written, as before
    write_tiny_sheet(data / "targets.tsv", [{"identifier": "b", "file": "tracks/b.bw"}])
    run = snakemake(work, "-n")
    assert run.returncode == 1 and run.stderr.strip().splitlines()[-1] == (
        f"tracks/b.bw: track b file not found or unreadable (relative to {work}); fix its file "
        f"in {data / 'targets.tsv'}")
    assert repo_outputs() == before and not (work / "results").exists()
