"""seqnn: train and apply sequence-to-coverage models (Basenji / Enformer / Borzoi family).

Heavy dependencies (TensorFlow) are imported lazily by the modules that need them, so the
data stage runs without importing TensorFlow.
"""

import os

# TensorFlow's oneDNN kernels (convolution, matmul, pooling) train the models here 10-20% faster
# on AVX2 CPUs, where TensorFlow leaves them off by default; TF_ENABLE_ONEDNN_OPTS=0 opts out.
# Read when TensorFlow starts, so this must run first: seqnn modules import TensorFlow lazily.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"


class SeqnnError(Exception):
    """A user-facing error: its message names the file, the problem and the fix."""


def load_model(path):
    """The Keras model of a seqnn `.keras` file (trained, or written by `seqnn import`).

    TensorFlow is imported on the first call only; `seqnn.model.build.load_model` also returns the
    params, track sheet and statistics the file carries.
    """
    from seqnn.model.build import load_model as load

    return load(path)[0]
