"""Commands that make data and train: demo, train, doctor.

Each `_add_*` registers a subcommand and its handler; a handler imports what it runs.
"""

from __future__ import annotations

import json

from seqnn.cli.options import COUNT, INDEX


def _add_demo(sub) -> None:
    cmd = sub.add_parser("demo", help="write the synthetic demo genome and tracks")
    cmd.add_argument("out_dir", nargs="?", default="resources/demo")
    cmd.add_argument("--seed", type=INDEX, default=7)
    cmd.set_defaults(func=_demo)


def _add_train(sub) -> None:
    cmd = sub.add_parser(
        "train", help="train on a Basenji/baskerville data directory",
        description="Train the params' model on DATA_DIR (statistics.json, targets.txt, "
        "tfrecords/ with train/valid/test or fold{k} shards). Writes model_best.keras, "
        "model_last.keras, history.tsv, tensorboard/ and checkpoint/ to OUT_DIR; run it again "
        "to resume an interrupted training.")
    cmd.add_argument("params", help="params JSON (train and model blocks)")
    cmd.add_argument("data_dir")
    cmd.add_argument("-o", "--out-dir", required=True)
    cmd.add_argument("--head", type=INDEX, help="head of a multi-head model to train")
    cmd.add_argument("--epochs", type=COUNT, help="cap on the epochs (train_epochs_max)")
    cmd.add_argument("--test-fold", type=INDEX, help="fold{k} data: held-out fold (default 0)")
    cmd.add_argument("--valid-fold", type=INDEX,
                     help="fold{k} data: validation fold (default test fold + 1 mod K)")
    cmd.add_argument("--seed", type=INDEX, default=0)
    cmd.add_argument("--mixed-precision", choices=["mixed_float16", "mixed_bfloat16"])
    cmd.add_argument("--jit-compile", choices=["true", "false", "auto"], default="false",
                     help="XLA compilation (auto: on GPUs)")
    cmd.add_argument("--gpu", action="store_true", help="fail unless a GPU is visible")
    cmd.add_argument("--threads", type=COUNT, help="TensorFlow CPU threads")
    cmd.add_argument("--restore", metavar="WEIGHTS",
                     help="start from pretrained weights: a seqnn .keras or a Basenji/baskerville "
                     ".h5; the params' transfer block sets what trains (default mode full)")
    cmd.add_argument("--trunk", action="store_true",
                     help="restore the trunk only (a trunk file, or a full model whose head is "
                     "dropped) under the params' new head")
    cmd.set_defaults(func=_train)


def _add_doctor(sub) -> None:
    cmd = sub.add_parser("doctor", help="list TensorFlow's devices and versions")
    cmd.add_argument("--gpu", action="store_true", help="fail unless a GPU is visible")
    cmd.set_defaults(func=_doctor)


def _demo(args, log) -> None:
    from seqnn.data.demo import make_demo

    log.info("demo: %s", make_demo(args.out_dir, seed=args.seed))


def _train(args, log) -> None:
    from seqnn.data.splits import data_splits
    from seqnn.train.loop import train

    jit = {"true": True, "false": False, "auto": "auto"}[args.jit_compile]
    summary = train(
        args.params, args.data_dir, args.out_dir,
        splits=data_splits(args.data_dir, args.test_fold, args.valid_fold), head=args.head,
        epochs=args.epochs, seed=args.seed, mixed_precision=args.mixed_precision,
        jit_compile=jit, gpu=args.gpu, threads=args.threads, restore=args.restore,
        trunk=args.trunk,
    )
    print(json.dumps(summary))


def _doctor(args, log) -> None:
    from seqnn.train.runtime import doctor

    report = doctor()
    print(f"tensorflow {report['tensorflow']} (CUDA build: {report['cuda_build']}), "
          f"keras {report['keras']}")
    for dev in report["devices"]:
        extra = (f"  {dev['model']} (compute capability {dev['compute_capability']})"
                 if dev.get("model") else "")
        print(f"{dev['name']}{extra}")
    c = report["cpu"]
    flags = ", ".join(f for f in ("avx2", "avx512f") if c[f]) or "no AVX2"
    print(f"cpu: {c['cpu']} ({c['machine']}, {flags}): {c['conv_kernels']} convolution kernels "
          f"(from {c['conv_kernels_from']})")
    if args.gpu:
        doctor(gpu=True)
    log.info("doctor: %d GPU(s) visible", report["gpus"])


COMMANDS = (_add_demo, _add_train, _add_doctor)
