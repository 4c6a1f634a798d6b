"""Adapters for fine-tuning a pretrained model (baskerville's transfer methods), and where they go.

Layers (registered for `.keras` round-trips, written with `keras.ops`):

- `LowRank`: `alpha / rank * x A B`, A He-uniform, B zero (LoRA, Hu et al. 2021);
- `AttentionAdapter`: a `MultiheadAttention` whose query and value projections (`lora`), or all
  four projections (`lora_full`), add a `LowRank` update, or whose keys and values are scaled
  per channel (`ia3`, Liu et al. 2022; scales start at one);
- `IA3Dense`: a Dense layer whose inputs are scaled per channel (IA3 on the feed-forward
  network's hidden units, before its down-projection);
- `LoconConv`: a Conv1D plus a low-rank convolution (`rank` filters of the same width, then a
  pointwise map to the filters; LoCon, Yeh et al. 2024);
- `HoulsbyAdapter`: `h + relu(h W1 + b1) W2 + b2` on a transformer branch before its residual
  add (Houlsby et al. 2019), weights truncated-normal with standard deviation 1e-3;
- `SqueezeExciteAdapter`: `x + x tanh(relu(mean(x) W1) W2)` after a convolution (baskerville's
  houlsby_se), no biases, weights as Houlsby's.

Every update starts at (or near) zero, so an adapted model starts as the pretrained one. LoRA,
IA3 and LoCon are linear in the weights they adapt, so `merge_adapters` folds them in and the
model regains its original architecture; Houlsby and squeeze-excite adapters stay.

`insert_adapters` puts them where baskerville does, found in the graph of a seqnn model: every
attention layer, the Dense after each transformer feed-forward ReLU, both residual adds of each
transformer block (attention and feed-forward branches) and the trunk's standard convolutions
(`keras.layers.Conv1D`, not separable ones), counted from the end.
"""

from __future__ import annotations

import keras
from keras import ops

from seqnn import SeqnnError
from seqnn.model import layers
from seqnn.model.attention import MultiheadAttention

register = keras.saving.register_keras_serializable(package="seqnn")



def _small():
    """Houlsby's initializer: truncated normal, standard deviation 1e-3."""
    return keras.initializers.TruncatedNormal(stddev=1e-3)


@register
class LowRank(keras.layers.Layer):
    """`alpha / rank * x A B` with A `[in, rank]` He-uniform and B `[rank, units]` zero."""

    def __init__(self, units, rank=8, alpha=16, **kwargs):
        super().__init__(**kwargs)
        self.units, self.rank, self.alpha = units, rank, alpha
        self.scale = alpha / rank

    def build(self, input_shape):
        self.down = self.add_weight(name="down", shape=(input_shape[-1], self.rank),
                                    initializer="he_uniform")
        self.up = self.add_weight(name="up", shape=(self.rank, self.units), initializer="zeros")

    def call(self, x):
        return ops.matmul(ops.matmul(x, self.down), self.up) * self.scale

    def delta(self):
        """The update as one `[in, units]` kernel."""
        return ops.matmul(self.down, self.up) * self.scale

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "rank": self.rank,
                "alpha": self.alpha}


ATTENTION_ADAPTERS = ("lora", "lora_full", "ia3")


@register
class AttentionAdapter(keras.layers.Wrapper):
    """`MultiheadAttention` with LoRA on its projections or IA3 scales on its keys and values.

    `adapter`: `lora` (queries and values, as baskerville's default), `lora_full` (queries,
    keys, values and the output projection) or `ia3` (keys and values scaled per channel).
    """

    def __init__(self, layer, adapter="lora", rank=8, alpha=16, **kwargs):
        super().__init__(layer, **kwargs)
        if adapter not in ATTENTION_ADAPTERS:
            raise ValueError(f"adapter must be one of {ATTENTION_ADAPTERS}, got {adapter!r}")
        self.adapter, self.rank, self.alpha = adapter, rank, alpha
        keys, values = layer.key_size * layer.heads, layer.value_size * layer.heads
        self.lora = {}
        if adapter != "ia3":
            names = ("q", "v", "k", "out") if adapter == "lora_full" else ("q", "v")
            units = {"q": keys, "k": keys, "v": values, "out": values}
            self.lora = {n: LowRank(units[n], rank, alpha, name=f"lora_{n}") for n in names}

    def build(self, input_shape):
        super().build(input_shape)
        a = self.layer
        for name, low in self.lora.items():
            low.build((None, None, a.value_size * a.heads if name == "out" else input_shape[-1]))
        if self.adapter == "ia3":
            self.k_scale = self.add_weight(name="ia3_k", shape=(a.key_size * a.heads,),
                                           initializer="ones")
            self.v_scale = self.add_weight(name="ia3_v", shape=(a.value_size * a.heads,),
                                           initializer="ones")

    def call(self, x, training=None):
        a = self.layer
        q, k, v = a.q_layer(x), a.k_layer(x), a.v_layer(x)
        if self.adapter == "ia3":
            k, v = k * self.k_scale, v * self.v_scale
        else:
            q, v = q + self.lora["q"](x), v + self.lora["v"](x)
            if "k" in self.lora:
                k = k + self.lora["k"](x)
        heads = a.attend(q, k, v, training)
        out = a.embedding_layer(heads)
        return out + self.lora["out"](heads) if "out" in self.lora else out

    def merge(self):
        """Fold the adapter into the attention layer's kernels; returns that layer."""
        a = self.layer
        if self.adapter == "ia3":
            a.k_layer.kernel.assign(a.k_layer.kernel * self.k_scale)
            a.v_layer.kernel.assign(a.v_layer.kernel * self.v_scale)
        targets = {"q": a.q_layer, "k": a.k_layer, "v": a.v_layer, "out": a.embedding_layer}
        for name, low in self.lora.items():
            targets[name].kernel.assign(targets[name].kernel + low.delta())
        return a

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(), "adapter": self.adapter, "rank": self.rank,
                "alpha": self.alpha}


@register
class IA3Dense(keras.layers.Wrapper):
    """A Dense layer whose inputs are first scaled per channel (scales start at one)."""

    def build(self, input_shape):
        super().build(input_shape)
        self.scale = self.add_weight(name="ia3", shape=(input_shape[-1],), initializer="ones")

    def call(self, x):
        return self.layer(x * self.scale)

    def merge(self):
        """Fold the scales into the Dense kernel's rows; returns the Dense layer."""
        self.layer.kernel.assign(self.layer.kernel * self.scale[:, None])
        return self.layer

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)


@register
class LoconConv(keras.layers.Wrapper):
    """A Conv1D plus `alpha / rank` times a rank-`rank` convolution of the same width, stride,
    dilation and padding (He-uniform) followed by a pointwise map to the filters (zero)."""

    def __init__(self, layer, rank=4, alpha=1, **kwargs):
        super().__init__(layer, **kwargs)
        self.rank, self.alpha = rank, alpha
        self.scale = alpha / rank

    def build(self, input_shape):
        super().build(input_shape)
        c = self.layer
        if c.activation is not keras.activations.linear or c.groups != 1:
            raise ValueError("LoconConv adapts convolutions without activation and groups only")
        self.down = self.add_weight(name="down", shape=(c.kernel_size[0], input_shape[-1],
                                                        self.rank), initializer="he_uniform")
        self.up = self.add_weight(name="up", shape=(self.rank, c.filters), initializer="zeros")

    def call(self, x):
        c = self.layer
        low = ops.conv(x, self.down, strides=c.strides, padding=c.padding,
                       dilation_rate=c.dilation_rate)
        return c(x) + ops.matmul(low, self.up) * self.scale

    def merge(self):
        """Fold the low-rank convolution into the kernel; returns the Conv1D layer."""
        delta = ops.einsum("kir,ro->kio", self.down, self.up) * self.scale
        self.layer.kernel.assign(self.layer.kernel + delta)
        return self.layer

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(), "rank": self.rank, "alpha": self.alpha}


@register
class HoulsbyAdapter(keras.layers.Layer):
    """`h + relu(h W1 + b1) W2 + b2`, W1 `[channels, latent]`: a bottleneck on a branch."""

    def __init__(self, latent=8, **kwargs):
        super().__init__(**kwargs)
        self.latent = latent

    def build(self, input_shape):
        channels = input_shape[-1]
        self.down = self.add_weight(name="down", shape=(channels, self.latent),
                                    initializer=_small())
        self.down_bias = self.add_weight(name="down_bias", shape=(self.latent,),
                                         initializer="zeros")
        self.up = self.add_weight(name="up", shape=(self.latent, channels), initializer=_small())
        self.up_bias = self.add_weight(name="up_bias", shape=(channels,), initializer="zeros")

    def call(self, h):
        hidden = ops.relu(ops.matmul(h, self.down) + self.down_bias)
        return h + ops.matmul(hidden, self.up) + self.up_bias

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "latent": self.latent}


@register
class SqueezeExciteAdapter(keras.layers.Layer):
    """`x + x tanh(relu(mean_length(x) W1) W2)`, W1 `[channels, rank]`, no biases."""

    def __init__(self, rank=4, **kwargs):
        super().__init__(**kwargs)
        self.rank = rank

    def build(self, input_shape):
        channels = input_shape[-1]
        self.down = self.add_weight(name="down", shape=(channels, self.rank), initializer=_small())
        self.up = self.add_weight(name="up", shape=(self.rank, channels), initializer=_small())

    def call(self, x):
        excite = ops.relu(ops.matmul(ops.mean(x, axis=1), self.down))
        return x + x * ops.tanh(ops.matmul(excite, self.up))[:, None]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rank": self.rank}


MERGEABLE = (AttentionAdapter, IA3Dense, LoconConv)
ADDED = (HoulsbyAdapter, SqueezeExciteAdapter)
ADAPTER_LAYERS = (*MERGEABLE, *ADDED)


# ---------------------------------------------------------------------------------------------
# Where adapters go


def ancestors(tensor) -> list:
    """The layers that compute `tensor` (a symbolic output of a built functional model)."""
    seen, found, stack = set(), [], [tensor]
    while stack:
        op, index, _ = stack.pop()._keras_history
        if id(op) in seen:
            continue
        seen.add(id(op))
        found.append(op)
        stack.extend(op._inbound_nodes[index].input_tensors)
    return found


def is_conv(layer) -> bool:
    """A standard (not separable) 1D convolution, adapted or not."""
    return isinstance(layer, (keras.layers.Conv1D, LoconConv))


def conv_plan(count: int, conv_select: int, adapter: str) -> tuple[range, bool]:
    """Which of `count` trunk convolutions (0-based) get an adapter, and whether the first is
    trained whole instead (locon with conv_select equal to the count, as baskerville)."""
    if conv_select > count:
        raise SeqnnError(f"transfer.conv_select {conv_select} exceeds the {count} standard "
                         f"convolutions of the trunk; set it to at most {count}")
    if adapter == "locon" and conv_select == count:
        return range(1, count), True
    return range(count - conv_select, count), False


def _needs_attention(model, adapter):
    if not any(isinstance(la, MultiheadAttention) for la in model.layers):
        raise SeqnnError(f"transfer.adapter {adapter}: the model has no attention layer to "
                         "adapt; use locon (convolutions), mode linear or mode full")


def insert_adapters(model, trunk, adapter, *, latent=8, lora_alpha=16, conv_select=4,
                    conv_latent=4, locon_alpha=1):
    """`model` with `adapter`'s layers added to the layers of `trunk` (ids), sharing every layer
    of `model` (so its weights).

    Args:
        model: a functional model built by `seqnn.model.build`.
        trunk: ids of its trunk layers (`ancestors` of the trunk output); heads get no adapters.
        adapter: houlsby, lora, lora_full, ia3, locon or houlsby_se.
        latent: Houlsby bottleneck width and LoRA rank (baskerville's adapter_latent).
        lora_alpha: LoRA scale numerator (scale lora_alpha / latent).
        conv_select: locon and houlsby_se: the last this many trunk convolutions.
        conv_latent: LoCon rank, and the squeeze-excite bottleneck of houlsby_se.
        locon_alpha: LoCon scale numerator.
    """
    if adapter != "locon":
        _needs_attention(model, adapter)
    convs = [la for la in model.layers if id(la) in trunk and is_conv(la)]
    picked = set()
    if adapter in ("locon", "houlsby_se"):
        chosen, _ = conv_plan(len(convs), conv_select, adapter)
        picked = {id(convs[i]) for i in chosen}
    houlsby = adapter in ("houlsby", "houlsby_se")
    roles = {}  # id(tensor) -> its place in a transformer block

    def call(layer, *args, **kwargs):
        role = None
        inputs = args[0] if args else None
        first = inputs[-1] if isinstance(inputs, list) else inputs
        came = roles.get(id(first))
        if id(layer) not in trunk:
            out = layer(*args, **kwargs)
        elif isinstance(layer, MultiheadAttention):
            role = "attention"
            if adapter in ATTENTION_ADAPTERS or adapter == "locon":
                kind = "lora" if adapter == "locon" else adapter
                layer = AttentionAdapter(layer, kind, latent, lora_alpha)
            out = layer(*args, **kwargs)
        elif isinstance(layer, keras.layers.Add) and came in ("attention", "feed_forward"):
            branch = HoulsbyAdapter(latent)(inputs[-1]) if houlsby else inputs[-1]
            out = layer([*inputs[:-1], branch], **kwargs)
            role = "attention_residual" if came == "attention" else None
        elif isinstance(layer, keras.layers.Dropout):
            out, role = layer(*args, **kwargs), came
        elif isinstance(layer, keras.layers.LayerNormalization) and came == "attention_residual":
            out, role = layer(*args, **kwargs), "normed"
        elif isinstance(layer, keras.layers.Dense) and came == "normed":
            out, role = layer(*args, **kwargs), "hidden"
        elif isinstance(layer, layers.Activate) and came == "hidden":
            out, role = layer(*args, **kwargs), "hidden"
        elif isinstance(layer, keras.layers.Dense) and came == "hidden":
            role = "feed_forward"
            out = (IA3Dense(layer) if adapter == "ia3" else layer)(*args, **kwargs)
        elif id(layer) in picked and adapter == "locon":
            out = LoconConv(layer, conv_latent, locon_alpha)(*args, **kwargs)
        elif id(layer) in picked:
            out = layer(*args, **kwargs)
            out = SqueezeExciteAdapter(conv_latent)(out)
        else:
            out = layer(*args, **kwargs)
        if role is not None:
            roles[id(out)] = role
        return out

    return keras.models.clone_model(model, clone_function=lambda la: la, call_function=call)


def adapter_ids(model) -> set:
    """Ids of `model`'s adapter layers (all of them sit in the trunk)."""
    return {id(la) for la in model.layers if isinstance(la, ADAPTER_LAYERS)}


def merge_adapters(model):
    """`model` with its LoRA, IA3 and LoCon adapters folded into the layers they adapt (which
    change in place: `model` itself is spent); Houlsby and squeeze-excite adapters stay."""

    def call(layer, *args, **kwargs):
        return (layer.merge() if isinstance(layer, MERGEABLE) else layer)(*args, **kwargs)

    return keras.models.clone_model(model, clone_function=lambda la: la, call_function=call)
