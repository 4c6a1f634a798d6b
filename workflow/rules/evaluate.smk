# Evaluation: each fold's model on its test fold, predictions averaged over reverse complements
# and shifts (results/eval/f{k}/), the ensemble of the models that did not train on fold k
# (results/eval/ensemble/f{k}/: f{k} and f{k-1}, which validated on it), and one table across
# folds (results/eval/cv_summary.tsv). Metrics and their aggregation: seqnn.apply.evaluate.

from seqnn.data.splits import eval_set

EVAL = config.get("evaluate", {})
PLOTS_CONFIG = config.get("plots", {})
EVAL_ENSEMBLE = EVAL.get("ensemble", True) and DATA["folds"] >= 3
EVAL_OUTPUTS = ["results/eval/cv_summary.tsv"]

if EVAL.get("tss") and not generated(EVAL["tss"]) and not os.path.isfile(EVAL["tss"]):
    fail(f"{EVAL['tss']}: evaluate.tss file not found; fix the path or set it to null")
for _track in PLOTS_CONFIG.get("tracks") or []:
    if _track not in TRACKS:
        fail(
            f"{CONFIG_NAME}: plots.tracks names {_track}, not in {config['targets']}; "
            "use its identifiers"
        )


wildcard_constraints:
    evalset="(ensemble/)?f[0-9]+",


rule evaluate:
    input:
        models=lambda wc: expand(
            "results/models/f{fold}/model_best.keras",
            fold=eval_set(DATA["folds"], wc.evalset)[1],
        ),
        stats="results/data/statistics.json",
        sheet="results/data/targets.txt",
        sequences="results/data/sequences.bed",
        records=lambda wc: "results/data/tfrecords/{}.json".format(
            eval_set(DATA["folds"], wc.evalset)[0]
        ),
        fai="results/data/genome.fa.fai",
        tss=optional(EVAL.get("tss")),
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
            if EVAL.get("save_predictions")
            else None
        ),
    params:
        split=lambda wc: eval_set(DATA["folds"], wc.evalset)[0],
        options={
            "rc": EVAL.get("rc", True),
            "shifts": EVAL.get("shifts", [-1, 0, 1]),
            "batch_size": EVAL.get("batch_size", 8),
            "peaks": EVAL.get("peaks", False),
            "tss_window": EVAL.get("tss_window", 1024),
            "aliases": GENOME.get("chrom_aliases", {}),
            "save_predictions": EVAL.get("save_predictions", False),
            "max_values": EVAL.get("max_values", 20_000_000),
            "sample_points": PLOTS_CONFIG.get("sample_points", 5000),
            "loci": PLOTS_CONFIG.get("loci", []),
            "n_loci": PLOTS_CONFIG.get("n_loci", 2),
        },
    log:
        "results/logs/evaluate/{evalset}.log",
    benchmark:
        "results/benchmarks/evaluate/{evalset}.tsv"
    threads: EVAL.get("threads", 4)
    resources:
        gpu=1 if EVAL.get("gpu", TRAIN.get("gpu", False)) else 0,
        mem_mb=EVAL.get("mem_mb", 8000),
        runtime=EVAL.get("runtime", 120),
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
