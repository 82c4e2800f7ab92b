"""The per-model code of scripts/real_models.py: where each model's weights are, how its ONNX file
and data are made, and how its outputs are judged (metrics.py, numpy only)."""
