"""Benchmarks: everything measured side by side in one run on one machine; goals are ratios."""
