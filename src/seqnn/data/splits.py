"""Cross-validation splits: which folds a model trains, validates and is tested on."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from seqnn import SeqnnError


@dataclass(frozen=True)
class Splits:
    """Split labels: shards `{label}-{i}.tfr` trained on, validated on, held out."""

    train: list[str]
    valid: str
    test: str | None = None

    def labels(self) -> list[str]:
        """The labels training reads: train splits, then valid."""
        return [*self.train, self.valid]


def fold_splits(folds: int, test_fold: int = 0, valid_fold: int | None = None) -> Splits:
    """Basenji cross-validation: test fold k, valid fold (k+1) mod K, train on the rest.

    With `folds` 0 the data has train/valid/test splits instead.
    """
    if folds == 0:
        return Splits(["train"], "valid", "test")
    valid_fold = (test_fold + 1) % folds if valid_fold is None else valid_fold
    for name, k in (("test", test_fold), ("valid", valid_fold)):
        if not 0 <= k < folds:
            raise SeqnnError(f"{name} fold {k} is not one of the {folds} folds 0..{folds - 1}")
    if test_fold == valid_fold:
        raise SeqnnError(f"test and valid fold are both {test_fold}; pick two different folds")
    train = [f"fold{k}" for k in range(folds) if k not in (test_fold, valid_fold)]
    return Splits(train, f"fold{valid_fold}", f"fold{test_fold}")


def data_splits(data_dir: str, test_fold: int | None = None,
                valid_fold: int | None = None) -> Splits:
    """Splits of a data directory, named train/valid/test or fold{k} (see `fold_splits`)."""
    names = {m.group(1) for f in _listdir(os.path.join(data_dir, "tfrecords"))
             if (m := re.fullmatch(r"(.+)-\d+\.tfr", f))}
    if {"train", "valid"} <= names:
        if test_fold is not None or valid_fold is not None:
            raise SeqnnError(f"{data_dir}: its splits are named train/valid/test; drop "
                             "--test-fold/--valid-fold (they apply to fold{k} names)")
        return Splits(["train"], "valid", "test" if "test" in names else None)
    folds = sorted(int(n[4:]) for n in names if re.fullmatch(r"fold\d+", n))
    if len(folds) < 3 or folds != list(range(len(folds))):
        raise SeqnnError(f"{data_dir}/tfrecords: found splits {sorted(names) or 'none'}; need "
                         "train-*.tfr and valid-*.tfr, or fold0..fold{K-1} with K >= 3")
    return fold_splits(len(folds), test_fold or 0, valid_fold)


def _listdir(path):
    try:
        return os.listdir(path)
    except OSError as e:
        raise SeqnnError(f"{path}: cannot list TFRecords ({e.strerror}); point at a data "
                         "directory holding statistics.json and tfrecords/") from e


def ensemble_folds(folds: int, fold: int) -> list[int]:
    """The cross-validation models that did not train on `fold`: f{fold} (tested on it) and the
    model that validated on it (f{fold - 1 mod K}), which chose its best epoch there."""
    return [k for k in range(folds) if f"fold{fold}" not in fold_splits(folds, k).train]


def eval_set(folds: int, name: str) -> tuple[str, list[int]]:
    """Test split and model folds of the workflow's evaluation set `name`: ``f{k}`` is model
    f{k} on its test split, ``ensemble/f{k}`` the `ensemble_folds` of fold k on the same."""
    fold = int(name.rsplit("f", 1)[1])
    models = ensemble_folds(folds, fold) if name.startswith("ensemble/") else [fold]
    return fold_splits(folds, fold).test, models
