"""Build Keras models from params, count their parameters, save and load one `.keras` file.

The model maps `sequence` `[batch, seq_length, 4]` to `[batch, target_length, tracks]`, or to
a list of those for several heads sharing one trunk.
"""

import contextlib
import json
import math
import numbers
import os
import zipfile
from pathlib import Path

import keras
from keras.src.backend.common import global_state

from seqnn import SeqnnError
from seqnn.model import adapters, augment, layers
from seqnn.model.blocks import BUILDERS
from seqnn.model.params import parse_params, receptive_field, target_length
from seqnn.model.presets import DATA_KEYS, resolve_model
from seqnn.model.published import META_ENTRY


def _strand_pairs(strand_pair, heads):
    """One strand-pair list (or None) per head."""
    if strand_pair is None:
        return [None] * len(heads)
    if all(isinstance(t, numbers.Integral) for t in strand_pair):
        if len(heads) > 1:
            raise SeqnnError("strand_pair: the model has several heads; give one list per head")
        return [[int(t) for t in strand_pair]]
    if len(strand_pair) != len(heads):
        raise SeqnnError(f"strand_pair: {len(strand_pair)} lists for {len(heads)} heads")
    return [None if sp is None else [int(t) for t in sp] for sp in strand_pair]



def _check_strand_pair(pair, tracks, head):
    if len(pair) != tracks or any(not 0 <= t < tracks or pair[t] != i for i, t in enumerate(pair)):
        raise SeqnnError(
            f"strand_pair for {head}: need {tracks} indices where track t's pair's pair is t, "
            f"got {pair}"
        )



def build_model(params: dict, strand_pair=None, trunk: bool = False):
    """Build the Keras model described by `params` (whole params or the `model` block).

    `strand_pair` lists, for each output track, the index of its opposite-strand track (its own
    index when unstranded); with several heads give one list per head. It is used to swap
    stranded tracks when `augment_rc` reverse-complements a training sequence. With `trunk`,
    the model ends at the trunk output (after the model-level activation) and builds no head.
    Houlsby adapters recorded in the model block (`adapter`, written by fine-tuning) are added.
    """
    return build_parts(params, strand_pair, trunk)[0]


def build_parts(params: dict, strand_pair=None, trunk: bool = False):
    """`build_model`'s model and the ids of its trunk layers (those computing the trunk output)."""
    spec = parse_params(params)
    pairs = _strand_pairs(strand_pair, spec.heads)
    sequence = keras.Input((spec.seq_length, spec.seq_depth), name="sequence", dtype="float32")
    x = sequence
    if spec.augment_rc:
        x, reverse = augment.StochasticReverseComplement()(x)
    if spec.augment_shift:
        x = augment.StochasticShift(spec.augment_shift)(x)

    reprs = []
    for name, p in spec.trunk:
        x = BUILDERS[name](x, p, reprs)
        reprs.append(x)
    if spec.activation != "linear":
        x = layers.Activate(spec.activation)(x)
    trunk_output = x
    if trunk:
        model = keras.Model(sequence, x, name="seqnn_trunk")
    else:
        outputs = []
        for (head, blocks), pair in zip(spec.heads.items(), pairs):
            x = trunk_output
            for name, p in blocks:
                x = BUILDERS[name](x, p, reprs)
            if pair is not None:
                _check_strand_pair(pair, x.shape[-1], head)
            if spec.augment_rc:
                x = augment.SwitchReverse(pair)([x, reverse])
            # named after the head; float32 even under mixed precision
            outputs.append(keras.layers.Identity(name=head, dtype="float32")(x))
        model = keras.Model(sequence, outputs[0] if len(outputs) == 1 else outputs, name="seqnn")
    trunk_ids = {id(la) for la in adapters.ancestors(trunk_output)}
    if spec.adapter:
        a = spec.adapter
        model = adapters.insert_adapters(model, trunk_ids, a["adapter"],
                                         latent=a["adapter_latent"],
                                         conv_select=a["conv_select"], conv_latent=a["se_rank"])
        trunk_ids |= adapters.adapter_ids(model)
    return model, trunk_ids


@contextlib.contextmanager
def deferred_weights():
    """Build models inside without initialising their weights: shapes without values.

    A Keras stateless scope defers the weights, then the deferred list is restored, so a
    published-size model takes about a second and little memory.
    """
    pending = list(global_state.get_global_attribute("uninitialized_variables", None) or [])
    try:
        with keras.StatelessScope(initialize_variables=False):
            yield
    finally:
        global_state.set_global_attribute("uninitialized_variables", pending)


def unbuilt_model(params: dict, trunk: bool = False):
    """The model `params` builds, its weights never initialised (`deferred_weights`)."""
    with deferred_weights():
        return build_model(params, trunk=trunk)


def describe(model) -> dict:
    """Output shape(s) and trainable / non-trainable parameter counts of `model`."""
    shapes = [tuple(o.shape) for o in model.outputs]
    return {
        "output_shape": shapes[0] if len(shapes) == 1 else shapes,
        "trainable_params": sum(math.prod(w.shape) for w in model.trainable_weights),
        "non_trainable_params": sum(math.prod(w.shape) for w in model.non_trainable_weights),
    }


def model_summary(params: dict) -> dict:
    """`describe` of the model `params` builds (`unbuilt_model`)."""
    return describe(unbuilt_model(params))


def _jsonable(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")



def save_model(model, path, params=None, targets=None, statistics=None):
    """Save `model` to a `.keras` file that also carries params, targets and data statistics.

    `targets` is the track sheet as a list of row dicts (or a DataFrame). The file is written
    under a temporary name and renamed, so a killed job leaves no finished-looking file.
    """
    path = Path(path)
    if path.suffix != ".keras":
        raise SeqnnError(f"{path}: model files must end in .keras")
    if hasattr(targets, "to_dict"):
        targets = targets.to_dict("records")
    meta = {"params": params, "targets": targets, "statistics": statistics}
    text = json.dumps(meta, default=_jsonable)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}.keras")
    try:
        model.save(tmp)
        with zipfile.ZipFile(tmp, "a") as archive:
            archive.writestr(META_ENTRY, text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)



def load_model(path):
    """Load a model saved by `save_model`: returns `(model, meta)`.

    `meta` has `params`, `targets` and `statistics` (None where they were not saved).
    """
    path = Path(path)
    if not path.is_file():
        raise SeqnnError(f"{path}: model file not found; train the model or check the path")
    fix = "give a .keras file written by seqnn train or seqnn import"
    if not zipfile.is_zipfile(path):
        raise SeqnnError(f"{path}: not a model file (a .keras file is a zip archive); {fix}")
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as e:  # Keras raises many kinds for a damaged or foreign archive
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SeqnnError(f"{path}: cannot load the model ({first[:200]}); {fix}") from None
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        meta = json.loads(archive.read(META_ENTRY)) if META_ENTRY in names else {}
    return model, {key: meta.get(key) for key in ("params", "targets", "statistics")}



def preset_summary(name: str, size: str | None = None) -> dict:
    """Geometry and parameter counts of preset `name` at `size` (builds it with Keras)."""
    params = resolve_model(name, size=size)
    scale = params["preset"]["scale"]
    return {
        "preset": name,
        "size": size or "default",
        "scale": {k: v for k, v in scale.items() if k not in DATA_KEYS},
        "seq_length": scale["seq_length"],
        "bin_width": scale["pool_width"],
        "target_length": target_length(params),
        "receptive_field": receptive_field(params),
        **model_summary(params),
    }
