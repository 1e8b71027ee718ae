"""Reproducible experiments with the classifier (see each module's docstring)."""
