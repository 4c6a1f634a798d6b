"""Variant scoring speed on an imported Basenji2-like model: prints JSON figures.

    python benchmarks/bench_variants.py [--snps 500] [--threads 2] [--tracks t0,t1]

`seqnn import`s the basenji_mini reference model of ../shared/data/pretrained (Basenji2-like:
conv_dna, conv tower, dilated residuals, crop, conv_block; 4,096 bp in, 112 bins of 32 bp;
baskerville's own file), writes a random 1 Mb genome and a VCF of `snps` SNPs (REF from the
genome, a random other ALT) and runs `seqnn variants` on it with --rc and --shifts -1,0,1
(6 members per allele) in a fresh process, as a user would. Prints the command's wall
seconds (TensorFlow's start included), the scoring seconds it logs, and SNPs per second.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MINI = os.path.join(os.path.dirname(REPO), "shared", "data", "pretrained", "basenji_mini")


def write_inputs(tmp: str, snps: int) -> tuple[str, str]:
    rng = np.random.default_rng(0)
    seq = rng.choice(list("ACGT"), 1_000_000)
    fasta, vcf = os.path.join(tmp, "genome.fa"), os.path.join(tmp, "snps.vcf")
    with open(fasta, "w") as f:
        f.write(">chr1\n" + "\n".join("".join(seq[i : i + 80]) for i in range(0, len(seq), 80))
                + "\n")
    positions = np.sort(rng.choice(np.arange(5000, len(seq) - 5000), snps, replace=False))
    with open(vcf, "w") as f:
        f.write("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
        for i, pos in enumerate(positions):
            ref = seq[pos - 1]
            alt = rng.choice([b for b in "ACGT" if b != ref])
            f.write(f"chr1\t{pos}\tsnp{i}\t{ref}\t{alt}\t.\t.\t.\n")
    return fasta, vcf


def seqnn(*args: str) -> tuple[float, str]:
    env = {**os.environ, "PYTHONPATH": os.path.join(REPO, "src"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    tic = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "seqnn.cli", *args], env=env, check=True,
                         capture_output=True, text=True)
    return time.perf_counter() - tic, out.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--snps", type=int, default=500)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--tracks", help="--tracks of seqnn variants (default: all 4)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fasta, vcf = write_inputs(tmp, args.snps)
        model = os.path.join(tmp, "basenji_mini.keras")
        seqnn("import", "--weights", os.path.join(MINI, "model0.h5"), "--params",
              os.path.join(MINI, "params.json"), "-o", model)
        command = ["variants", model, "--fasta", fasta, "--input", vcf, "-o",
                   os.path.join(tmp, "scores.h5"), "--rc", "--shifts", "-1,0,1",
                   "--batch-size", str(args.batch_size), "--threads", str(args.threads)]
        command += ["--tracks", args.tracks] if args.tracks else []
        wall, stdout = seqnn(*command)
    counts = json.loads(stdout.strip().splitlines()[-1])
    print(json.dumps({"snps": args.snps, "scored": counts["scored"], "members": 6,
                      "threads": args.threads, "command": "seqnn " + " ".join(command[:1] + [
                          "MODEL", "--rc", "--shifts", "-1,0,1"]),
                      "wall_s": round(wall, 2), "scoring_s": counts["seconds"],
                      "snps_per_s": round(counts["scored"] / counts["seconds"], 1)}))


if __name__ == "__main__":
    main()
