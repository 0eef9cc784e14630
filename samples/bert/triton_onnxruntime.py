"""The python variant's onnxruntime runtime (copied as ``<version>/bert_onnxruntime.py``).

Copied only into a repository built for that runtime (``--device cpu``, the default
``--cpu-runtime onnxruntime``), so the torch runtime's files import nothing but torch: the
onnxruntime Python package is in no NGC Triton image, and this runtime is for the local CPU
demo, whose Triton shares this machine's Python. On a cluster, a CPU model is better served by
the ``onnx`` variant (Triton's own onnxruntime backend, in the stock image).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnxruntime


def session(path: Path, *, threads: int) -> Any:
    """An onnxruntime CPU session of the model at ``path``, with every graph optimisation and
    ``threads`` intra-op threads (0: the library's default)."""
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads > 0:
        options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
