"""The stream processor: micro-batches of samples → ONNX verdicts → predictions, alerts, DLQ.

Imports onnxruntime, tokenizers, confluent-kafka and pydantic only (never torch or transformers)."""
