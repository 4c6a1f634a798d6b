# seqnn-workflow: sequence-to-coverage models of the Basenji / Enformer / Borzoi family.
# Usage: snakemake --cores all   (config/config.yaml: the embedded demo)


# The embedded demo's config, unless --configfile names another (which then stands alone,
# so none of the demo's settings leak into a user's run).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/predict.smk"
include: "workflow/rules/interpret.smk"


rule all:
    input:
        data_outputs(),
        model_outputs(),
        EVAL_OUTPUTS,
        REPORT_OUTPUTS,
        PREDICT_OUTPUTS,
        INTERPRET_OUTPUTS,
    default_target: True


rule data:
    input:
        data_outputs(),
