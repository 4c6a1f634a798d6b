"""Which convolution kernels train faster on the CPU at hand (no Keras, no TensorFlow).

`seqnn.model.conv`'s `UnfoldConv1D` and `TapConv1D` compute `Conv1D`'s outputs and gradients
with matrix products. They were tuned where oneDNN's convolution kernels are slow, on an x86 CPU
with AVX2 and no AVX-512 (an AMD EPYC: the first layer on one-hot DNA about 2x, the kernel
gradient of a long 1D convolution 2-3x faster there). On an AVX-512 CPU (an AMD EPYC with
AVX-512) oneDNN's own kernels are up to a quarter faster on long layers (short ones, as the
demo's 128-bin layers, favour the custom kernels a little), and whole models differ by a few
percent either way (`benchmarks/bench_kernels.py`; figures in the README's Speed
section). Elsewhere (ARM, or no `/proc/cpuinfo` to read the flags from) nothing was measured
and `Conv1D`'s kernels run.

The rule: custom kernels on Linux x86 CPUs whose flags have `avx2` and not `avx512f`, Keras'
own kernels otherwise; the environment variable `SEQNN_CONV=custom|keras` overrides it. The
choice changes no weights, saved files or layer classes, only which ops a traced step runs.
"""

from __future__ import annotations

import functools
import os
import platform

from seqnn import SeqnnError

ENV = "SEQNN_CONV"
CHOICES = ("custom", "keras")
X86 = ("x86_64", "amd64", "i386", "i686")


def _field(cpuinfo: str, keys: tuple[str, ...]) -> str | None:
    """The first processor's value of the first of `keys` found in `/proc/cpuinfo` text."""
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in keys:
            return value.strip()
    return None


def cpu_flags(cpuinfo: str) -> set[str]:
    """The flags of the first processor in `/proc/cpuinfo` text (empty when it has none)."""
    return set((_field(cpuinfo, ("flags", "Features")) or "").split())


def cpu_model(cpuinfo: str) -> str | None:
    """The first processor's model name in `/proc/cpuinfo` text."""
    return _field(cpuinfo, ("model name",))


def rule(cpuinfo: str | None, machine: str) -> str:
    """`custom` on an x86 `machine` whose `cpuinfo` flags have AVX2 and not AVX-512F, else
    `keras` (also when `cpuinfo` is None: no `/proc/cpuinfo`)."""
    if cpuinfo is None or machine.lower() not in X86:
        return "keras"
    flags = cpu_flags(cpuinfo)
    return "custom" if "avx2" in flags and "avx512f" not in flags else "keras"


@functools.cache
def read_cpuinfo() -> str | None:
    """This machine's `/proc/cpuinfo` (None where there is none: macOS, Windows)."""
    try:
        with open("/proc/cpuinfo") as f:
            return f.read()
    except OSError:
        return None


def conv_kernels(environ=None, cpuinfo: str | None = None, machine: str | None = None) -> str:
    """`custom` or `keras`: the convolution kernels to train with, from `SEQNN_CONV` in
    `environ` (default `os.environ`) if set, else `rule` on `cpuinfo` and `machine` (default
    this machine's)."""
    environ = os.environ if environ is None else environ
    value = environ.get(ENV, "").strip().lower()
    if value:
        if value not in CHOICES:
            raise SeqnnError(f"{ENV}={environ[ENV]!r}: expected one of {', '.join(CHOICES)}")
        return value
    if cpuinfo is None:
        cpuinfo = read_cpuinfo()
    return rule(cpuinfo, machine or platform.machine())


def describe() -> dict:
    """This machine's CPU model, its AVX flags and the kernels `conv_kernels` picks."""
    info = read_cpuinfo()
    flags = cpu_flags(info or "")
    return {
        "cpu": cpu_model(info or "") or platform.processor() or platform.machine(),
        "machine": platform.machine(),
        "avx2": "avx2" in flags,
        "avx512f": "avx512f" in flags,
        "conv_kernels": conv_kernels(),
        "conv_kernels_from": ENV if os.environ.get(ENV, "").strip() else "cpu rule",
    }
