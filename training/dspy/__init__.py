"""Compiling the rail-fix DSPy program offline: data splits, the metric, the optimizer."""
