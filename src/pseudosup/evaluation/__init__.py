"""Evaluation: rankings, metrics (with their tie rules) and retrieval protocols."""
