"""Layer and filter access of a built or loaded model (Basenji's `get_conv_layer`,
`get_bn_layer`, `get_dense_layer`, `get_conv_weights`): layers of a kind in graph order, by
index or by name, and a convolution's filters."""

from __future__ import annotations

import keras
import numpy as np

from seqnn import SeqnnError

KINDS = {
    "conv": (keras.layers.Conv1D,),
    "bn": (keras.layers.BatchNormalization,),
    "dense": (keras.layers.Dense, keras.layers.EinsumDense),
}


def layers_of(model, kind: str) -> list:
    """The layers of `model` of `kind` (conv, bn, dense) in graph order, nested ones included."""
    if kind not in KINDS:
        raise SeqnnError(f"layer kind {kind!r} is not one of {', '.join(KINDS)}")
    return [layer for layer in model._flatten_layers(include_self=False)
            if isinstance(layer, KINDS[kind])]


def get_layer(model, kind: str = "conv", index: int = 0, name: str | None = None):
    """The `index`-th layer of `kind` (0: the first), or the layer called `name`."""
    if name is not None:
        found = [layer for layer in model._flatten_layers(include_self=False)
                 if layer.name == name]
        if not found:
            names = ", ".join(layer.name for layer in model.layers)
            raise SeqnnError(f"layer {name!r} is not in the model; choose one of {names}")
        return found[0]
    layers = layers_of(model, kind)
    if not -len(layers) <= index < len(layers):
        raise SeqnnError(f"{kind} layer {index}: the model has {len(layers)} {kind} layer(s); "
                         f"give an index 0..{len(layers) - 1}")
    return layers[index]


def conv_weights(model, index: int = 0, name: str | None = None) -> np.ndarray:
    """A convolution's filters [filters, width, channels] (the first one by default; for the
    first layer of a DNA model, channels are A, C, G, T)."""
    layer = get_layer(model, "conv", index, name)
    if not isinstance(layer, keras.layers.Conv1D):
        raise SeqnnError(f"layer {layer.name!r} is a {type(layer).__name__}, not a Conv1D; "
                         "give a convolution")
    return np.transpose(np.asarray(layer.kernel, np.float32), (2, 0, 1))
