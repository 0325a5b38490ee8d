"""Labelled data and fine-tuning of DistilGPT-2 (or its shape from scratch) to label samples."""
