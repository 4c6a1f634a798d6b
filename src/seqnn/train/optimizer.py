"""The Keras optimizer and learning-rate schedule of train options (`seqnn.train.options`)."""

from __future__ import annotations

import keras
from keras import ops


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
