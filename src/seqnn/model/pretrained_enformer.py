"""Import Enformer weights saved by enformer-pytorch in the Hugging Face layout.

A folder written by `Enformer.save_pretrained` holds `config.json` and `model.safetensors` or
`pytorch_model.bin`. `import_enformer` maps the config onto the `enformer` preset's scale keys,
builds that preset (an ordinary seqnn model: its params are plain params) and copies every
tensor into it, checking names and shapes. Reading `.bin` needs torch (the `torch` extra);
`.safetensors` needs only the `safetensors` package.
"""

from contextlib import contextmanager
from pathlib import Path

import keras
from safetensors import SafetensorError, safe_open

from seqnn import SeqnnError
from seqnn.model import attention, layers
from seqnn.model.build import build_model
from seqnn.model.presets import resolve_model
from seqnn.model.published import CONFIG, enformer_geometry, read_config
from seqnn.model.select import head_dense

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
TORCH_FIX = "pip install torch==2.13.0 (the `torch` extra), or give the model.safetensors file"

# `Enformer._trunk` re-registers the stem, tower, transformer and final block under indices
TRUNK_ALIASES = {
    "stem.": "_trunk.1.",
    "conv_tower.": "_trunk.2.",
    "transformer.": "_trunk.4.",
    "final_pointwise.": "_trunk.6.",
}


def _files(path):
    """`(config.json, weights file)` for a folder or a weights file inside one."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    config = folder / CONFIG
    if not config.is_file():
        raise SeqnnError(
            f"{config}: not found; give the folder that enformer-pytorch's save_pretrained wrote "
            "(config.json with model.safetensors or pytorch_model.bin)"
        )
    if not path.is_dir():
        if not path.is_file():
            raise SeqnnError(f"{path}: weights file not found; check the path")
        return config, path
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return config, folder / name
    raise SeqnnError(
        f"{folder}: no {' or '.join(WEIGHT_FILES)}; download the weights next to config.json"
    )


def enformer_params(config: dict, seq_length=None, use_tf_gamma=None, where=CONFIG) -> dict:
    """Params of the `enformer` preset computing what the port computes with `config`.

    `seq_length` defaults to the port's 196,608 bp and must be a multiple of the bin width
    (2^num_downsamples); the port's target-length crop then cuts (bins - target_length) / 2
    bins from each end. `use_tf_gamma` (default: the config's) selects TensorFlow Enformer's
    gamma position features, as enformer-pytorch's `from_pretrained` does for
    EleutherAI/enformer-official-rough.
    """
    geometry = enformer_geometry(config, seq_length, where)
    tf_gamma = config["use_tf_gamma"] if use_tf_gamma is None else use_tf_gamma
    return resolve_model(
        "enformer",
        width=config["dim"],
        depth=config["depth"],
        heads=config["heads"],
        key_size=config["attn_dim_key"],
        divisible_by=config["dim_divisible_by"],
        dropout=config["dropout_rate"],
        attention_dropout=config["attn_dropout"],
        position_dropout=config["pos_dropout"],
        position_basis="enformer_tf" if tf_gamma else "enformer",
        pool_type="attention",
        seq_length=geometry["seq_length"],
        pool_width=geometry["pool_width"],
        crop_bp=geometry["crop_bp"],
        tracks=dict(config["output_heads"]),
    )


@contextmanager
def open_weights(path):
    """Yield `(names, get)`: the tensor names of a `.safetensors` or `.bin` file and a function
    reading one as float32 numpy (safetensors reads each tensor only when asked)."""
    path = Path(path)
    if path.suffix == ".safetensors":

        try:
            with safe_open(str(path), framework="np") as f:
                yield set(f.keys()), lambda name: f.get_tensor(name).astype("float32")
        except SafetensorError as err:
            raise SeqnnError(f"{path}: not a readable safetensors file ({err}); "
                             "re-download it") from None
        return
    try:
        import torch  # optional (the `torch` extra), needed for .bin only
    except ImportError:
        raise SeqnnError(f"{path}: reading a .bin checkpoint needs torch; {TORCH_FIX}") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several kinds for a file that is no checkpoint
        raise SeqnnError(f"{path}: not a PyTorch state dict ({err}); re-download it") from None
    yield set(state), lambda name: state[name].float().numpy()


def _conv(a):  # torch Conv1d [out, in, k] -> Keras [k, in, out]
    return a.transpose(2, 1, 0)


def _linear(a):  # torch Linear [out, in] -> Keras [in, out]
    return a.T


def _pool(a):  # AttentionPool's 1x1 Conv2d [out, in, 1, 1] -> Keras Dense [in, out]
    return a[:, :, 0, 0].T


def _same(a):
    return a


TORCH_SHAPE = {  # Keras variable shape -> the torch shape it comes from
    _conv: lambda s: s[::-1],
    _linear: lambda s: s[::-1],
    _pool: lambda s: (s[1], s[0], 1, 1),
    _same: lambda s: s,
}


def _layer_tensors(prefix, layer):
    """`(torch name, Keras variable, conversion)` for one layer of the built model."""

    if isinstance(layer, keras.layers.BatchNormalization):
        pairs = [("weight", layer.gamma), ("bias", layer.beta),
                 ("running_mean", layer.moving_mean), ("running_var", layer.moving_variance)]
        return [(f"{prefix}.{n}", v, _same) for n, v in pairs]
    if isinstance(layer, keras.layers.LayerNormalization):
        return [(f"{prefix}.weight", layer.gamma, _same), (f"{prefix}.bias", layer.beta, _same)]
    if isinstance(layer, keras.layers.Conv1D):
        return [(f"{prefix}.weight", layer.kernel, _conv), (f"{prefix}.bias", layer.bias, _same)]
    if isinstance(layer, layers.SoftmaxPool1D):
        return [(f"{prefix}.to_attn_logits.weight", layer.logits.kernel, _pool)]
    if isinstance(layer, attention.MultiheadAttention):
        return [
            (f"{prefix}.to_q.weight", layer.q_layer.kernel, _linear),
            (f"{prefix}.to_k.weight", layer.k_layer.kernel, _linear),
            (f"{prefix}.to_v.weight", layer.v_layer.kernel, _linear),
            (f"{prefix}.to_out.weight", layer.embedding_layer.kernel, _linear),
            (f"{prefix}.to_out.bias", layer.embedding_layer.bias, _same),
            (f"{prefix}.to_rel_k.weight", layer.r_k_layer.kernel, _linear),
            (f"{prefix}.rel_content_bias", layer.r_w_bias, _same),
            (f"{prefix}.rel_pos_bias", layer.r_r_bias, _same),
        ]
    return [(f"{prefix}.weight", layer.kernel, _linear), (f"{prefix}.bias", layer.bias, _same)]


def _port_names(config):
    """The port's module names of the trunk's weighted layers, in order, with their kind."""
    names = [("stem.0", "conv"), ("stem.1.fn.0", "bn"), ("stem.1.fn.2", "conv"),
             ("stem.2", "pool")]
    for i in range(config["num_downsamples"] - 1):
        t = f"conv_tower.{i}"
        names += [(f"{t}.0.0", "bn"), (f"{t}.0.2", "conv"), (f"{t}.1.fn.0", "bn"),
                  (f"{t}.1.fn.2", "conv"), (f"{t}.2", "pool")]
    for i in range(config["depth"]):
        t = f"transformer.{i}"
        names += [(f"{t}.0.fn.0", "ln"), (f"{t}.0.fn.1", "mha"), (f"{t}.1.fn.0", "ln"),
                  (f"{t}.1.fn.1", "dense"), (f"{t}.1.fn.4", "dense")]
    return names + [("final_pointwise.1.0", "bn"), ("final_pointwise.1.2", "conv")]


def _kind(layer):
    kinds = [(keras.layers.BatchNormalization, "bn"), (keras.layers.LayerNormalization, "ln"),
             (keras.layers.Conv1D, "conv"), (layers.SoftmaxPool1D, "pool"),
             (attention.MultiheadAttention, "mha"), (keras.layers.Dense, "dense")]
    return next((kind for cls, kind in kinds if isinstance(layer, cls)), None)


def _model_tensors(model, config):
    """Every `(torch name, Keras variable, conversion)` of the built model."""
    heads = {name: head_dense(out)[0] for name, out in zip(config["output_heads"], model.outputs)}
    head_ids = {id(layer) for layer in heads.values()}
    trunk = [la for la in model.layers if la.weights and id(la) not in head_ids]
    port = _port_names(config)
    kinds = [_kind(la) for la in trunk]
    if kinds != [kind for _, kind in port]:
        raise SeqnnError("enformer import: the built preset's layers differ from the port's "
                         f"({kinds} vs {[k for _, k in port]}); report this")
    tensors = [t for (prefix, _), la in zip(port, trunk) for t in _layer_tensors(prefix, la)]
    for name, layer in heads.items():
        tensors += _layer_tensors(f"_heads.{name}.0", layer)
    return tensors


def import_enformer(path, seq_length=None, use_tf_gamma=None):
    """Build the seqnn model of an enformer-pytorch folder (or one of its weights files) and
    load its weights: returns `(keras_model, params)`.

    See `enformer_params` for `seq_length` and `use_tf_gamma`. Outputs are `head_<name>` for
    each of the config's `output_heads`, in that order; the trunk output (the port's
    `return_only_embeddings`) is the input of each head's Dense layer.
    """
    config_path, weights_path = _files(path)
    config = read_config(config_path)
    config["output_heads"] = dict(sorted(config["output_heads"].items()))  # as the heads build
    params = enformer_params(config, seq_length, use_tf_gamma, where=str(config_path))
    model = build_model(params)
    tensors = _model_tensors(model, config)
    with open_weights(weights_path) as (names, get):
        for name, variable, convert in tensors:
            stored = name
            if stored not in names:
                prefix = next((p for p in TRUNK_ALIASES if name.startswith(p)), None)
                if prefix is not None:
                    stored = TRUNK_ALIASES[prefix] + name[len(prefix):]
            if stored not in names:
                raise SeqnnError(
                    f"{weights_path}: no tensor {name}; the weights do not match "
                    f"{config_path} (a different model, or the wrong config.json)"
                )
            value = get(stored)
            expected = tuple(TORCH_SHAPE[convert](tuple(variable.shape)))
            if tuple(value.shape) != expected:
                raise SeqnnError(
                    f"{weights_path}: tensor {name} has shape {tuple(value.shape)}, but "
                    f"{config_path} needs {expected}; the weights and config.json are from "
                    "different models"
                )
            variable.assign(convert(value))
        used = {name for name, _, _ in tensors}
        unused = sorted(n for n in names if n not in used and not n.startswith("_trunk.")
                        and not n.endswith("num_batches_tracked"))
        if unused:
            raise SeqnnError(
                f"{weights_path}: {len(unused)} tensors that {config_path} has no place for, "
                f"first {unused[0]}; the weights and config.json are from different models"
            )
    return model, params


def trunk_model(model):
    """A Keras model from the sequence to the trunk output (enformer-pytorch's embeddings)."""
    return keras.Model(model.input, head_dense(model.outputs[0])[0].input)

