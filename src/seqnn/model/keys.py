"""The shared key vocabulary of params blocks: choices, inherited globals, key meanings, and
the type and range of every key (`KINDS`)."""

import difflib
from dataclasses import dataclass

from seqnn import SeqnnError

REQUIRED = "<required>"

ACTIVATIONS = ("relu", "gelu", "gelu_sigmoid", "sigmoid", "tanh", "exp", "softplus", "linear")

CHOICES = {
    "activation": (None, *ACTIVATIONS),
    "activation_end": (None, *ACTIVATIONS),
    "padding": ("same", "valid"),
    "norm_type": (None, "batch", "batch-sync", "layer"),
    "conv_type": ("standard", "separable"),
    "pool_type": ("max", "avg", "softmax", "attention"),
    "position_basis": ("central_mask", "enformer", "enformer_tf"),
}

ADAPTIVE_POOLS = ("avg", "max")

INHERITED = (
    "activation",
    "norm_type",
    "bn_momentum",
    "kernel_initializer",
    "l2_scale",
    "l1_scale",
    "padding",
)

ALIASES = {"bn_gamma": "norm_gamma", "strides": "stride"}

KEY_DOCS = {
    "filters": "output channels; null keeps the input's channels",
    "kernel_size": "convolution width",
    "activation": "activation: " + ", ".join(ACTIVATIONS),
    "activation_end": "activation applied after the residual add (null: none)",
    "stride": "convolution stride (alias `strides`)",
    "strides": "convolution stride",
    "dilation_rate": "convolution dilation",
    "l2_scale": "L2 penalty on kernels",
    "l1_scale": "L1 penalty on kernels",
    "dropout": "dropout rate",
    "dropout_residual": "dropout rate inside the residual branch",
    "conv_type": "`standard` Conv1D or `separable` SeparableConv1D",
    "residual": "add the block's input to its output (channels must match)",
    "pool_size": "max-pool width after the block (1: none)",
    "pool_type": "`max`, `avg`, `softmax` (one attention logit, baskerville) or `attention` "
    "(a logit per channel, Enformer); softmax and attention pool a ragged end as its own window "
    "with padding `same` and need the length to divide with `valid`",
    "norm_type": "normalisation: batch, batch-sync, layer or null (legacy `batch_norm: true`)",
    "bn_momentum": "batch-norm moving-average momentum",
    "norm_epsilon": "normalisation epsilon (Keras: 0.001, PyTorch: 1e-5)",
    "norm_gamma": "initial normalisation gamma, e.g. `zeros` (alias `bn_gamma`; null: ones)",
    "kernel_initializer": "Keras kernel initializer",
    "padding": "`same` or `valid`, for pooling (and the convolution in conv_nac)",
    "use_bias": "convolution bias; null: only without normalisation and residual",
    "se": "add a squeeze-excite gate after the convolution",
    "filters_init": "filters of the first repeat",
    "filters_end": "filters of the last repeat (growth is geometric in between)",
    "filters_mult": "filter growth per repeat (instead of `filters_end`)",
    "divisible_by": "round each repeat's filters to a multiple of this",
    "repeat": "number of repeats",
    "num_convs": "convolutions per repeat; above 1 the repeat is residual",
    "rate_mult": "dilation growth per repeat (starts at 1)",
    "round": "round the dilation rate after each repeat (as Basenji2)",
    "key_size": "query/key size per head",
    "heads": "attention heads (must divide the channels)",
    "num_position_features": "relative position basis size; null: channels/heads rounded to even",
    "dense_expansion": "feed-forward width as a multiple of the channels (0: no feed-forward)",
    "attention_dropout": "dropout on attention weights",
    "position_dropout": "dropout on the positional basis",
    "content_position_bias": "positional logits depend on the query (Enformer)",
    "position_basis": "relative position features: `central_mask` (baskerville), `enformer` "
    "(exponential, central mask and gamma, as enformer-pytorch) or `enformer_tf` (gamma "
    "normalised as TensorFlow Enformer: the port's `use_tf_gamma`)",
    "mha_l2_scale": "L2 penalty on attention projections",
    "mha_initializer": "initializer of attention projections",
    "upsample_conv": "project the upsampled input with a dense layer too",
    "additive": "add the excitation instead of gating with it",
    "bottleneck_ratio": "excitation bottleneck: channels // ratio units",
    "units": "output tracks (dense units)",
    "flatten": "flatten the length axis into one position first",
    "cropping": "positions cut from each end: n or [left, right]",
    "groups": "convolution groups",
    "scale_residual": "scale the residual branch by a learned, zero-initialised weight per channel",
    "length": "output bins",
    "crop": "positions cut from each end of the input first: n or [left, right]",
    "hidden": "widths of the hidden dense layers",
    "hidden_activation": "activation of the hidden layers",
    "hidden_dropout": "dropout rate after each hidden layer",
}



@dataclass(frozen=True)
class Kind:
    """The values a key takes: JSON types from `int`, `number`, `bool`, `string`, `null`,
    `ints` (a list of integers), `pair` (a list of two integers), within [low, high] (`high`
    itself excluded when `open_high`); lists' items obey the range too."""

    types: tuple[str, ...]
    low: float | None = None
    high: float | None = None
    open_high: bool = False

    def _number(self, value, integer: bool) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if integer and not isinstance(value, int):
            return False
        return ((self.low is None or value >= self.low) and
                (self.high is None or value < self.high or
                 (value == self.high and not self.open_high)))

    def accepts(self, value) -> bool:
        """Whether `value` is of one of the types, within the range."""
        tests = {
            "int": lambda v: self._number(v, True),
            "number": lambda v: self._number(v, False),
            "bool": lambda v: isinstance(v, bool),
            "string": lambda v: isinstance(v, str),
            "null": lambda v: v is None,
            "ints": lambda v: isinstance(v, list) and all(self._number(x, True) for x in v),
            "pair": lambda v: (isinstance(v, list) and len(v) == 2
                               and all(self._number(x, True) for x in v)),
        }
        return any(tests[t](value) for t in self.types)

    def __str__(self) -> str:
        names = {"int": "an integer", "number": "a number", "bool": "true or false",
                 "string": "a string", "null": "null", "ints": "a list of integers",
                 "pair": "a pair [left, right]"}
        bounded = [t for t in self.types if t in ("int", "number", "ints", "pair")]
        span = ""
        if self.low is not None and self.high is not None:
            span = f" in [{self.low:g}, {self.high:g}{')' if self.open_high else ']'}"
        elif self.low is not None:
            span = f" >= {self.low:g}"
        elif self.high is not None:
            span = f" <= {self.high:g}"
        text = [names[t] + (span if bounded and t == bounded[-1] else "") for t in self.types]
        return " or ".join(text)


_POSITIVE = Kind(("int",), 1)
_RATE = Kind(("number",), 0, 1, open_high=True)
_PENALTY = Kind(("number",), 0)
_FLAG = Kind(("bool",))
_NAME = Kind(("string",))
_CHOICE = Kind(("string", "null"))  # the values themselves are checked against CHOICES

KINDS = {  # block keys, then the model-level keys of `seqnn.model.params.MODEL_KEYS`
    "filters": Kind(("int", "null"), 1),
    "kernel_size": _POSITIVE,
    "activation": _CHOICE,
    "activation_end": _CHOICE,
    "stride": _POSITIVE,
    "strides": _POSITIVE,
    "dilation_rate": _POSITIVE,
    "l2_scale": _PENALTY,
    "l1_scale": _PENALTY,
    "dropout": _RATE,
    "dropout_residual": _RATE,
    "conv_type": _CHOICE,
    "residual": _FLAG,
    "pool_size": _POSITIVE,
    "pool_type": _CHOICE,
    "norm_type": _CHOICE,
    "bn_momentum": Kind(("number",), 0, 1),
    "norm_epsilon": Kind(("number",), 0),
    "norm_gamma": Kind(("string", "null")),
    "kernel_initializer": _NAME,
    "padding": _CHOICE,
    "use_bias": Kind(("bool", "null")),
    "se": _FLAG,
    "filters_init": _POSITIVE,
    "filters_end": Kind(("int", "null"), 1),
    "filters_mult": Kind(("number", "null"), 0),
    "divisible_by": _POSITIVE,
    "repeat": Kind(("int",), 0),
    "num_convs": _POSITIVE,
    "rate_mult": Kind(("number",), 0),
    "round": _FLAG,
    "key_size": _POSITIVE,
    "heads": _POSITIVE,
    "num_position_features": Kind(("int", "null"), 1),
    "dense_expansion": Kind(("number",), 0),
    "attention_dropout": _RATE,
    "position_dropout": _RATE,
    "content_position_bias": _FLAG,
    "position_basis": _CHOICE,
    "mha_l2_scale": _PENALTY,
    "mha_initializer": _NAME,
    "upsample_conv": _FLAG,
    "additive": _FLAG,
    "bottleneck_ratio": _POSITIVE,
    "units": _POSITIVE,
    "flatten": _FLAG,
    "cropping": Kind(("int", "pair"), 0),
    "groups": _POSITIVE,
    "scale_residual": _FLAG,
    "length": Kind(("int", "null"), 1),
    "crop": Kind(("int", "pair"), 0),
    "hidden": Kind(("int", "ints"), 1),
    "hidden_activation": _CHOICE,
    "hidden_dropout": _RATE,
    "seq_length": _POSITIVE,
    "seq_depth": _POSITIVE,
    "augment_rc": _FLAG,
    "augment_shift": Kind(("int", "ints")),  # Basenji's lists, e.g. [-1, 0, 1]
    "batch_norm": _FLAG,
}


def filled_block(given: dict, table: dict, section: str, where: str) -> dict:
    """A params block (`train`, `transfer`) with the defaults of `table` (key -> (default,
    meaning)) filled in; an unknown key fails naming the nearest valid one."""
    for key in given:
        if key not in table:
            near = difflib.get_close_matches(key, table, 1, 0.6)
            hint = f"did you mean {near[0]}? " if near else ""
            raise SeqnnError(f"{where}: unknown {section} key {key!r}; {hint}{section} keys: "
                             f"{', '.join(table)}")
    return {k: given.get(k, default) for k, (default, _) in table.items()}
