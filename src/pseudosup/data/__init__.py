"""Datasets: registry, downloads, loaders and committed splits."""
