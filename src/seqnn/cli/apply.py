"""Commands that apply models: evaluate, predict, interpret, variants.

Each `_add_*` registers a subcommand and its handler; a handler imports what it runs.
"""

from __future__ import annotations

import json

from seqnn.cli.options import (
    COUNT,
    INDEX,
    ensemble_options,
    inputs,
    items,
    member_options,
    parse_shifts,
    position_options,
    positive,
    track_options,
    window,
)


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
    ensemble_options(cmd, batch_size=8, head=False)
    cmd.add_argument("--peaks", action="store_true",
                     help="AUROC/AUPRC of non-binary tracks against called peaks")
    cmd.add_argument("--tss", help="BED of TSSs (or any regions) for per-gene accuracy")
    cmd.add_argument("--tss-window", type=COUNT, default=1024, help="bp summed per region")
    cmd.add_argument("--save-predictions", action="store_true",
                     help="also write OUT/predictions.h5")
    member_options(cmd, return_all="predictions.h5 also holds every member's predictions")
    position_options(cmd, "predictions.h5")
    cmd.add_argument("--tracks", type=items,
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
    ensemble_options(cmd, batch_size=32)
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
    track_options(cmd)
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
    member_options(cmd, return_all="windows.h5 also holds every member's predictions")
    position_options(cmd, "windows.h5")
    cmd.set_defaults(func=_predict)


def _add_interpret(sub) -> None:
    cmd = sub.add_parser(
        "interpret", help="gradient maps and in-silico mutagenesis of BED regions",
        description="Centre a window of the models' seq_length on each BED region (its TSS with "
        "--tss) and write OUT/gradients.h5 (gradients of each track's centre-bin prediction "
        "w.r.t. the one-hot input), OUT/contrib/{track}.bw (input x gradient) and, with "
        "--ism-width, OUT/ism.h5 (every substitution of the centre bases); all averaged over "
        "the models, --rc and --shifts (see seqnn.apply.interpret).")
    inputs(cmd, "BED regions")
    track_options(cmd, sum_tracks=False)
    cmd.add_argument("--window", type=window,
                     help="bins aggregated: a width (default: 1/8, centred) or 'center' (the two "
                     "centre bins)")
    cmd.add_argument("--reduce", choices=["sum", "mean"], default="sum")
    cmd.add_argument("--statistic", choices=["aggregate", "log", "ratio"], default="aggregate",
                     help="differentiate the aggregate, log(aggregate + pseudo) or "
                     "log((aggregate + pseudo) / (denominator window's + pseudo))")
    cmd.add_argument("--untransform", action="store_true",
                     help="undo the tracks' coverage transform before aggregating")
    cmd.add_argument("--pseudo", type=positive, default=1.0, help="pseudo-count of log and ratio")
    cmd.add_argument("--denominator", type=window,
                     help="the ratio's window: a width, centred (default: all bins)")
    cmd.add_argument("--layer", help="also OUT/layer.h5: the layer's activations and the "
                     "gradients w.r.t. them (see seqnn.apply.hidden)")
    member_options(cmd, return_all="gradients.h5 also holds every member's gradients")
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
    inputs(cmd, "VCF (plain or bgzipped)")
    track_options(cmd)
    cmd.set_defaults(func=_variants)


def _evaluate(args, log) -> None:
    from seqnn.apply.evaluate import evaluate

    shifts = parse_shifts(args.shifts)
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

    shifts = parse_shifts(args.shifts)
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
               "reduce": args.reduce, "rc": args.rc, "shifts": parse_shifts(args.shifts),
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
        args.models, args.fasta, args.input, args.out, rc=args.rc, shifts=parse_shifts(args.shifts),
        batch_size=args.batch_size, head=args.head, tracks=args.tracks,
        sum_tracks=args.sum_tracks, threads=args.threads)))


COMMANDS = (_add_evaluate, _add_predict, _add_interpret, _add_variants)
