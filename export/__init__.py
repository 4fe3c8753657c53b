"""Model export: PyTorch -> ONNX (TensorRT comes later)."""
