"""Track selection on a model: a head that computes only the selected tracks.

The head's last Dense layer is rebuilt with the columns of its kernel and bias that the
selection keeps, so 10 tracks of a 7,611-track head cost a 10-track head. With `sum`, the
selected tracks (after their activation) are summed into one output, as Basenji's
`build_slice(target_sum=True)`. Reverse-complement augmentation (`SwitchReverse`) after the
Dense is kept with the strand pairs renumbered; rows are chosen by `seqnn.data.selection`.
A head that does not end in a Dense layer (e.g. `mlp_head`, or a Dense then a reshape) is
computed whole and its output columns taken.
"""

from __future__ import annotations

import logging

import keras
from keras import ops

from seqnn import SeqnnError
from seqnn.data.selection import selected_rows, summed_row, track_indices
from seqnn.model import augment
from seqnn.model.layers import register

log = logging.getLogger("seqnn")


@register
class Tracks(keras.layers.Layer):
    """Tracks `indices` (None: all) of [batch, length, tracks], summed into one with `sum`."""

    def __init__(self, indices=None, sum=False, **kwargs):
        super().__init__(**kwargs)
        self.indices = None if indices is None else [int(i) for i in indices]
        self.sum = bool(sum)

    def call(self, x):
        if self.indices is not None:
            x = ops.take(x, self.indices, axis=-1)
        return ops.sum(x, axis=-1, keepdims=True) if self.sum else x

    def compute_output_shape(self, input_shape):
        width = input_shape[-1] if self.indices is None else len(self.indices)
        return (*input_shape[:-1], 1 if self.sum else width)

    def get_config(self):
        return {**super().get_config(), "indices": self.indices, "sum": self.sum}


def head_dense(output):
    """The Dense layer a head output comes from and the SwitchReverse layers in between,
    walking back through Identity and SwitchReverse only (so slicing keeps the output); else
    `(None, the layer met)`."""
    layer, switches = output._keras_history.operation, []
    while not isinstance(layer, keras.layers.Dense):
        if isinstance(layer, augment.SwitchReverse):
            switches.append(layer)
        elif not isinstance(layer, keras.layers.Identity):
            return None, layer
        inputs = layer.input  # SwitchReverse takes [predictions, flags]
        layer = (inputs[0] if isinstance(inputs, list) else inputs)._keras_history.operation
    return layer, switches


def slice_head(model, indices, *, sum: bool = False, strand_pair=None):
    """`model` (one head) with its last Dense layer cut to the output columns `indices`
    (summed into one with `sum`); `strand_pair` of the new outputs for SwitchReverse."""
    if len(model.outputs) != 1:
        raise SeqnnError(f"track selection: the model has {len(model.outputs)} heads; pick one "
                         "first (head)")
    dense, switches = head_dense(model.output)
    head = model.output._keras_history.operation.name
    if dense is None:
        log.info("%s: the head ends in %s, not a Dense layer: computed whole and %d of its "
                 "tracks taken", model.name, type(switches).__name__, len(indices))
        y = Tracks(list(indices), sum)(model.output)
        return keras.Model(model.inputs, keras.layers.Identity(name=f"{head}_selected")(y),
                           name=model.name)
    weights = [w.numpy() for w in dense.weights]  # kernel [C, T], bias [T]
    config = {**dense.get_config(), "units": len(indices), "name": f"{dense.name}_selected"}
    new = keras.layers.Dense.from_config(config)
    y = new(dense.input)
    new.set_weights([weights[0][:, list(indices)], *(b[list(indices)] for b in weights[1:])])
    if sum:
        y = Tracks(sum=True)(y)
        strand_pair = [0]
    for switch in reversed(switches):
        y = augment.SwitchReverse(strand_pair)([y, switch.input[1]])
    y = keras.layers.Identity(name=head, dtype="float32")(y)
    return keras.Model(model.inputs, y, name=model.name)


def select_tracks(model, rows, tracks, *, sum: bool = False, partners: bool = False,
                  where: str = "tracks", sheet: str = "the model's track sheet"):
    """The model restricted to the tracks `tracks` selects (see `seqnn.data.selection`) of its
    sheet `rows`, the new sheet and the selected rows' indices: `(model, rows, indices)`;
    `tracks` None returns the model and rows unchanged and indices None.

    `partners` (for reverse-complement averaging) adds the strand partners of stranded tracks;
    `sum` makes one output, the sum of the selection; `where` and `sheet` name the selection
    and the sheet in errors.
    """
    if tracks is None:
        return model, list(rows), None
    indices = track_indices(rows, tracks, partners=partners, where=where, sheet=sheet)
    _, _, width = model.output_shape
    if width != len(rows):
        raise SeqnnError(f"{sheet}: {len(rows)} rows but the model predicts {width} tracks; "
                         "use the sheet of this head")
    new_rows = [summed_row(rows, indices)] if sum else selected_rows(rows, indices)
    pairs = [int(r["strand_pair"]) for r in new_rows]
    return slice_head(model, indices, sum=sum, strand_pair=pairs), new_rows, indices
