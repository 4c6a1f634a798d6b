# Training: one model per cross-validation fold (test fold k, valid fold k+1 mod K), or one
# model f0 on the train/valid splits when data.folds is 0. Resume state lives in
# results/models/f{fold}/checkpoint/ (not a declared output, so a killed job keeps it and the
# next run continues after its last finished epoch). With model.pretrained, import_model writes
# the published model once (results/models/pretrained/model.keras): used as it is, or, with a
# `transfer` block, fine-tuned per fold from it.

from seqnn.data.splits import fold_splits


wildcard_constraints:
    fold="[0-9]+",


if IMPORTED:

    rule import_model:
        input:
            weights=PRETRAINED["weights"],
            params=optional(PRETRAINED["params"]),
            targets=PRETRAINED["targets"],
        output:
            PRETRAINED_FILE,
        params:
            format=PRETRAINED_MODEL["format"],
            head=PRETRAINED["head"],
        log:
            "results/logs/import_model.log",
        benchmark:
            "results/benchmarks/import_model.tsv"
        resources:
            mem_mb=TRAIN["mem_mb"],
            runtime=60,
        conda:
            "../envs/seqnn.yaml"
        script:
            "../scripts/import_model.py"


if not NO_TRAINING:

    rule train:
        input:
            params=MODEL_FILE or [],
            weights=PRETRAINED_FILE if PRETRAINED else [],
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
                {**MODEL, "preset": input.params}
                if isinstance(MODEL, dict) and not PRETRAINED
                else input.params or None
            ),
            transfer=TRANSFER,
            splits=lambda wc: vars(fold_splits(DATA["folds"], int(wc.fold))),
            options={
                "head": TRAIN["head"],
                "epochs": TRAIN["epochs"],
                "seed": TRAIN["seed"],
                "mixed_precision": TRAIN["mixed_precision"],
                "jit_compile": TRAIN["jit_compile"],
                "gpu": TRAIN["gpu"],
            },
        log:
            "results/logs/train/f{fold}.log",
        benchmark:
            "results/benchmarks/train/f{fold}.tsv"
        threads: step_threads("train", len(MODEL_FOLDS))
        resources:
            gpu=1 if TRAIN["gpu"] else 0,
            mem_mb=TRAIN["mem_mb"],
            runtime=TRAIN["runtime"],
        conda:
            "../envs/seqnn.yaml"
        script:
            "../scripts/train.py"
