"""ONNX export of a fine-tuned checkpoint (Optimum), int8 quantization, parity check, bundle writing."""
