"""Import of a Borzoi-sized baskerville file: prints JSON figures.

    python benchmarks/bench_import.py [--dir DIR] [--keep]

Writes the borzoi preset at its published size (524,288 bp, trunk + the 7,611-track human head,
185,892,699 parameters: what Borzoi's `model0_best.h5` holds) as a Keras-2 HDF5 file in the
layout baskerville's `SeqNN.save` writes (`model_weights/<layer>/<layer>/<var>:0`, auto-numbered
layer names, `sync_batch_normalization` norms, attention biases one level up), filled with
seeded random weights (the speed does not depend on them), then imports it in a fresh process
with `seqnn.model.pretrained.import_baskerville` and writes the `.keras` file with
`save_model`. The child reports its own seconds and peak RSS (ru_maxrss), so the figures
exclude writing the HDF5 file; `weights_mb` is one float32 copy of the weights, and a few
imported tensors are checked against the file.
"""

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

# Keras-2 layer names of seqnn's layer classes (baskerville builds plain Keras layers)
KERAS2_NAMES = {"UnfoldConv1D": "conv1d", "TapConv1D": "conv1d",
                "MultiheadAttention": "multihead_attention"}


def borzoi_params() -> dict:
    """The borzoi preset at its published size (human and mouse heads), batch-sync norms."""
    from seqnn.model.presets import resolve_model

    params = resolve_model("borzoi")
    params["model"]["norm_type"] = "batch-sync"
    return params


def _keras2_name(layer, counters) -> str:
    cls = type(layer).__name__
    if cls == "BatchNormalization" and layer.synchronized:
        base = "sync_batch_normalization"
    else:
        base = KERAS2_NAMES.get(cls) or re.sub(r"(?<!^)(?=[A-Z])", "_", cls).lower()
        base = base.replace("1_d", "1d")
    n = counters.get(base, 0)
    counters[base] = n + 1
    return base if n == 0 else f"{base}_{n}"


def write_file(path: str, params: dict, seed: int = 0) -> dict:
    """The baskerville-layout HDF5 of `params`'s model with its first head, from random
    weights, layer by layer."""
    import h5py

    from seqnn.model.build import unbuilt_model
    from seqnn.model.pretrained import _single_head_params

    rng = np.random.default_rng(seed)
    model = unbuilt_model(_single_head_params(params, 0, "borzoi")[0])  # trunk + human head
    counters, names, total = {}, [], 0
    with h5py.File(path, "w") as f:
        f.attrs["backend"], f.attrs["keras_version"] = "tensorflow", "2.15.0"
        f.attrs["model_config"] = json.dumps({"class_name": "Functional"})
        group = f.create_group("model_weights")
        for layer in model.layers:
            name = _keras2_name(layer, counters)
            names.append(name)
            g = group.create_group(name)
            weight_names = []
            for v in layer.weights:
                role = "/".join(p for p in v.path.split("/") if p != layer.name)
                # attention biases one level up (older TensorFlow), the others under the layer
                wname = f"{role}:0" if role.startswith("r_") else f"{name}/{role}:0"
                values = rng.standard_normal(tuple(v.shape), dtype=np.float32)
                values *= 1 / np.sqrt(max(values.shape[0], 1))
                g.create_dataset(wname, data=values)
                weight_names.append(wname)
                total += values.size
            g.attrs["weight_names"] = np.array(weight_names, dtype="S")
        group.attrs["layer_names"] = np.array(names, dtype="S")
        group.attrs["backend"], group.attrs["keras_version"] = "tensorflow", "2.15.0"
    return {"params": total}


def child(h5: str, params_path: str, out: str) -> None:
    import h5py

    from seqnn.model.build import save_model
    from seqnn.model.pretrained import import_baskerville, model_layers, read_layers

    tic = time.perf_counter()
    model, params, trunk = import_baskerville(h5, params_path)
    imported = time.perf_counter() - tic
    rss_import = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tic = time.perf_counter()
    save_model(model, out, params=params)
    saved = time.perf_counter() - tic
    # spot checks: first and last layers' tensors equal the file's
    with h5py.File(h5) as f:
        theirs, ours = read_layers(f, h5), model_layers(model)
        for i in (0, len(ours) // 2, -1):
            for (_, _, ref), (_, _, v) in zip(theirs[i].weights, ours[i].weights):
                assert np.array_equal(f[ref][()], np.asarray(v)), ref
    print(json.dumps({"import_s": round(imported, 2), "save_keras_s": round(saved, 2),
                      "peak_rss_import_mb": round(rss_import),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                           / 1024),
                      "trunk": trunk}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", help="working folder (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the files written")
    parser.add_argument("--child", nargs=3, metavar=("H5", "PARAMS", "OUT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    work = args.dir or tempfile.mkdtemp(prefix="bench_import.")
    os.makedirs(work, exist_ok=True)
    h5, params_path = os.path.join(work, "model0_best.h5"), os.path.join(work, "params.json")
    out = os.path.join(work, "model0.keras")
    params = borzoi_params()
    with open(params_path, "w") as f:
        json.dump(params, f)
    tic = time.perf_counter()
    written = write_file(h5, params)
    write_s = time.perf_counter() - tic
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run([sys.executable, __file__, "--child", h5, params_path, out],
                            capture_output=True, text=True, env=env)
    if result.returncode:
        sys.exit(result.stderr[-3000:])
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    print(json.dumps({"params": written["params"],
                      "weights_mb": round(written["params"] * 4 / 2**20),
                      "h5_mb": round(os.path.getsize(h5) / 2**20),
                      "keras_mb": round(os.path.getsize(out) / 2**20),
                      "write_h5_s": round(write_s, 2), "cores": os.cpu_count(), **figures}))
    if not args.keep:
        for path in (h5, params_path, out):
            os.remove(path)
        if not args.dir:
            os.rmdir(work)


if __name__ == "__main__":
    main()
