# Training: one model per cross-validation fold (test fold k, valid fold k+1 mod K), or one
# model f0 on the train/valid splits when data.folds is 0. Resume state lives in
# results/models/f{fold}/checkpoint/ (not a declared output, so a killed job keeps it and the
# next run continues after its last finished epoch).

from seqnn.data.splits import fold_splits


wildcard_constraints:
    fold="[0-9]+",


rule train:
    input:
        params=MODEL_FILE,
        stats="results/data/statistics.json",
        targets="results/data/targets.txt",
        records=lambda wc: expand(
            "results/data/tfrecords/{label}.json",
            label=fold_splits(DATA["folds"], int(wc.fold)).labels(),
        ),
    output:
        best="results/models/f{fold}/model_best.keras",
        last="results/models/f{fold}/model_last.keras",
        history="results/models/f{fold}/history.tsv",
    params:
        model=lambda w, input: (
            {**MODEL, "preset": input.params} if isinstance(MODEL, dict) else input.params
        ),
        splits=lambda wc: vars(fold_splits(DATA["folds"], int(wc.fold))),
        options={
            "head": TRAIN.get("head"),
            "epochs": TRAIN.get("epochs"),
            "seed": TRAIN.get("seed", 0),
            "mixed_precision": TRAIN.get("mixed_precision"),
            "jit_compile": TRAIN.get("jit_compile", False),
            "gpu": TRAIN.get("gpu", False),
        },
    log:
        "results/logs/train/f{fold}.log",
    benchmark:
        "results/benchmarks/train/f{fold}.tsv"
    threads: TRAIN.get("threads", 8)
    resources:
        gpu=1 if TRAIN.get("gpu", False) else 0,
        mem_mb=TRAIN.get("mem_mb", 16000),
        runtime=TRAIN.get("runtime", 1440),
    conda:
        "../envs/seqnn.yaml"
    script:
        "../scripts/train.py"
