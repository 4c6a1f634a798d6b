"""The `train` block of params: its keys, defaults and checks (no Keras: the workflow checks a
params file before any job; `seqnn.train.optimizer` makes the optimizer and schedule)."""

from __future__ import annotations

import logging

from seqnn import SeqnnError
from seqnn.model.keys import filled_block

log = logging.getLogger("seqnn")

OPTIMIZERS = ("adam", "adamw", "sgd")


DECAYS = (None, "exponential", "cosine")


PRECISIONS = (None, "mixed_float16", "mixed_bfloat16")


# train-block key: (default, meaning); Basenji / baskerville names.
TRAIN_KEYS = {
    "batch_size": (4, "sequences per batch (per GPU replica)"),
    "shuffle_buffer": (1024, "records in the shuffle buffer"),
    "optimizer": ("adam", "adam, adamw or sgd"),
    "learning_rate": (0.001, "peak learning rate"),
    "adam_beta1": (0.9, "Adam/AdamW beta_1"),
    "adam_beta2": (0.999, "Adam/AdamW beta_2"),
    "adam_eps": (1e-7, "Adam/AdamW epsilon"),
    "weight_decay": (0.004, "AdamW decoupled weight decay"),
    "momentum": (0.99, "SGD momentum"),
    "global_clipnorm": (None, "clip the gradients' global norm to this"),
    "clip_norm": (None, "clip each gradient's norm to this"),
    "warmup_steps": (0, "steps of linear learning-rate warmup from 0"),
    "decay_type": (None, "after warmup: null (constant), exponential or cosine"),
    "decay_steps": (100000, "steps of the decay (exponential: per factor decay_rate)"),
    "decay_rate": (0.96, "exponential decay factor per decay_steps"),
    "loss": ("poisson", "poisson, poisson_mn, poisson_kl, mse, mse_udot or bce"),
    "total_weight": (1.0, "poisson_mn: weight of the total-count term"),
    "kl_weight": (1.0, "poisson_kl: weight of the KL term of the tracks' profile"),
    "udot_weight": (1.0, "mse_udot: weight of the centred-product term"),
    "patience": (20, "stop after this many epochs without a better validation Pearson r "
                 "(AUPRC with bce)"),
    "train_epochs_min": (1, "never stop before this many epochs"),
    "train_epochs_max": (10000, "stop after this many epochs"),
}


# keys of published Basenji params files that seqnn does not read: ignored with a warning
IGNORED_TRAIN_KEYS = {"clipnorm": "clip_norm", "train_epochs": "train_epochs_max"}


def train_options(params: dict, epochs: int | None = None, where: str = "params") -> dict:
    """The params' `train` block with defaults filled in and checked; `epochs` caps the epochs."""
    given = dict(params.get("train", {}))
    for key in [k for k in given if k in IGNORED_TRAIN_KEYS]:
        log.warning("%s: train.%s is an older key seqnn does not read; use train.%s to set it",
                    where, key, IGNORED_TRAIN_KEYS[key])
        del given[key]
    opts = filled_block(given, TRAIN_KEYS, "train", where)
    if opts["optimizer"] not in OPTIMIZERS:
        raise SeqnnError(f"{where}: train.optimizer {opts['optimizer']!r} is not one of "
                         f"{', '.join(OPTIMIZERS)}")
    if opts["decay_type"] not in DECAYS:
        raise SeqnnError(f"{where}: train.decay_type {opts['decay_type']!r} is not one of "
                         "null, exponential, cosine")
    if opts["global_clipnorm"] and opts["clip_norm"]:
        raise SeqnnError(f"{where}: give train.global_clipnorm or train.clip_norm, not both")
    for key in ("batch_size", "train_epochs_max", "learning_rate"):
        if not opts[key] or opts[key] <= 0:
            raise SeqnnError(f"{where}: train.{key} must be positive, got {opts[key]!r}")
    if epochs is not None:
        if epochs < 1:
            raise SeqnnError(f"epochs must be at least 1, got {epochs}")
        opts["train_epochs_max"] = epochs
        opts["train_epochs_min"] = min(opts["train_epochs_min"], epochs)
    return opts
