"""Track selection: which rows of a track sheet a command uses.

A selection is a list of items, each an identifier, a row index (an integer or its digits) or,
failing both, a regular expression searched in the descriptions (every matching row, in sheet
order). Rows come once, in the order asked. With `partners` (reverse-complement averaging), a
selected stranded track brings its strand partner, appended after the rows asked for, since the
prediction of the reverse complement is read from the partner. Kept free of TensorFlow: the
workflow resolves selections at DAG time.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from seqnn import SeqnnError


def _rows(rows) -> list[dict]:
    return rows.to_dict("records") if hasattr(rows, "to_dict") else list(rows)


def _matches(item, rows: list[dict], where: str, sheet: str) -> list[int]:
    ids = [str(r["identifier"]) for r in rows]
    if isinstance(item, str) and item in ids:
        return [ids.index(item)]
    if not isinstance(item, str) or item.isdigit():
        index = int(item)
        if not 0 <= index < len(rows):
            raise SeqnnError(f"{where}: track index {index} is out of range: {sheet} has "
                             f"{len(rows)} tracks (0..{len(rows) - 1})")
        return [index]
    try:
        pattern = re.compile(item)
    except re.error:
        pattern = None
    found = [i for i, r in enumerate(rows)
             if pattern is not None and pattern.search(str(r.get("description") or ""))]
    if not found:
        shown = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
        raise SeqnnError(f"{where}: track {item!r} is neither an identifier nor an index of "
                         f"{sheet} ({shown}), and no description matches it; fix the name")
    return found


def track_indices(rows, tracks, *, partners: bool = False, where: str = "tracks",
                  sheet: str = "the track sheet") -> list[int]:
    """Row indices selected by `tracks` (None: all rows) of `rows` (row dicts or a sheet).

    `where` (the key or option) and `sheet` (the sheet's file) name the error's origin.
    """
    rows = _rows(rows)
    if tracks is None:
        return list(range(len(rows)))
    items = [tracks] if isinstance(tracks, str | int) else list(tracks)
    if not items:
        raise SeqnnError(f"{where}: the selection is empty; name at least one track or give "
                         "null (all)")
    chosen: list[int] = []
    for item in items:
        chosen += [i for i in _matches(item, rows, where, sheet) if i not in chosen]
    if partners:
        pairs = [int(rows[i].get("strand_pair", i)) for i in chosen]
        chosen += list(dict.fromkeys(p for p in pairs if p not in chosen))
    return chosen


def selected_rows(rows, indices: Sequence[int]) -> list[dict]:
    """The rows `indices`, each `strand_pair` renumbered within the selection (a track whose
    partner is not selected becomes its own pair)."""
    rows = _rows(rows)
    new = {old: k for k, old in enumerate(indices)}
    out = []
    for k, i in enumerate(indices):
        pair = new.get(int(rows[i].get("strand_pair", i)), k)
        out.append({**rows[i], "strand_pair": pair})
    return out


def summed_row(rows, indices: Sequence[int]) -> dict:
    """The row of one track that sums the tracks `indices` (Basenji's `target_sum`): model
    units, no inverse transform beyond the sum over each bin."""
    rows = _rows(rows)
    names = [str(rows[i]["identifier"]) for i in indices]
    shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
    return {"identifier": "sum", "file": "", "clip": None, "clip_soft": None, "scale": 1.0,
            "sum_stat": "sum", "strand_pair": 0,
            "description": f"sum of {len(names)} tracks: {shown}"}
