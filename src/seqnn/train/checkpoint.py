"""Resumable training state: a folder of the last epoch's weights, the best model so far and
the history, each file complete before `state.json` points at it."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import shutil
from dataclasses import asdict

from seqnn import SeqnnError
from seqnn.data.records import write_json
from seqnn.io import atomic_path
from seqnn.model.build import save_model

log = logging.getLogger("seqnn")


HISTORY_COLUMNS = ["epoch", "loss", "pearsonr", "r2", "val_loss", "val_pearsonr", "val_r2",
                   "learning_rate", "seconds"]
CURVE_COLUMNS = ["auroc", "auprc", "val_auroc", "val_auprc"]  # with the bce loss


def history_columns(loss: str) -> list[str]:
    """history.tsv's columns: HISTORY_COLUMNS, with AUROC and AUPRC before the last two for
    the ``bce`` loss."""
    if loss != "bce":
        return HISTORY_COLUMNS
    return [*HISTORY_COLUMNS[:-2], *CURVE_COLUMNS, *HISTORY_COLUMNS[-2:]]


class Checkpoint:
    """Resume state in a folder: `state.json` names the last epoch's weights (with optimizer
    state) and the best model so far; each file is complete before state.json points at it."""

    def __init__(self, directory: str, meta: dict):
        self.dir = directory
        self.path = os.path.join(directory, "state.json")
        self.meta = meta  # save_model keywords of the best model: params, targets, statistics

    def load(self, fingerprint: str) -> dict | None:
        """The saved state, or None when there is none or it belongs to another model/data."""
        try:
            with open(self.path) as f:
                state = json.load(f)
        except FileNotFoundError:
            return None
        except ValueError as e:
            raise SeqnnError(f"{self.path}: unreadable ({e}); delete {self.dir} to start "
                             "afresh") from e
        if state.get("fingerprint") != fingerprint:
            log.warning("%s: made for another model, data or split; starting afresh", self.dir)
            shutil.rmtree(self.dir)
            return None
        return state

    def save(self, model, state: dict, best=None) -> dict:
        """Write this epoch's weights (and `best`, an inference model), then state.json."""
        os.makedirs(self.dir, exist_ok=True)
        epoch = state["epoch"]
        state = {**state, "weights": f"epoch{epoch:04d}.weights.h5"}
        tmp = os.path.join(self.dir, f".tmp{os.getpid()}-{state['weights']}")
        model.save_weights(tmp)
        os.replace(tmp, os.path.join(self.dir, state["weights"]))
        if best is not None:
            state["best_model"] = f"best-epoch{epoch:04d}.keras"
            save_model(best, os.path.join(self.dir, state["best_model"]), **self.meta)
        write_json(state, self.path)
        keep = {"state.json", state["weights"], state["best_model"]}
        for name in set(os.listdir(self.dir)) - keep:
            os.remove(os.path.join(self.dir, name))
        return state


def run_fingerprint(params, stats, splits, head, opts, precision, tune=None) -> str:
    """A hash of what a checkpoint must match to be resumed: model, data shapes, splits, and
    fine-tuning `tune` (transfer options and pretrained weights) where given."""
    key = {
        "model": params.get("model", params),
        "data": {k: stats[k] for k in ("seq_length", "target_length", "num_targets")},
        "splits": asdict(splits),
        "head": head,
        "optimizer": opts["optimizer"],
        "precision": precision,
    }
    if tune:
        key["fine_tune"] = tune
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def write_history(rows: list[dict], path: str, columns=HISTORY_COLUMNS) -> None:
    """history.tsv: one row per epoch (`columns`), written atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, columns, delimiter="\t", extrasaction="ignore",
                                lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v)
                             for k, v in row.items()})


