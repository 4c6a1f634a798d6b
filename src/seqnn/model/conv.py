"""Convolutions with the weights and outputs of `keras.layers.Conv1D` and faster CPU gradients.

Registered for `.keras` round-trips, written with `keras.ops`; inputs `[batch, length, channels]`.
Each layer runs its own kernels only where they are the faster ones (`seqnn.model.cpu`: x86
CPUs with AVX2 and no AVX-512, or `SEQNN_CONV=custom`) and is `Conv1D` elsewhere; the choice is
made when a step is traced and changes no weights, saved configs or outputs beyond float
rounding.
"""

import keras
from keras import ops

from seqnn.model import cpu

register = keras.saving.register_keras_serializable(package="seqnn")


@register
class UnfoldConv1D(keras.layers.Conv1D):
    """`Conv1D` computed as one matrix product over unfolded windows `[B, L, kernel x channels]`.

    Same weights, options and outputs as `Conv1D`; on few input channels (one-hot DNA) the
    convolution kernels use an AVX2 CPU poorly and this trains the first layer about 2x faster.
    Stride 1 and dilation 1 only; lengths unknown when the model is built, or `Conv1D`'s kernels
    chosen for this CPU (`seqnn.model.cpu.conv_kernels`), fall back to `Conv1D`.

    Args: those of `keras.layers.Conv1D`.

    Input shape: `[batch, length, channels]`. Output shape: `[batch, new_length, filters]`, as
    `Conv1D` (`new_length` is `length` with padding same).
    """

    def call(self, inputs):
        size, length = self.kernel_size[0], inputs.shape[1]
        if (length is None or self.strides != (1,) or self.dilation_rate != (1,)
                or cpu.conv_kernels() != "custom"):
            return super().call(inputs)
        if self.padding == "same":
            left = (size - 1) // 2
            inputs = ops.pad(inputs, ((0, 0), (left, size - 1 - left), (0, 0)))
        out_length = inputs.shape[1] - size + 1
        windows = [inputs[:, i : i + out_length] for i in range(size)]
        kernel = ops.reshape(self.kernel, (-1, self.filters))
        if self.use_bias:  # a column of ones: the bias is one more row of the product
            windows.append(ops.ones_like(windows[0][..., :1]))
            kernel = ops.concatenate([kernel, self.bias[None]], axis=0)
        windows = ops.concatenate(windows, axis=-1)
        out = ops.matmul(ops.reshape(windows, (-1, windows.shape[-1])), kernel)
        out = ops.reshape(out, (-1, out_length, self.filters))
        return out if self.activation is None else self.activation(out)


def _tap_filter_grad(x, dy, size):
    """Gradient of a stride-1 convolution's kernel `[size, C, F]` from its padded input `x`
    `[B, L_out + size - 1, C]` and output gradient `dy` `[B, L_out, F]`: one matrix product
    per tap, `x` shifted by the tap's offset."""
    length, channels = dy.shape[1], x.shape[-1]
    dy = ops.reshape(dy, (-1, dy.shape[-1]))
    return ops.stack([
        ops.matmul(ops.transpose(ops.reshape(x[:, i : i + length], (-1, channels))), dy)
        for i in range(size)
    ])


@register
class TapConv1D(keras.layers.Conv1D):
    """`Conv1D` whose kernel gradient is one matrix product per tap.

    Same weights, options, outputs and input gradients as `Conv1D` (the convolution and its
    transpose run as before); on an AVX2 CPU the convolution library's kernel gradient of a long
    1D convolution runs at a fifth of the matmul rate, and this computes it 2-3x faster. Stride
    1, dilation 1 (TensorFlow's CPU kernels have no dilated transpose), one group, known
    lengths, no GPU and custom kernels chosen for this CPU (`seqnn.model.cpu.conv_kernels`);
    otherwise it is `Conv1D`.

    Args: those of `keras.layers.Conv1D`.

    Input shape: `[batch, length, channels]`. Output shape: as `Conv1D`'s.
    """

    def call(self, inputs):
        size, length, padding = self.kernel_size[0], inputs.shape[1], self.padding
        if (length is None or self.strides != (1,) or self.dilation_rate != (1,)
                or self.groups != 1 or padding not in ("same", "valid")
                or cpu.conv_kernels() != "custom" or keras.distribution.list_devices("gpu")):
            return super().call(inputs)

        @ops.custom_gradient
        def conv(x, kernel):
            def grad(*args, upstream=None):
                dy = args[0] if upstream is None else upstream
                x_pad = x
                if padding == "same":
                    x_pad = ops.pad(x, ((0, 0), ((size - 1) // 2, size // 2), (0, 0)))
                return (ops.conv_transpose(dy, kernel, padding=padding),
                        _tap_filter_grad(x_pad, dy, size))

            return ops.conv(x, kernel, padding=padding), grad

        out = conv(inputs, ops.cast(self.kernel, self.compute_dtype))  # a tensor, not a variable
        if self.use_bias:
            out = out + self.bias
        return out if self.activation is None else self.activation(out)
