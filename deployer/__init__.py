"""Deploy NVIDIA Triton Inference Server on GKE from the chart in ``chart/``."""
