"""Train a model on a Basenji-format data directory, resumably, with early stopping.

`train(params, data_dir, out_dir)` fits the model of a params file on the training split(s) and
writes into `out_dir`:

- ``model_best.keras`` (best validation Pearson r; AUPRC with the ``bce`` loss, whose targets
  are 0/1) and ``model_last.keras``: inference models
  (float32, augmentation off in inference) carrying params, track sheet and data statistics;
- ``history.tsv``: per epoch, loss and metrics on both splits, learning rate, seconds;
- ``tensorboard/{train,validation}``: the same scalars for TensorBoard;
- ``checkpoint/``: resume state, updated atomically after every epoch (weights with optimizer
  state, the best model so far, history, early-stopping counters). Killed at any moment, a new
  call with the same model and data continues after the last finished epoch.

The three files are written only when training ends, so a killed job leaves nothing that looks
finished. The `train` block of the params (`TRAIN_KEYS`) sets optimizer, schedule and stopping.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from dataclasses import dataclass

import keras
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from seqnn import SeqnnError
from seqnn.data.records import read_statistics
from seqnn.data.splits import Splits, data_splits
from seqnn.data.targets import data_sheet
from seqnn.io import atomic_copy
from seqnn.model.build import build_parts, load_model, save_model
from seqnn.model.losses import LOSS_KEYS, get_loss
from seqnn.model.metrics import AUPRC, AUROC, R2, PearsonR
from seqnn.model.params import model_params, parse_params
from seqnn.model.presets import resolve_model
from seqnn.train.checkpoint import Checkpoint, history_columns, run_fingerprint, write_history
from seqnn.train.dataset import count_records, dataset
from seqnn.train.optimizer import optimizer
from seqnn.train.options import PRECISIONS, train_options
from seqnn.train.runtime import doctor, dtype_policy, set_threads
from seqnn.train.transfer import FineTune

log = logging.getLogger("seqnn")


def monitor(loss: str) -> str:
    """The validation metric that picks the best epoch and stops early: AUPRC for ``bce``
    (binary targets), Pearson r otherwise."""
    return "val_auprc" if loss == "bce" else "val_pearsonr"


def _build(params, head, where, strand_pair=None, tune=None, restore=False):
    """The model of `params`, cut to output `head` alone when it has several, and prepared
    for fine-tuning `tune` (a `FineTune`; pretrained weights copied in when `restore`)."""

    n = len(parse_params(params).heads)
    if head is None and n > 1:
        raise SeqnnError(f"{where}: the model has {n} heads; pick the one that matches the "
                         "data with --head (config train.head)")
    if head is not None and not 0 <= head < n:
        raise SeqnnError(f"{where}: head {head} does not exist; the model has {n} head(s), "
                         f"0..{n - 1}")
    pairs = strand_pair
    if n > 1 and strand_pair is not None:
        pairs = [strand_pair if i == head else None for i in range(n)]
    model, trunk = build_parts(params, pairs)
    if n > 1:
        model = keras.Model(model.inputs, model.outputs[head], name=model.name)
    return model if tune is None else tune.prepare(model, trunk, restore)


def compile_model(params: dict, opts: dict, tracks: int, *, head: int | None = None,
                  strand_pair: list[int] | None = None, jit_compile: bool | str = False,
                  where: str = "params", tune: FineTune | None = None):
    """The training model of `params`, compiled with the optimizer and loss of train options
    `opts` and the Pearson r and R² metrics (and AUROC, AUPRC with ``bce``); built under the
    current dtype policy and scope.

    Args:
        params: params dict (train and model blocks).
        opts: train options (`train_options`).
        tracks: tracks of the data (for the metrics).
        head: head of a multi-head model to train.
        strand_pair: the tracks' strand pairs, for reverse-complement augmentation.
        jit_compile: Keras's jit_compile (True, False or "auto").
        where: the params' name in error messages.
        tune: fine-tuning (`seqnn.train.transfer.FineTune`): pretrained weights, adapters and
            trainable flags.
    """
    model = _build(params, head, where, strand_pair, tune, restore=True)
    loss_kw = {key: opts[key] for key in LOSS_KEYS.get(opts["loss"], ())}
    metrics = [PearsonR(tracks), R2(tracks)]
    if opts["loss"] == "bce":
        metrics += [AUROC(tracks), AUPRC(tracks)]
    model.compile(optimizer=optimizer(opts), loss=get_loss(opts["loss"], **loss_kw),
                  metrics=metrics, jit_compile=jit_compile)
    return model


def _check_shapes(model, stats, data_dir, where, head):
    _, length, tracks = model.outputs[0].shape
    name = "the head" if head is None else f"head {head}"
    if tracks != stats["num_targets"]:
        raise SeqnnError(f"{where}: {name} predicts {tracks} tracks but {data_dir} has "
                         f"{stats['num_targets']}; set `units` of its final block to "
                         f"{stats['num_targets']} (or pick another --head)")
    if length != stats["target_length"]:
        raise SeqnnError(f"{where}: the model outputs {length} bins but {data_dir}/statistics"
                         f".json has target_length {stats['target_length']}; change the pooling "
                         "or the Cropping1D block so the lengths agree")


class _TensorBoard:
    """Per-epoch scalars in TensorBoard event files (written with TensorFlow's core ops, so
    the tensorboard package is needed only to view them)."""

    def __init__(self, log_dir):
        self.tf = tf
        self.writers = {s: tf.summary.create_file_writer(os.path.join(log_dir, s))
                        for s in ("train", "validation")}
        self.meta = summary_pb2.SummaryMetadata(
            plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))

    def write(self, row: dict):
        for key, value in row.items():
            if key in ("epoch", "seconds"):
                continue
            split = "validation" if key.startswith("val_") else "train"
            with self.writers[split].as_default():
                self.tf.summary.write(f"epoch_{key.removeprefix('val_')}",
                                      self.tf.constant(value, self.tf.float32),
                                      step=row["epoch"], metadata=self.meta)
        for w in self.writers.values():
            w.flush()

    def close(self):
        for w in self.writers.values():
            w.close()


def _guard():
    class Guard(keras.callbacks.Callback):
        """Ends `fit` after one epoch, or at the first non-finite training loss."""

        bad_batch = None

        def on_train_batch_end(self, batch, logs=None):
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(float(loss)):
                self.bad_batch = batch
                self.model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            self.model.stop_training = True

    return Guard()


def _stop(state, opts):
    done = state["epoch"]
    if done >= opts["train_epochs_max"]:
        return "reached train_epochs_max"
    if done >= opts["train_epochs_min"] and done - state["best_epoch"] >= opts["patience"]:
        return f"no better {monitor(opts['loss'])} for {opts['patience']} epochs"
    return None


@dataclass
class _Run:
    """What every step of one training run reads: inputs resolved and checked."""

    params: dict
    where: str
    data_dir: str
    out_dir: str
    stats: dict
    opts: dict
    splits: Splits
    counts: dict
    seed: int
    tune: FineTune | None = None

    @property
    def n_train(self) -> int:
        return sum(self.counts[lab] for lab in self.splits.train)


def _prepare(params, data_dir, out_dir, splits, epochs, seed, mixed_precision, restore=None,
             trunk=False) -> _Run:
    """Resolve the params against the data, fill the train block (and the fine-tuning from
    `restore`) and check the splits."""
    if mixed_precision not in PRECISIONS:
        raise SeqnnError(f"mixed_precision {mixed_precision!r} is not one of null, "
                         "mixed_float16, mixed_bfloat16")
    stats = read_statistics(data_dir)
    where = str(params) if isinstance(params, str | os.PathLike) else "params"
    if not isinstance(params, dict) or "model" not in params:  # a file, preset or preset spec
        params = resolve_model(params, data=stats)
    opts = train_options(params, epochs, where)
    tune = FineTune.of(params, restore, trunk, where)
    seq_length = model_params(params).get("seq_length")
    if seq_length != stats["seq_length"]:
        raise SeqnnError(f"{where}: model.seq_length {seq_length} does not match seq_length "
                         f"{stats['seq_length']} of {data_dir}/statistics.json; set it to "
                         f"{stats['seq_length']}")
    splits = splits or data_splits(data_dir)
    counts = {lab: count_records(data_dir, lab, stats) for lab in splits.labels()}
    for name, labels in (("training", splits.train), ("validation", [splits.valid])):
        if not sum(counts[lab] for lab in labels):
            raise SeqnnError(f"{data_dir}: the {name} split ({', '.join(labels)}) has no "
                             "sequence; check the folds / split names and the data stage")
    return _Run(params, where, data_dir, out_dir, stats, opts, splits, counts, seed, tune)


def _strategy(gpu: bool, devices: list[str] | None):
    """One device, or MirroredStrategy over `devices` or every GPU when there are several."""
    report = doctor(gpu)
    found, c = report["devices"], report["cpu"]
    log.info("devices: %s; cpu %s (avx512f %s): %s convolution kernels (%s)",
             ", ".join(d.get("model") or d["name"] for d in found), c["cpu"], c["avx512f"],
             c["conv_kernels"], c["conv_kernels_from"])
    if devices and len(devices) > 1:
        return tf.distribute.MirroredStrategy(devices)
    if sum(d["type"] == "GPU" for d in found) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def _models(run: _Run, head, strand_pair, mixed_precision, strategy, jit_compile, ckpt, state):
    """The float32 inference model (what is saved) and the compiled training model, restored
    from the checkpoint `state` when there is one."""
    with dtype_policy("float32"):  # the saved models compute in float32
        inference = _build(run.params, head, run.where, tune=run.tune)
        _check_shapes(inference, run.stats, run.data_dir, run.where, head)
        if strand_pair is not None:
            inference = _build(run.params, head, run.where, strand_pair, run.tune)
    with dtype_policy(mixed_precision), strategy.scope():
        model = compile_model(run.params, run.opts, run.stats["num_targets"], head=head,
                              strand_pair=strand_pair, jit_compile=jit_compile, where=run.where,
                              tune=run.tune)
        if state:
            model.optimizer.build(model.trainable_variables)
            model.load_weights(os.path.join(ckpt.dir, state["weights"]))
    return inference, model


def _datasets(run: _Run, batch: int):
    """`training(epoch)`: shuffled full batches (a last partial one would retrace the step and
    skew batch norm), step count stated for the progress bar; and the validation batches."""

    def training(epoch):
        ds = dataset(run.data_dir, run.splits.train, batch, shuffle=True, seed=run.seed + epoch,
                     shuffle_buffer=run.opts["shuffle_buffer"])
        if run.n_train < batch:
            return ds.apply(tf.data.experimental.assert_cardinality(1))
        ds = ds.filter(lambda x, y: tf.shape(x)[0] == batch)
        return ds.apply(tf.data.experimental.assert_cardinality(run.n_train // batch))

    valid = dataset(run.data_dir, run.splits.valid, batch).apply(
        tf.data.experimental.assert_cardinality(math.ceil(run.counts[run.splits.valid] / batch)))
    return training, valid


def _epoch(run: _Run, model, training, valid, callbacks, state, ckpt_dir) -> dict:
    """Fit one epoch; its history row. A NaN/inf loss stops the run with one line."""
    epoch, guard, tic = state["epoch"], _guard(), time.perf_counter()
    fit = model.fit(training(epoch), validation_data=valid, initial_epoch=epoch,
                    epochs=run.opts["train_epochs_max"], shuffle=False,
                    verbose=1 if sys.stdout.isatty() else 2, callbacks=[guard, *callbacks])
    logs = {k: float(v[-1]) for k, v in fit.history.items()}
    bad = [k for k in ("loss", "val_loss") if not math.isfinite(logs.get(k, math.nan))]
    if guard.bad_batch is not None or bad:
        where_bad = (f"training loss at batch {guard.bad_batch}"
                     if guard.bad_batch is not None else bad[0])
        kept = (f"the last good checkpoint (epoch {epoch}) is kept in {ckpt_dir}"
                if epoch else "no epoch finished, so there is no checkpoint")
        raise SeqnnError(f"{run.out_dir}: {where_bad} became NaN/inf in epoch {epoch + 1}; "
                         f"stopped, {kept}. Lower train.learning_rate, set "
                         "train.global_clipnorm or check the targets, then rerun")
    return {"epoch": epoch + 1,
            **{k: logs.get(k) for k in history_columns(run.opts["loss"])[1:-2]},
            "learning_rate": float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)),
            "seconds": round(time.perf_counter() - tic, 2)}


def _fit(run: _Run, model, inference, ckpt, state, callbacks, batch) -> tuple[dict, int, str]:
    """Epochs until `_stop` says why; the checkpoint and the best inference model follow each.
    Returns the final state, the epochs trained in this run and the reason it stopped."""
    training, valid = _datasets(run, batch)
    board = _TensorBoard(os.path.join(run.out_dir, "tensorboard"))
    trained, key = 0, monitor(run.opts["loss"])
    try:
        while not (reason := _stop(state, run.opts)):
            row = _epoch(run, model, training, valid, callbacks, state, ckpt.dir)
            score = row[key] if math.isfinite(row[key]) else -math.inf
            improved = state["epoch"] == 0 or score > state["best_score"]
            state = {**state, "epoch": row["epoch"], "history": [*state["history"], row]}
            if improved:
                state.update(best_epoch=row["epoch"], best_score=score)
                inference.set_weights(model.get_weights())
            state = ckpt.save(model, state, inference if improved else None)
            board.write(row)
            trained += 1
            log.info("epoch %d: loss %.4f val_loss %.4f %s %.4f%s (%.1f s)", row["epoch"],
                     row["loss"], row["val_loss"], key, row[key],
                     " best" if improved else "", row["seconds"])
    finally:
        board.close()
    return state, trained, reason


def train(
    params: dict | str | os.PathLike,
    data_dir: str,
    out_dir: str,
    *,
    splits: Splits | None = None,
    head: int | None = None,
    epochs: int | None = None,
    seed: int = 0,
    mixed_precision: str | None = None,
    jit_compile: bool | str = False,
    gpu: bool = False,
    threads: int | None = None,
    callbacks: list | tuple = (),
    devices: list[str] | None = None,
    restore: str | os.PathLike | None = None,
    trunk: bool = False,
) -> dict:
    """Train the model of `params` on `data_dir`; see the module docstring for what lands in
    `out_dir`. Returns a summary dict (epochs, best epoch and r).

    Args:
        params: a params dict (`train` and `model` blocks), or a params JSON path, preset name
            or preset mapping `{"preset": ..., "size": ...}`, resolved against the data's
            statistics (`seqnn.model.presets.resolve_model`).
        data_dir: a Basenji data directory (statistics.json, targets.txt, tfrecords/).
        out_dir: where the models, history, TensorBoard logs and checkpoint go.
        splits: the training and validation labels (default `data_splits(data_dir)`).
        head: one head of a multi-head model.
        epochs: cap on train_epochs_max.
        seed: seed of weights, shuffling and augmentation.
        mixed_precision: null, mixed_float16 or mixed_bfloat16 (saved models stay float32).
        jit_compile: True, False or "auto" (XLA on GPUs only).
        gpu: fail unless TensorFlow sees a GPU (several GPUs train with MirroredStrategy,
            batch_size per GPU).
        threads: cap on TensorFlow's CPU threads.
        callbacks: extra Keras callbacks.
        devices: the devices to replicate over (default: every GPU, when there are several).
        restore: start from pretrained weights (a seqnn `.keras` or a baskerville `.h5`); the
            params' `transfer` block sets what trains (`seqnn.train.transfer`) and the saved
            models have their adapters merged (or recorded, for Houlsby adapters).
        trunk: restore the trunk only, under a new head.
    """
    set_threads(threads)  # before anything starts TensorFlow
    run = _prepare(params, data_dir, out_dir, splits, epochs, seed, mixed_precision,
                   restore, trunk)
    strategy = _strategy(gpu, devices)
    sheet = data_sheet(data_dir, run.stats["num_targets"], missing="reverse-complement "
                       "augmentation will not swap stranded tracks")
    strand_pair = None if sheet is None else sheet.strand_pair.tolist()
    fingerprint = run_fingerprint(run.params, run.stats, run.splits, head, run.opts,
                                  mixed_precision, run.tune and run.tune.fingerprint())
    ckpt = Checkpoint(os.path.join(out_dir, "checkpoint"),
                      {"params": run.params, "targets": sheet, "statistics": run.stats})
    state = ckpt.load(fingerprint)
    keras.utils.set_random_seed(seed + (state["epoch"] if state else 0))
    inference, model = _models(run, head, strand_pair, mixed_precision, strategy, jit_compile,
                               ckpt, state)
    if state:
        log.info("resuming from %s after epoch %d (best %s %.4f at epoch %d); delete it to "
                 "start afresh", ckpt.dir, state["epoch"], monitor(run.opts["loss"]),
                 state["best_score"],
                 state["best_epoch"])
    else:
        state = {"fingerprint": fingerprint, "epoch": 0, "best_epoch": 0,
                 "best_score": -math.inf, "history": []}
    batch = run.opts["batch_size"] * strategy.num_replicas_in_sync
    log.info("training on %s (%d seqs), validating on %s (%d seqs); batch %d on %d replica(s); "
             "%s params", "+".join(run.splits.train), run.n_train, run.splits.valid,
             run.counts[run.splits.valid], batch, strategy.num_replicas_in_sync,
             f"{model.count_params():,}")
    start = time.perf_counter()
    state, trained, reason = _fit(run, model, inference, ckpt, state, callbacks, batch)
    seconds = time.perf_counter() - start
    _save(run, inference, model, ckpt, state, head, strand_pair)
    summary = {
        "epochs": state["epoch"],
        "epochs_this_run": trained,
        "stopped": reason,
        "best_epoch": state["best_epoch"],
        f"best_{monitor(run.opts['loss'])}": state["best_score"],
        "seconds": round(seconds, 1),
        "train_seqs_per_s": round(trained * run.n_train / seconds, 1) if trained else None,
    }
    log.info("trained %s: %d epochs (%d this run, %s), best %s %.4f at epoch %d, %.1f s",
             out_dir, summary["epochs"], trained, reason, monitor(run.opts["loss"]),
             state["best_score"], state["best_epoch"], seconds)
    return summary


def _save(run: _Run, inference, model, ckpt, state, head, strand_pair) -> None:
    """history.tsv, model_last.keras (the last weights) and model_best.keras, only now; after
    fine-tuning with adapters merged (or recorded) and the transfer block dropped."""
    write_history(state["history"], os.path.join(run.out_dir, "history.tsv"),
                  history_columns(run.opts["loss"]))
    inference.set_weights(model.get_weights())
    best = os.path.join(ckpt.dir, state["best_model"])
    if run.tune is None:
        save_model(inference, os.path.join(run.out_dir, "model_last.keras"), **ckpt.meta)
        atomic_copy(best, os.path.join(run.out_dir, "model_best.keras"))
        return
    with dtype_policy("float32"):
        best_model = _build(run.params, head, run.where, strand_pair, run.tune)
    best_model.set_weights(load_model(best)[0].get_weights())
    for name, fitted in (("model_last", inference), ("model_best", best_model)):
        fitted, saved = run.tune.export(fitted, run.params)
        save_model(fitted, os.path.join(run.out_dir, f"{name}.keras"),
                   **{**ckpt.meta, "params": saved})
