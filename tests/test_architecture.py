"""The package's layers: one dependency direction (data <- model <- train <- apply), Keras-free
modules importable with TensorFlow blocked, and model files of earlier releases still loading."""

import ast
import subprocess
import sys

import numpy as np
import pytest
from helpers import REPO

SRC = REPO / "src" / "seqnn"
# subpackage -> the subpackages it may import from (besides the top-level modules)
ALLOWED = {
    "data": set(),
    "model": {"data"},
    "train": {"data", "model"},
    "apply": {"data", "model", "train"},
    "plots": {"data", "apply"},
}
TOP = {"config", "io", "log"}  # top-level modules every subpackage may use
KERAS_FREE = [
    "seqnn", "seqnn.config", "seqnn.io", "seqnn.log", "seqnn.cli",
    *(f"seqnn.data.{p.stem}" for p in sorted((SRC / "data").glob("*.py"))),
    "seqnn.model.keys", "seqnn.model.defaults", "seqnn.model.geometry", "seqnn.model.spec",
    "seqnn.model.cpu",
    "seqnn.model.params", "seqnn.model.presets", "seqnn.model.published", "seqnn.train.gpus",
    "seqnn.train.options",
    "seqnn.apply.accuracy", "seqnn.apply.attribution", "seqnn.apply.gather", "seqnn.apply.motifs",
    "seqnn.apply.tiling",
    "seqnn.plots.style", "seqnn.plots.report", "seqnn.plots.interpret",
]
BLOCKER = """
import sys
class Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras", "jax", "torch"):
            raise ImportError(f"{name} is blocked in this test")
sys.meta_path.insert(0, Blocked())
"""


def imports(path):
    """(line, imported module, inside a function) for every seqnn import of a source file."""
    tree = ast.parse(path.read_text())
    inner = {id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)
             for n in ast.walk(f) if isinstance(n, ast.ImportFrom | ast.Import)}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("seqnn"):
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            yield node.lineno, names, id(node) in inner
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.startswith("seqnn")]
            if names:
                yield node.lineno, names, id(node) in inner


def test_dependency_direction():
    wrong = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).parts
        if len(rel) == 1 or rel[0] == "cli":
            continue  # top-level modules (nothing heavy, below) and the command line (everything)
        package = rel[0]
        for line, names, _ in imports(path):
            for name in names:
                parts = name.split(".")
                target = parts[1] if len(parts) > 1 else None
                if target in ALLOWED and target != package and target not in ALLOWED[package]:
                    wrong.append(f"{path.relative_to(REPO)}:{line} imports {name}")
                    break
    assert not wrong, "imports against data <- model <- train <- apply:\n" + "\n".join(wrong)


def test_imports_live_at_the_top_of_modules():
    """Function-level imports only in the command line's handlers (so --help is fast)
    and in `seqnn.load_model` (so `import seqnn` stays free of TensorFlow)."""
    lazy = {*(SRC / "cli").glob("*.py"), SRC / "__init__.py"}
    inner = [f"{p.relative_to(REPO)}:{line}" for p in SRC.rglob("*.py") if p not in lazy
             for line, _, nested in imports(p) if nested]
    assert not inner, "seqnn imports inside functions:\n" + "\n".join(inner)


def test_top_level_modules_stay_light():
    for name in TOP:
        for _, names, _ in imports(SRC / f"{name}.py"):
            assert all(n.split(".")[1] in TOP | {"SeqnnError"} for n in names if "." in n), name


@pytest.mark.parametrize("module", KERAS_FREE)
def test_keras_free_modules_import_with_tensorflow_blocked(module):
    code = BLOCKER + f"import {module}\n"
    if module == "seqnn.cli":  # the parser (every subcommand's options) needs no TensorFlow
        code += "import seqnn.cli as c\nc._parser().parse_args(['summary', '--help'])\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PYTHONPATH": str(REPO / "src")})
    assert out.returncode == 0 or (module == "seqnn.cli" and "usage:" in out.stdout), out.stderr


def test_model_files_of_the_flat_layout_load_and_predict_identically():
    """tests/data/legacy: micro borzoi and conv_transformer models (seeded random weights) saved
    by the code before the subpackages, with that code's predictions on fixed sequences."""
    from seqnn.model.build import load_model

    legacy = REPO / "tests" / "data" / "legacy"
    reference = np.load(legacy / "reference.npz")
    x = np.eye(5, 4, dtype="float32")[reference["codes"]]
    for name in ("borzoi", "conv_transformer"):
        model, meta = load_model(legacy / f"{name}_micro.keras")
        assert meta["params"]["preset"]["name"] == name and len(meta["targets"]) == 4
        np.testing.assert_allclose(np.asarray(model(x, training=False)), reference[name],
                                   rtol=1e-5, atol=1e-6)
