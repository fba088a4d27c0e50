"""Helper commands: `pseudosup <command>` tools that no Snakemake rule runs (the
dataset table, params validation, dvc.yaml generation and status, the documentation's
tables, the metrics gate and its baselines, stand-in params, output verification, the
SLURM pre-flight). Like the stages they sit above the library; no stage and no library
module imports them."""
