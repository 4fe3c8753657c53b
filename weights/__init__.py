"""Shipped models: one folder per model with ``model.onnx`` and ``manifest.json``."""
