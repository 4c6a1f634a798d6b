"""The `seqnn` command."""

from __future__ import annotations

import argparse
import json
import re
import sys

# "--shifts -1,0,1": read as a value, not as an option
SHIFTS = re.compile(r"^-\d+(,-?\d+)*$")
TRACKS_HELP = ("tracks, comma-separated: identifiers, row indices or regexes of the "
               "descriptions (default: all); the head is cut to them")
# each command's output argument, whether it names a folder, its name in messages
OUTPUTS = {"demo": ("out_dir", True, "OUT_DIR"), "train": ("out_dir", True, "-o"),
           "evaluate": ("out_dir", True, "-o"), "predict": ("out_dir", True, "-o"),
           "interpret": ("out", True, "-o"), "variants": ("out", False, "-o"),
           "import": ("output", False, "-o")}


def _at_least(low: int):
    """An argparse type: an integer >= `low`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer >= {low}; give one")
        return value

    return parse


COUNT, INDEX = _at_least(1), _at_least(0)  # sizes and counts; indices, seeds and bp offsets


def _positive(text: str) -> float:
    """An argparse type: a number > 0."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number > 0; give one")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seqnn", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_demo, _add_summary, _add_train, _add_doctor, _add_evaluate, _add_predict,
                _add_interpret, _add_variants, _add_import, _add_filters):
        add(sub)
    return parser


def _add_demo(sub) -> None:
    cmd = sub.add_parser("demo", help="write the synthetic demo genome and tracks")
    cmd.add_argument("out_dir", nargs="?", default="resources/demo")
    cmd.add_argument("--seed", type=INDEX, default=7)
    cmd.set_defaults(func=_demo)


def _add_summary(sub) -> None:
    cmd = sub.add_parser("summary", help="build a params file's or preset's model and "
                         "describe it")
    cmd.add_argument("params", nargs="?", help="params JSON (train and model blocks)")
    cmd.add_argument("--preset", help="a preset name instead (e.g. enformer)")
    cmd.add_argument("--size", help="a named size of the preset (e.g. micro)")
    cmd.add_argument("--scale", action="append", default=[], type=_scale_item,
                     metavar="KEY=VALUE", help="a preset scale key (e.g. width=64); repeat")
    cmd.add_argument("--json", action="store_true",
                     help="print only {output_shape, trainable_params, non_trainable_params}; "
                     "with a transfer block in the params, as fine-tuning sees them")
    cmd.set_defaults(func=_summary)


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


def _add_evaluate(sub) -> None:
    cmd = sub.add_parser(
        "evaluate", help="accuracy of model(s) on a split of a Basenji/baskerville data directory",
        description="Predict every sequence of a split of DATA_DIR (averaged over --rc, --shifts "
        "and the models given) and write OUT/acc.tsv (per track: Pearson r, R2, Spearman r, "
        "Pearson r and R2 untransformed, AUROC/AUPRC) and OUT/examples.h5"
        " (see seqnn.apply.evaluate).")
    cmd.add_argument("models", nargs="+", metavar="MODEL",
                     help=".keras model file(s); several are averaged")
    cmd.add_argument("data_dir", metavar="DATA_DIR")
    cmd.add_argument("-o", "--out-dir", required=True)
    cmd.add_argument("--split", default="test", help="split label: test, fold{k}, ...")
    _ensemble_options(cmd, batch_size=8, head=False)
    cmd.add_argument("--peaks", action="store_true",
                     help="AUROC/AUPRC of non-binary tracks against called peaks")
    cmd.add_argument("--tss", help="BED of TSSs (or any regions) for per-gene accuracy")
    cmd.add_argument("--tss-window", type=COUNT, default=1024, help="bp summed per region")
    cmd.add_argument("--save-predictions", action="store_true",
                     help="also write OUT/predictions.h5")
    _member_options(cmd, return_all="predictions.h5 also holds every member's predictions")
    _position_options(cmd, "predictions.h5")
    cmd.add_argument("--tracks", type=_items,
                     help="the models' tracks that DATA_DIR's rows are, in order (identifiers, "
                     "indices or description regexes, comma-separated; default: all); e.g. a "
                     "published model on your tracks")
    cmd.set_defaults(func=_evaluate)


def _add_predict(sub) -> None:
    cmd = sub.add_parser(
        "predict", help="predict tracks genome-wide (or over BED regions) into bigWigs",
        description="Tile the FASTA's chromosomes (or the --bed regions) with windows of the "
        "models' seq_length, predict with every model (averaged over --rc and --shifts), stitch "
        "and write OUT/{track}.bw and OUT/predictions.h5, plus the optional outputs below "
        "(see seqnn.apply.predict).")
    cmd.add_argument("models", nargs="+", metavar="MODEL",
                     help=".keras model file(s); several are averaged (fold order)")
    cmd.add_argument("--fasta", required=True, help="indexed genome FASTA")
    cmd.add_argument("-o", "--out-dir", required=True)
    cmd.add_argument("--bed", help="predict only these regions (default: every chromosome)")
    _ensemble_options(cmd, batch_size=32)
    cmd.add_argument("--overlap", type=INDEX,
                     help="bp shared by neighbouring windows' predictions (default 1/4)")
    cmd.add_argument("--stitch", choices=["centre", "average"], default="centre",
                     help="overlapping bins: from the most central window, or averaged")
    cmd.add_argument("--transformed", action="store_true",
                     help="write the model's (transformed) values, not the input's units")
    cmd.add_argument("--variance", action="store_true",
                     help="also OUT/variance/{track}.bw: variance across models x TTA")
    cmd.add_argument("--cross-fold", metavar="CONTIGS_BED",
                     help="predict each fold-k contig of contigs.bed with model k only")
    _track_options(cmd)
    cmd.add_argument("--regions-h5", action="store_true",
                     help="also OUT/regions.h5: the bins of each --bed region")
    cmd.add_argument("--tss", help="BED6 of TSSs: OUT/tss.tsv, per-track mean near each")
    cmd.add_argument("--tss-window", type=INDEX, default=1000, help="bp each side of a TSS")
    cmd.add_argument("--embed", metavar="BED",
                     help="also OUT/embeddings.h5: a layer's output for windows on these")
    cmd.add_argument("--embed-layer", help="layer name (default: the penultimate)")
    cmd.add_argument("--jit-compile", action="store_true",
                     help="run the models through XLA (compiled once per run)")
    cmd.add_argument("--windows", metavar="BED",
                     help="also OUT/windows.h5: each seq_length window centred on these, "
                     "predicted whole (see seqnn.apply.windows)")
    _member_options(cmd, return_all="windows.h5 also holds every member's predictions")
    _position_options(cmd, "windows.h5")
    cmd.set_defaults(func=_predict)


def _add_interpret(sub) -> None:
    cmd = sub.add_parser(
        "interpret", help="gradient maps and in-silico mutagenesis of BED regions",
        description="Centre a window of the models' seq_length on each BED region (its TSS with "
        "--tss) and write OUT/gradients.h5 (gradients of each track's centre-bin prediction "
        "w.r.t. the one-hot input), OUT/contrib/{track}.bw (input x gradient) and, with "
        "--ism-width, OUT/ism.h5 (every substitution of the centre bases); all averaged over "
        "the models, --rc and --shifts (see seqnn.apply.interpret).")
    _inputs(cmd, "BED regions")
    _track_options(cmd, sum_tracks=False)
    cmd.add_argument("--window", type=_window,
                     help="bins aggregated: a width (default: 1/8, centred) or 'center' (the two "
                     "centre bins)")
    cmd.add_argument("--reduce", choices=["sum", "mean"], default="sum")
    cmd.add_argument("--statistic", choices=["aggregate", "log", "ratio"], default="aggregate",
                     help="differentiate the aggregate, log(aggregate + pseudo) or "
                     "log((aggregate + pseudo) / (denominator window's + pseudo))")
    cmd.add_argument("--untransform", action="store_true",
                     help="undo the tracks' coverage transform before aggregating")
    cmd.add_argument("--pseudo", type=_positive, default=1.0, help="pseudo-count of log and ratio")
    cmd.add_argument("--denominator", type=_window,
                     help="the ratio's window: a width, centred (default: all bins)")
    cmd.add_argument("--layer", help="also OUT/layer.h5: the layer's activations and the "
                     "gradients w.r.t. them (see seqnn.apply.hidden)")
    _member_options(cmd, return_all="gradients.h5 also holds every member's gradients")
    cmd.add_argument("--tss", action="store_true",
                     help="BED6 TSSs: centre on each, use the track of its strand")
    cmd.add_argument("--ism-width", type=INDEX, default=0,
                     help="bp mutated at each window's centre (0: no ISM)")
    cmd.set_defaults(func=_interpret)


def _add_variants(sub) -> None:
    cmd = sub.add_parser(
        "variants", help="variant effects of a VCF (SAD, logFC, D1, D2 per track)",
        description="Predict reference and alternative windows centred on each variant of the "
        "VCF and write OUT (HDF5): per variant and track SAD, logFC, D1, D2, averaged over the "
        "models, --rc and --shifts; skipped variants are counted (see seqnn.apply.variants).")
    _inputs(cmd, "VCF (plain or bgzipped)")
    _track_options(cmd)
    cmd.set_defaults(func=_variants)


def _add_import(sub) -> None:
    cmd = sub.add_parser(
        "import", help="import published weights (Basenji/baskerville .h5, Enformer) as .keras",
        description="Build the model of --params with seqnn's own blocks, copy the published "
        "weights in and write one .keras file that carries the params, the track sheet and the "
        "geometry, so predict, evaluate, interpret and variants take it like a trained model "
        "(see seqnn.model.pretrained).")
    cmd.add_argument("--weights", required=True,
                     help="a Basenji/baskerville SeqNN.save .h5 (full model or trunk), or an "
                     "Enformer directory (config.json + weights)")
    cmd.add_argument("--params", help="the params JSON the .h5 was trained with")
    cmd.add_argument("--targets", help="the head's targets.txt (default: tracks t0..tN-1)")
    cmd.add_argument("--head", type=INDEX,
                     help="which head of the params the file's head is (default 0)")
    cmd.add_argument("--format", help="baskerville or enformer (default: from --weights)")
    cmd.add_argument("-o", "--output", required=True, help="the .keras file to write")
    cmd.set_defaults(func=_import)


def _add_filters(sub) -> None:
    cmd = sub.add_parser(
        "filters", help="a model's first-layer filters as PWMs (MEME) and logos",
        description="Write the first convolution's filters (or --layer's) of MODEL as position "
        "weight matrices: OUT/filters.meme (MEME format, for Tomtom and other motif tools), "
        "OUT/filters.npy (the raw weights) and OUT/logos.png (see seqnn.apply.filters).")
    cmd.add_argument("model", metavar="MODEL", help="a .keras model file")
    cmd.add_argument("-o", "--out-dir", required=True)
    cmd.add_argument("--layer", help="a Conv1D layer's name (default: the first convolution)")
    cmd.add_argument("--span", type=_positive, default=3.0,
                     help="nats spanned by each filter's widest column (the PWM's sharpness)")
    cmd.set_defaults(func=_filters)


def _inputs(parser, what: str) -> None:
    """Arguments `interpret` and `variants` share."""
    parser.add_argument("models", nargs="+", metavar="MODEL",
                        help=".keras model file(s); several are averaged")
    parser.add_argument("--fasta", required=True, help="indexed genome FASTA")
    parser.add_argument("--input", required=True, help=what)
    parser.add_argument("-o", "--out", required=True,
                        help="output folder (interpret) or HDF5 file (variants)")
    _ensemble_options(parser, batch_size=8)


def _ensemble_options(parser, batch_size: int, head: bool = True) -> None:
    """Options of the commands that run model ensembles: augmentation, batch, head, threads."""
    parser._negative_number_matcher = SHIFTS
    parser.add_argument("--rc", action="store_true", help="also average reverse complements")
    parser.add_argument("--shifts", default="0", help="bp shifts averaged, e.g. -1,0,1")
    parser.add_argument("--batch-size", type=COUNT, default=batch_size)
    if head:
        parser.add_argument("--head", type=INDEX, help="head of a multi-head model")
    parser.add_argument("--threads", type=COUNT, help="TensorFlow CPU threads")


def _member_options(parser, return_all: str) -> None:
    """Monte-Carlo dropout members and every member's output."""
    parser.add_argument("--mc-n", type=INDEX, default=0,
                        help="Monte-Carlo dropout passes per augmentation (0: none)")
    parser.add_argument("--seed", type=INDEX, default=0, help="of the dropout masks and samples")
    parser.add_argument("--return-all", action="store_true", help=return_all)


def _position_options(parser, where: str) -> None:
    """The output dtype and the bins kept of per-window outputs."""
    parser.add_argument("--dtype", choices=["float32", "float16", "bfloat16"],
                        default="float32", help="of the predictions (float16 fails above "
                        "65,504; bfloat16 is stored as float32)")
    parser.add_argument("--step", type=COUNT, default=1, help=f"keep every k-th bin in {where}")
    parser.add_argument("--sample-bins", type=COUNT,
                        help=f"keep a seeded uniform sample of this many bins in {where}")


def _window(text: str):
    """--window: 'center' or a width in bins."""
    return text if text == "center" else COUNT(text)


def _items(text: str) -> list[str]:
    return text.split(",")


def _track_options(parser, sum_tracks: bool = True) -> None:
    parser.add_argument("--tracks", type=_items, help=TRACKS_HELP)
    if sum_tracks:
        parser.add_argument("--sum-tracks", action="store_true",
                            help="one output: the sum of --tracks (Basenji's target_sum)")


def _scale_item(text: str) -> tuple:
    """`KEY=VALUE` with VALUE parsed as JSON where it can be (numbers, lists, mappings)."""
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _summary(args, log) -> None:
    from seqnn import SeqnnError
    from seqnn.model.build import build_parts
    from seqnn.model.params import receptive_field, transfer_options
    from seqnn.model.presets import load_params, resolve_model
    from seqnn.model.transfer import transfer_model, transfer_summary

    if (args.params is None) == (args.preset is None):
        raise SeqnnError("summary: give a params file or --preset NAME (one of them)")
    if args.preset:
        params = resolve_model(args.preset, size=args.size, **dict(args.scale))
    elif args.size or args.scale:
        raise SeqnnError("summary: --size and --scale apply to --preset only")
    else:
        params = load_params(args.params)
    if args.json:
        print(json.dumps(transfer_summary(params)))
        return
    model, trunk = build_parts(params)
    opts = transfer_options(params, args.params or "params")
    if opts is not None:
        model = transfer_model(model, trunk, opts)
        print(f"transfer: {json.dumps(opts)}")
    model.summary()
    shapes = [tuple(o.shape) for o in model.outputs]
    print(f"output shape: {shapes[0] if len(shapes) == 1 else shapes}")
    print(f"trainable params: {sum(int(w.numpy().size) for w in model.trainable_weights):,}")
    print(f"non-trainable params: "
          f"{sum(int(w.numpy().size) for w in model.non_trainable_weights):,}")
    field = receptive_field(params)
    print(f"receptive field: {'whole input' if field is None else f'{field:,} bp'}")
    if "preset" in params:
        print(f"preset: {json.dumps(params['preset'])}")


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
    if args.gpu:
        doctor(gpu=True)
    log.info("doctor: %d GPU(s) visible", report["gpus"])


def _shifts(text: str) -> list[int]:
    """The integers of --shifts, e.g. -1,0,1."""
    from seqnn import SeqnnError

    try:
        return [int(s) for s in text.split(",")]
    except ValueError:
        raise SeqnnError(f"--shifts {text}: expected integers such as -1,0,1") from None


def _evaluate(args, log) -> None:
    from seqnn.apply.evaluate import evaluate

    shifts = _shifts(args.shifts)
    summary = evaluate(
        args.models, args.data_dir, args.out_dir, split=args.split, rc=args.rc, shifts=shifts,
        batch_size=args.batch_size, peaks=args.peaks, tss=args.tss, tss_window=args.tss_window,
        save_predictions=args.save_predictions, tracks=args.tracks,
        threads=args.threads, mc_n=args.mc_n, seed=args.seed, dtype=args.dtype,
        step=args.step, sample_bins=args.sample_bins, return_all=args.return_all,
    )
    print(json.dumps(summary))


def _predict(args, log) -> None:
    import os

    from seqnn.apply.predict import predict
    from seqnn.apply.windows import predict_windows

    shifts = _shifts(args.shifts)
    summary = predict(
        args.models, args.fasta, args.out_dir, bed=args.bed, rc=args.rc, shifts=shifts,
        overlap=args.overlap, stitch=args.stitch, untransform=not args.transformed,
        variance=args.variance, contigs=args.cross_fold, batch_size=args.batch_size,
        head=args.head, tracks=args.tracks, sum_tracks=args.sum_tracks,
        regions_h5=args.regions_h5, tss_bed=args.tss,
        tss_window=args.tss_window, embed_bed=args.embed, embed_layer=args.embed_layer,
        threads=args.threads, jit_compile=args.jit_compile, mc_n=args.mc_n, seed=args.seed,
        dtype=args.dtype,
    )
    if args.windows:
        summary["windows"] = predict_windows(
            args.models, args.fasta, args.windows, os.path.join(args.out_dir, "windows.h5"),
            rc=args.rc, shifts=shifts, mc_n=args.mc_n, seed=args.seed,
            untransform=not args.transformed, variance=args.variance,
            return_all=args.return_all, dtype=args.dtype, step=args.step,
            sample=args.sample_bins, batch_size=args.batch_size, head=args.head,
            tracks=args.tracks, sum_tracks=args.sum_tracks, threads=args.threads)
    print(json.dumps(summary))


def _interpret(args, log) -> None:
    import os

    from seqnn.apply.hidden import layer_maps
    from seqnn.apply.interpret import gradient_maps, ism

    options = {"tracks": args.tracks, "window": args.window,
               "reduce": args.reduce, "rc": args.rc, "shifts": _shifts(args.shifts),
               "tss": args.tss, "batch_size": args.batch_size, "head": args.head,
               "threads": args.threads}
    grad = {"mc_n": args.mc_n, "seed": args.seed, "statistic": args.statistic,
            "untransform": args.untransform, "pseudo": args.pseudo,
            "denominator": args.denominator}
    summary = {}
    if args.ism_width:  # first: a width the windows cannot hold stops it before any output
        summary["ism"] = ism(args.models, args.fasta, args.input,
                             os.path.join(args.out, "ism.h5"), window_bp=args.ism_width,
                             **options)
    summary["gradients"] = gradient_maps(
        args.models, args.fasta, args.input, os.path.join(args.out, "gradients.h5"),
        bigwig_dir=os.path.join(args.out, "contrib"), return_all=args.return_all, **options,
        **grad)
    if args.layer:
        summary["layer"] = layer_maps(args.models, args.fasta, args.input,
                                      os.path.join(args.out, "layer.h5"), args.layer,
                                      **options, **grad)
    print(json.dumps(summary))


def _variants(args, log) -> None:
    from seqnn.apply.variants import score_vcf

    print(json.dumps(score_vcf(
        args.models, args.fasta, args.input, args.out, rc=args.rc, shifts=_shifts(args.shifts),
        batch_size=args.batch_size, head=args.head, tracks=args.tracks,
        sum_tracks=args.sum_tracks, threads=args.threads)))


def _demo(args, log) -> None:
    from seqnn.data.demo import make_demo

    log.info("demo: %s", make_demo(args.out_dir, seed=args.seed))


def _import(args, log) -> None:
    from seqnn.model.pretrained import import_model

    print(json.dumps(import_model(args.weights, args.output, params=args.params,
                                  targets=args.targets, head=args.head, format=args.format)))


def _filters(args, log) -> None:
    import os

    import numpy as np

    from seqnn.apply.filters import read_meme, write_filters
    from seqnn.plots.filters import filter_logos
    from seqnn.plots.style import save

    summary = write_filters(args.model, args.out_dir, layer=args.layer, span=args.span)
    pwms = read_meme(os.path.join(args.out_dir, "filters.meme"))
    save(filter_logos(np.stack(list(pwms.values())), list(pwms)),
         os.path.join(args.out_dir, "logos.png"))
    print(json.dumps(summary))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    from seqnn.io import check_output
    from seqnn.log import logged

    try:
        with logged() as log:
            if args.command in OUTPUTS:  # before any work
                name, folder, label = OUTPUTS[args.command]
                check_output(getattr(args, name), folder, label)
            args.func(args, log)
    except KeyboardInterrupt:
        again = ("run it again to resume after the last finished epoch" if args.command ==
                 "train" else "unfinished outputs were removed; run it again")
        print(f"seqnn {args.command}: interrupted; {again}", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
