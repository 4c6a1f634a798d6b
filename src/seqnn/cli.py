"""The `seqnn` command."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="seqnn", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="write the synthetic demo genome and tracks")
    demo.add_argument("out_dir", nargs="?", default="resources/demo")
    demo.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    from seqnn.log import logged

    with logged() as log:
        if args.command == "demo":
            from seqnn.demo import make_demo

            log.info("demo: %s", make_demo(args.out_dir, seed=args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
