"""Pipeline stages: each is one `pseudosup <stage>` command that a Snakemake rule runs;
it reads files and writes files. Stage modules import heavy libraries (torch, faiss)
inside `run` so that `pseudosup --help` and light stages start fast. Commands no rule
runs live in pseudosup.commands."""
