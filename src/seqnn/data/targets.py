"""The track sheet (Basenji targets.txt): read, check and write.

Columns: identifier, file, clip, clip_soft, scale, sum_stat, strand_pair, description, and
optionally bam_strand (+/-, for one transcript strand of a BAM). Basenji writes an unnamed
index column first; sheets with or without it are read alike, and rows are indexed 0..T-1.
"""

from __future__ import annotations

import difflib
import logging
import os
import re

import pandas as pd

from seqnn import SeqnnError
from seqnn.data.coverage import SUM_STATS
from seqnn.io import atomic_path

COLUMNS = ["identifier", "file", "clip", "clip_soft", "scale", "sum_stat", "strand_pair",
           "description"]
OPTIONAL = ["bam_strand", "sha256"]  # as workflow/schemas/targets.schema.yaml
log = logging.getLogger("seqnn")

DEFAULTS = {"clip": None, "clip_soft": None, "scale": 1.0, "sum_stat": "sum", "description": ""}


def read_sheet(path: str) -> pd.DataFrame:
    """The sheet as a DataFrame indexed 0..T-1, with defaults filled in and checked."""
    try:
        df = pd.read_csv(path, sep="\t", dtype={"identifier": str, "file": str}, comment=None)
    except UnicodeDecodeError:
        with open(path, "rb") as f:
            data = f.read()
        try:
            data.decode()
        except UnicodeDecodeError as e:
            line = data[: e.start].count(b"\n") + 1
            raise SeqnnError(f"{path}: line {line} is not UTF-8 text (byte {data[e.start]:#x}, "
                             "e.g. from Windows-1252); save the sheet as UTF-8") from None
    except (OSError, ValueError) as e:
        raise SeqnnError(
            f"{path}: cannot read the track sheet ({e}); give a tab-separated file"
        ) from e
    first = df.columns[0]
    if first.startswith("Unnamed") or first in ("", "index"):
        df = df.drop(columns=first)
    if len(df.columns) == 1 and len(df.columns[0].split()) > 1:
        raise SeqnnError(f"{path}: the columns are not tab-separated; separate them with tabs")
    empty = [c for c in df.columns if c.startswith("Unnamed") and df[c].isna().all()]
    df = df.drop(columns=empty)  # trailing tabs
    for col in df.columns:
        twice = re.fullmatch(r"(.+)\.\d+", col)
        if twice and twice.group(1) in df.columns:
            raise SeqnnError(f"{path}: column {twice.group(1)} appears twice; keep one")
        if col not in COLUMNS + OPTIONAL:
            near = difflib.get_close_matches(col, COLUMNS + OPTIONAL, 1, 0.6)
            hint = f"did you mean {near[0]}? " if near else ""
            raise SeqnnError(f"{path}: unknown column {col!r}; {hint}columns: "
                             f"{', '.join(COLUMNS + OPTIONAL)}")
    for col in ("identifier", "file"):
        if col not in df.columns:
            raise SeqnnError(f"{path}: no {col!r} column; a sheet has the columns "
                             f"{', '.join(COLUMNS)} (tab-separated)")
    for col, value in DEFAULTS.items():
        if col not in df.columns:
            df[col] = value
    if "strand_pair" not in df.columns:
        df["strand_pair"] = range(len(df))
    df = df.reset_index(drop=True)
    check_sheet(df, path)
    return df


def check_sheet(df: pd.DataFrame, path: str) -> None:
    """One clear line for each kind of mistake a sheet can hold."""
    if df.empty:
        raise SeqnnError(f"{path}: the track sheet has no row; add one row per track")
    empty = df.identifier.isna() | (df.identifier.astype(str).str.strip() == "")
    if empty.any():  # (a model's sheet may lack files; the workflow's schema requires them)
        raise SeqnnError(f"{path}: row {int(empty.idxmax())} has no identifier; fill it in")
    dup = df.identifier[df.identifier.duplicated()].unique()
    if len(dup):
        raise SeqnnError(f"{path}: duplicate identifier(s) {', '.join(dup)}; make each unique")
    bad = sorted(set(df.sum_stat) - set(SUM_STATS))
    if bad:
        raise SeqnnError(f"{path}: unknown sum_stat {', '.join(bad)}; use one of "
                         f"{', '.join(SUM_STATS)}")
    pair = pd.to_numeric(df.strand_pair, errors="coerce")
    n = len(df)
    for i, p in enumerate(pair):
        if pd.isna(p) or p != int(p) or not 0 <= p < n:
            raise SeqnnError(
                f"{path}: row {i} ({df.identifier[i]}) strand_pair {df.strand_pair[i]} is not a "
                f"row index 0..{n - 1}; give its pair's row (its own if unstranded)"
            )
        if pair[int(p)] != i:
            raise SeqnnError(
                f"{path}: strand_pair is not symmetric: row {i} ({df.identifier[i]}) points to "
                f"row {int(p)}, which points to {pair[int(p)]:g}; pair them both ways"
            )
    bad = pd.to_numeric(df.scale, errors="coerce").fillna(0) <= 0
    if bad.any():
        i = int(bad.idxmax())
        raise SeqnnError(f"{path}: row {i} ({df.identifier[i]}) scale {df.scale[i]} is not a "
                         "positive number; give one such as 1 or 0.5 (a point, not a comma)")
    df["strand_pair"] = pair.astype(int)


def data_sheet(data_dir: str, num_targets: int, fallback: list[dict] | None = None,
               missing: str = "") -> pd.DataFrame | None:
    """The track sheet of a data directory (data_dir/targets.txt), else the `fallback` rows (a
    model's own sheet), checked and matched against statistics.json's `num_targets`. Without
    either: None, logged with what that means (`missing`)."""
    path = os.path.join(data_dir, "targets.txt")
    if os.path.exists(path):
        sheet = read_sheet(path)
    elif fallback:
        path = "the model's track sheet"
        sheet = pd.DataFrame(fallback)
        check_sheet(sheet, path)
    else:
        log.warning("%s: not found; %s", path, missing)
        return None
    if len(sheet) != num_targets:
        raise SeqnnError(f"{path}: {len(sheet)} tracks but statistics.json says num_targets "
                         f"{num_targets}; use the sheet the data was made with")
    return sheet


def write_sheet(df: pd.DataFrame, path: str) -> None:
    """Write in Basenji's layout (index column first) atomically."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, sep="\t", index=True)
