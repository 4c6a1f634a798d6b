"""Argument types and options shared by the `seqnn` commands."""

from __future__ import annotations

import argparse
import json
import re

from seqnn import SeqnnError

# "--shifts -1,0,1": read as a value, not as an option
SHIFTS = re.compile(r"^-\d+(,-?\d+)*$")


TRACKS_HELP = ("tracks, comma-separated: identifiers, row indices or regexes of the "
               "descriptions (default: all); the head is cut to them")


def at_least(low: int):
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


COUNT, INDEX = at_least(1), at_least(0)  # sizes and counts; indices, seeds and bp offsets


def positive(text: str) -> float:
    """An argparse type: a number > 0."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number > 0; give one")
    return value


def inputs(parser, what: str) -> None:
    """Arguments `interpret` and `variants` share."""
    parser.add_argument("models", nargs="+", metavar="MODEL",
                        help=".keras model file(s); several are averaged")
    parser.add_argument("--fasta", required=True, help="indexed genome FASTA")
    parser.add_argument("--input", required=True, help=what)
    parser.add_argument("-o", "--out", required=True,
                        help="output folder (interpret) or HDF5 file (variants)")
    ensemble_options(parser, batch_size=8)


def ensemble_options(parser, batch_size: int, head: bool = True) -> None:
    """Options of the commands that run model ensembles: augmentation, batch, head, threads."""
    parser._negative_number_matcher = SHIFTS
    parser.add_argument("--rc", action="store_true", help="also average reverse complements")
    parser.add_argument("--shifts", default="0", help="bp shifts averaged, e.g. -1,0,1")
    parser.add_argument("--batch-size", type=COUNT, default=batch_size)
    if head:
        parser.add_argument("--head", type=INDEX, help="head of a multi-head model")
    parser.add_argument("--threads", type=COUNT, help="TensorFlow CPU threads")


def member_options(parser, return_all: str) -> None:
    """Monte-Carlo dropout members and every member's output."""
    parser.add_argument("--mc-n", type=INDEX, default=0,
                        help="Monte-Carlo dropout passes per augmentation (0: none)")
    parser.add_argument("--seed", type=INDEX, default=0, help="of the dropout masks and samples")
    parser.add_argument("--return-all", action="store_true", help=return_all)


def position_options(parser, where: str) -> None:
    """The output dtype and the bins kept of per-window outputs."""
    parser.add_argument("--dtype", choices=["float32", "float16", "bfloat16"],
                        default="float32", help="of the predictions (float16 fails above "
                        "65,504; bfloat16 is stored as float32)")
    parser.add_argument("--step", type=COUNT, default=1, help=f"keep every k-th bin in {where}")
    parser.add_argument("--sample-bins", type=COUNT,
                        help=f"keep a seeded uniform sample of this many bins in {where}")


def window(text: str):
    """--window: 'center' or a width in bins."""
    return text if text == "center" else COUNT(text)


def items(text: str) -> list[str]:
    return text.split(",")


def track_options(parser, sum_tracks: bool = True) -> None:
    parser.add_argument("--tracks", type=items, help=TRACKS_HELP)
    if sum_tracks:
        parser.add_argument("--sum-tracks", action="store_true",
                            help="one output: the sum of --tracks (Basenji's target_sum)")


def scale_item(text: str) -> tuple:
    """`KEY=VALUE` with VALUE parsed as JSON where it can be (numbers, lists, mappings)."""
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def parse_shifts(text: str) -> list[int]:
    """The integers of --shifts, e.g. -1,0,1."""

    try:
        return [int(s) for s in text.split(",")]
    except ValueError:
        raise SeqnnError(f"--shifts {text}: expected integers such as -1,0,1") from None
