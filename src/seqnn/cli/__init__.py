"""The `seqnn` command: one subcommand per task (`seqnn --help`), each a thin shell over the
library. `seqnn.cli.train`, `.model` and `.apply` register the subcommands; their handlers
import the library only when they run, so `--help` and argument errors need no TensorFlow."""

from __future__ import annotations

import argparse
import sys

from seqnn.cli import apply, model, train

# each command's output argument, whether it names a folder, its name in messages
OUTPUTS = {"demo": ("out_dir", True, "OUT_DIR"), "train": ("out_dir", True, "-o"),
           "evaluate": ("out_dir", True, "-o"), "predict": ("out_dir", True, "-o"),
           "interpret": ("out", True, "-o"), "variants": ("out", False, "-o"),
           "import": ("output", False, "-o")}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seqnn", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (*train.COMMANDS, *model.COMMANDS, *apply.COMMANDS):
        add(sub)
    return parser


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
