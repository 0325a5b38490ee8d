"""perfwatch: the contract every stage shares (samples, verdicts, labels, template, bundle, settings)."""

__version__ = "0.1.0"
