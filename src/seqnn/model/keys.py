"""The shared key vocabulary of params blocks: choices, inherited globals, key meanings."""

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

