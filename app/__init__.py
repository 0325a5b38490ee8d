"""The composition root: the `perfwatch` command line, one module per command group, the demo, preflight checks."""
