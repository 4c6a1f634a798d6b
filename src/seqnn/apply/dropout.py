"""Monte-Carlo dropout: a model whose dropout stays on at inference, for `mc_n` stochastic
passes per (shift, strand) augmentation as extra ensemble members (Basenji's `mc_n`).

`mc_dropout(model, seed)` clones the model's graph with its own layers (weights shared, nothing
copied) except that each Dropout layer is replaced by one that always drops (same rate and
noise shape) and each attention layer is called in training mode, which turns on its attention
and position dropout only. Every other layer runs as at inference: augmentation layers are off
and batch normalisation uses its moving statistics. Each call draws new masks from seeded
generators, so a run is reproducible for a seed.
"""

from __future__ import annotations

import keras

from seqnn import SeqnnError
from seqnn.model.attention import MultiheadAttention


class AlwaysDropout(keras.layers.Dropout):
    """Dropout that drops whatever `training` says (inverted: kept units scaled by 1/(1-p))."""

    def call(self, inputs, training=None):
        return super().call(inputs, training=True)


class _Training(keras.layers.Layer):
    """Calls a layer in training mode (its weights are the layer's own)."""

    def __init__(self, layer, **kwargs):
        super().__init__(name=f"mc_{layer.name}", **kwargs)
        self.layer = layer

    def call(self, inputs, training=None):
        return self.layer(inputs, training=True)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)


def dropout_layers(model) -> list:
    """The layers of `model` that drop out in training (Dropout with rate > 0, attention with
    attention or position dropout > 0)."""
    return [layer for layer in model._flatten_layers(include_self=False)
            if (isinstance(layer, keras.layers.Dropout) and layer.rate > 0)
            or (isinstance(layer, MultiheadAttention)
                and max(layer.attention_dropout, layer.position_dropout) > 0)]


def mc_dropout(model, seed: int = 0, where: str = "model"):
    """`model` with dropout on at inference (module docstring), masks drawn from `seed`."""
    if not dropout_layers(model):
        raise SeqnnError(f"{where}: the model has no dropout layer, so Monte-Carlo dropout "
                         "passes would all be equal; set mc_n 0 or use a model trained with "
                         "dropout")
    count = iter(range(1_000_000))

    def clone(layer):
        if isinstance(layer, keras.layers.Dropout) and layer.rate > 0:
            return AlwaysDropout(layer.rate, layer.noise_shape, seed=seed * 1000 + next(count),
                                 name=f"mc_{layer.name}")
        if isinstance(layer, MultiheadAttention):
            state = layer.seed_generator.state
            state.assign(keras.ops.cast([seed * 1000 + next(count), 0], state.dtype))
            return _Training(layer)
        return layer

    return keras.models.clone_model(model, clone_function=clone)


def mc_models(models, mc_n: int, seed: int = 0, paths=None) -> tuple[list, int]:
    """The models of an ensemble as run for `mc_n` Monte-Carlo passes (0: as they are), and
    the passes per augmentation (`max(1, mc_n)`). Model i draws from seed `seed + i`."""
    if mc_n < 0:
        raise SeqnnError(f"mc_n {mc_n}: give 0 (no Monte-Carlo dropout) or a number of passes")
    if not mc_n:
        return list(models), 1
    names = paths or [f"model {i}" for i in range(len(models))]
    return [mc_dropout(m, seed + i, str(p)) for i, (m, p) in enumerate(zip(models, names))], mc_n
