"""Where training runs: devices, thread pools, dtype policy (mixed precision), a doctor report."""

from __future__ import annotations

import contextlib
import logging

import keras
import tensorflow as tf

from seqnn import SeqnnError
from seqnn.model import cpu

log = logging.getLogger("seqnn")



def devices() -> list[dict]:
    """The devices TensorFlow sees: name, type and, for GPUs, model and compute capability."""
    out = []
    for dev in tf.config.list_physical_devices():
        entry = {"name": dev.name, "type": dev.device_type}
        if dev.device_type == "GPU":
            details = tf.config.experimental.get_device_details(dev)
            entry["model"] = details.get("device_name")
            entry["compute_capability"] = details.get("compute_capability")
        out.append(entry)
    return out


def doctor(gpu: bool = False) -> dict:
    """Versions, devices and the CPU (`seqnn.model.cpu.describe`: its convolution kernels);
    raises SeqnnError when `gpu` is asked for and none is visible."""
    found = devices()
    report = {
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "cuda_build": tf.test.is_built_with_cuda(),
        "devices": found,
        "gpus": sum(d["type"] == "GPU" for d in found),
        "cpu": cpu.describe(),
    }
    if gpu and not report["gpus"]:
        seen = ", ".join(d["name"] for d in found)
        hint = ("this TensorFlow has no CUDA support: pip install -e '.[gpu]'"
                if not report["cuda_build"] else
                "check nvidia-smi, the driver and CUDA_VISIBLE_DEVICES")
        raise SeqnnError(f"a GPU was asked for (train.gpu / --gpu) but TensorFlow sees none "
                         f"(devices: {seen}); {hint}, or set train.gpu: false to use the CPU")
    return report


@contextlib.contextmanager
def dtype_policy(policy: str | None):
    """Keras' global dtype policy inside the block (None: float32)."""
    old = keras.config.dtype_policy().name
    keras.config.set_dtype_policy(policy or "float32")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(old)


def set_threads(threads: int | None) -> None:
    """Cap TensorFlow's CPU thread pools (no-op for None, or once TensorFlow has started)."""
    if not threads:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(threads, 2))
        log.info("CPU threads: %d per op, %d ops at once", threads, min(threads, 2))
    except RuntimeError:  # TensorFlow already started in this process: keep its pools
        log.info("threads: TensorFlow already initialised; keeping its thread pools")
