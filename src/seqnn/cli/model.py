"""Commands on models: summary, import (published weights), filters.

Each `_add_*` registers a subcommand and its handler; a handler imports what it runs.
"""

from __future__ import annotations

import json

from seqnn.cli.options import INDEX, positive, scale_item


def _add_summary(sub) -> None:
    cmd = sub.add_parser("summary", help="build a params file's or preset's model and "
                         "describe it")
    cmd.add_argument("params", nargs="?", help="params JSON (train and model blocks)")
    cmd.add_argument("--preset", help="a preset name instead (e.g. enformer)")
    cmd.add_argument("--size", help="a named size of the preset (e.g. micro)")
    cmd.add_argument("--scale", action="append", default=[], type=scale_item,
                     metavar="KEY=VALUE", help="a preset scale key (e.g. width=64); repeat")
    cmd.add_argument("--json", action="store_true",
                     help="print only {output_shape, trainable_params, non_trainable_params}; "
                     "with a transfer block in the params, as fine-tuning sees them")
    cmd.set_defaults(func=_summary)


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
    cmd.add_argument("--span", type=positive, default=3.0,
                     help="nats spanned by each filter's widest column (the PWM's sharpness)")
    cmd.set_defaults(func=_filters)


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


COMMANDS = (_add_summary, _add_import, _add_filters)
