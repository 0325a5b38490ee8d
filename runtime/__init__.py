"""ONNX Runtime over a verified model bundle: tokenize, run, softmax; no torch. Shared by consumer, export, bench."""
