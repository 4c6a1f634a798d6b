"""seqnn: train and apply sequence-to-coverage models (Basenji / Enformer / Borzoi family).

Heavy dependencies (TensorFlow) are imported lazily by the modules that need them, so the
data stage runs without importing TensorFlow.
"""

__version__ = "0.1.0"


class SeqnnError(Exception):
    """A user-facing error: its message names the file, the problem and the fix."""
