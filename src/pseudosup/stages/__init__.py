"""Pipeline stages: each is one `pseudosup <stage>` command that reads files and
writes files. Stage modules import heavy libraries (torch, faiss) inside `run` so
that `pseudosup --help` and light stages start fast."""
