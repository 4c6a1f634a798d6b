"""File helpers: atomic writes, so a killed job never leaves a file that looks finished, the TSV
tables of results, and whether a `model` value names a params file."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from seqnn import SeqnnError

_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path beside `path`; rename it to `path` only if the block succeeds."""
    path = os.fspath(path)
    parent = os.path.dirname(path) or "."
    os.makedirs(parent, exist_ok=True)
    prefix = f".{os.path.basename(path)}.tmp-"
    fd, tmp = tempfile.mkstemp(prefix=prefix, dir=parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def check_output(path: str | os.PathLike, folder: bool, option: str) -> None:
    """Fail before any work unless output `path` (a folder, or a file) can be written: not an
    existing path of the other kind, inside a writable folder. `option` names it in the line."""
    path = os.path.abspath(path)
    kind = "folder" if folder else "file"
    if os.path.exists(path) and os.path.isdir(path) != folder:
        other = "a folder" if folder else "a file"
        raise SeqnnError(f"{option} {path}: exists and is not {other}; give a new or existing "
                         f"{kind}")
    parent = path if folder and os.path.isdir(path) else os.path.dirname(path)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise SeqnnError(f"{option} {path}: {parent} is a file, so the {kind} cannot be made "
                         "there; choose another place")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SeqnnError(f"{option} {path}: {parent} is not writable; choose a writable place")


def atomic_copy(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Copy `src` to `dst` through a temporary name (see `atomic_path`)."""
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def write_tsv(table, path: str | os.PathLike) -> None:
    """A results table (a DataFrame) as TSV without index, floats to 6 significant digits and
    NaN as nan, atomically."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format="%.6g", na_rep="nan")


def names_params_file(value) -> bool:
    """Whether a `model` value (config, `--preset`) names a params file rather than a preset:
    an existing file, a `.json` name or a path with a folder."""
    if not isinstance(value, (str, os.PathLike)):
        return False
    path = Path(value)
    return path.is_file() or path.suffix == ".json" or len(path.parts) > 1
