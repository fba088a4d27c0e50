"""Methods: plain functions/classes that take arrays and return arrays or models."""
