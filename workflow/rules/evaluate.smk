# Evaluation: each fold's model on its test fold, predictions averaged over reverse complements
# and shifts (results/eval/f{k}/), the ensemble of the models that did not train on fold k
# (results/eval/ensemble/f{k}/: f{k} and f{k-1}, which validated on it), and one table across
# folds (results/eval/cv_summary.tsv). Metrics and their aggregation: seqnn.apply.accuracy.
# With model.pretrained, the imported model is evaluated on every fold (it trained on none of
# the user's data), its tracks matched to the sheet's rows by evaluate.tracks.

from seqnn.data.splits import eval_set

EVAL_ENSEMBLE = EVAL["ensemble"] and DATA["folds"] >= 3 and not NO_TRAINING
EVAL_OUTPUTS = ["results/eval/cv_summary.tsv"]


wildcard_constraints:
    evalset="(ensemble/)?f[0-9]+",


rule evaluate:
    input:
        models=lambda wc: (
            model_outputs()
            if NO_TRAINING
            else expand(
                "results/models/f{fold}/model_best.keras",
                fold=eval_set(DATA["folds"], wc.evalset)[1],
            )
        ),
        stats="results/data/statistics.json",
        sheet="results/data/targets.txt",
        sequences="results/data/sequences.bed",
        records=lambda wc: "results/data/tfrecords/{}.json".format(
            eval_set(DATA["folds"], wc.evalset)[0]
        ),
        fai="results/data/genome.fa.fai",
        tss=optional(EVAL["tss"]),
    output:
        acc=report(
            "results/eval/{evalset}/acc.tsv",
            caption="../report/acc.rst",
            category="Evaluation",
            subcategory="Accuracy per test fold",
            labels={"models": "{evalset}", "table": "acc.tsv"},
        ),
        examples="results/eval/{evalset}/examples.h5",
        predictions=optional(
            "results/eval/{evalset}/predictions.h5"
            if EVAL["save_predictions"]
            else None
        ),
    params:
        split=lambda wc: eval_set(DATA["folds"], wc.evalset)[0],
        options={
            "rc": EVAL["rc"],
            "shifts": EVAL["shifts"],
            "batch_size": EVAL["batch_size"],
            "peaks": EVAL["peaks"],
            "tss_window": EVAL["tss_window"],
            "aliases": GENOME["chrom_aliases"],
            "save_predictions": EVAL["save_predictions"],
            "max_values": EVAL["max_values"],
            "sample_points": PLOTS_CONFIG["sample_points"],
            "loci": PLOTS_CONFIG["loci"],
            "n_loci": PLOTS_CONFIG["n_loci"],
            "tracks": SELECTED["evaluate"],
            "mc_n": EVAL["mc_n"],
            "dtype": EVAL["dtype"],
            "step": EVAL["step"],
            "sample_bins": EVAL["sample_bins"],
            "return_all": EVAL["return_all"],
        },
    log:
        "results/logs/evaluate/{evalset}.log",
    benchmark:
        "results/benchmarks/evaluate/{evalset}.tsv"
    threads: step_threads("evaluate", len(MODEL_FOLDS) * (2 if EVAL_ENSEMBLE else 1))
    resources:
        gpu=1 if EVAL["gpu"] else 0,
        mem_mb=EVAL["mem_mb"],
        runtime=EVAL["runtime"],
    conda:
        "../envs/seqnn.yaml"
    script:
        "../scripts/evaluate.py"


rule cv_summary:
    input:
        folds=expand("results/eval/f{fold}/acc.tsv", fold=MODEL_FOLDS),
        ensemble=(
            expand("results/eval/ensemble/f{fold}/acc.tsv", fold=MODEL_FOLDS)
            if EVAL_ENSEMBLE
            else []
        ),
    output:
        report(
            "results/eval/cv_summary.tsv",
            caption="../report/cv_summary.rst",
            category="Evaluation",
            subcategory="Summary across folds",
            labels={"table": "cv_summary.tsv"},
        ),
    params:
        folds=[f"f{fold}" for fold in MODEL_FOLDS],
    log:
        "results/logs/cv_summary.log",
    benchmark:
        "results/benchmarks/cv_summary.tsv"
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/seqnn.yaml"
    script:
        "../scripts/cv_summary.py"
