# seqnn-workflow: sequence-to-coverage models of the Basenji / Enformer / Borzoi family.
# Usage: snakemake --cores all   (config/config.yaml: the embedded demo)
#        snakemake -s PATH/Snakefile --cores all   (from any folder; results/ written there)


from seqnn.config import resolve_path


# The embedded demo's config, unless --configfile names another (which then stands alone,
# so none of the demo's settings leak into a user's run): config/config.yaml of the working
# directory, else the workflow's own (so `snakemake -s PATH/Snakefile` runs the demo anywhere;
# its outputs land in the working directory).
if not workflow.overwrite_configfiles:

    configfile: resolve_path("config/config.yaml", [("the workflow", workflow.basedir)])[0]


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
