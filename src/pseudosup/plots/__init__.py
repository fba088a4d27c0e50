"""Figures, drawn from metrics/run files only (never from models)."""
