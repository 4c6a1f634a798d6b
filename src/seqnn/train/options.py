"""The `train` block of params: its keys and defaults, the optimizer and learning-rate schedule."""

from __future__ import annotations

import logging

import keras
from keras import ops

from seqnn import SeqnnError

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


def train_options(params: dict, epochs: int | None = None, where: str = "params") -> dict:
    """The params' `train` block with defaults filled in and checked; `epochs` caps the epochs."""
    given = dict(params.get("train", {}))
    unknown = sorted(set(given) - set(TRAIN_KEYS))
    if unknown:
        log.warning("%s: train keys %s are not used here", where, ", ".join(unknown))
    opts = {k: given.get(k, default) for k, (default, _) in TRAIN_KEYS.items()}
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


def _warmup_class():
    @keras.saving.register_keras_serializable(package="seqnn")
    class WarmUp(keras.optimizers.schedules.LearningRateSchedule):
        """Linear warmup to `learning_rate` over `warmup_steps`, then `after` (schedule or
        constant) counted from the end of the warmup."""

        def __init__(self, learning_rate, warmup_steps, after=None):
            self.learning_rate = learning_rate
            self.warmup_steps = warmup_steps
            self.after = after

        def __call__(self, step):
            step = ops.cast(step, "float32")
            warm = self.learning_rate * (step + 1) / max(self.warmup_steps, 1)
            if self.after is None:
                later = ops.convert_to_tensor(self.learning_rate, "float32")
            else:
                later = self.after(ops.maximum(step - self.warmup_steps, 0))
            return ops.where(step < self.warmup_steps, warm, later)

        def get_config(self):
            after = None if self.after is None else keras.saving.serialize_keras_object(
                self.after)
            return {"learning_rate": self.learning_rate, "warmup_steps": self.warmup_steps,
                    "after": after}

        @classmethod
        def from_config(cls, config):
            after = config["after"] and keras.saving.deserialize_keras_object(config["after"])
            return cls(config["learning_rate"], config["warmup_steps"], after)

    return WarmUp


def learning_rate(opts: dict):
    """The learning-rate schedule of train options: warmup, then constant or decaying."""
    lr, after = opts["learning_rate"], None
    if opts["decay_type"] == "exponential":
        after = keras.optimizers.schedules.ExponentialDecay(lr, opts["decay_steps"],
                                                            opts["decay_rate"])
    elif opts["decay_type"] == "cosine":
        after = keras.optimizers.schedules.CosineDecay(lr, opts["decay_steps"])
    return _warmup_class()(lr, opts["warmup_steps"], after)


def optimizer(opts: dict):
    """The Keras optimizer of train options (adam, adamw or sgd with momentum)."""
    common = {"learning_rate": learning_rate(opts), "clipnorm": opts["clip_norm"],
              "global_clipnorm": opts["global_clipnorm"]}
    if opts["optimizer"] == "sgd":
        return keras.optimizers.SGD(momentum=opts["momentum"], **common)
    adam = {"beta_1": opts["adam_beta1"], "beta_2": opts["adam_beta2"],
            "epsilon": opts["adam_eps"], **common}
    if opts["optimizer"] == "adamw":
        return keras.optimizers.AdamW(weight_decay=opts["weight_decay"], **adam)
    return keras.optimizers.Adam(**adam)
