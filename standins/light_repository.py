"""A model repository holding the light model (``light_model.py``): the BERT contract's
tensors at almost no compute, so load generators, not the network, are measured; also a model
that answers with the wrong shape, or stalls, for the load test's own tests.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Final

from samples.bert.contract import LOGITS_PER_TOKEN
from samples.bert.model_config import contract_config

LIGHT_MODEL_SOURCE: Final = Path(__file__).resolve().parent / "light_model.py"


def write_light_model(
    repository: Path,
    *,
    name: str,
    logits_per_token: int = LOGITS_PER_TOKEN,
    delay_s: float = 0.0,
) -> Path:
    """``light_model.py`` as ``<repository>/<name>``, its ``config.pbtxt`` the contract's
    (``logits_per_token`` other than the contract's: a model that answers with the wrong
    shape; ``delay_s``: a model that stalls that long before each answer, a stalled server for
    the load test's timeout). Returns the model's folder."""
    model = repository / name
    (model / "1").mkdir(parents=True)
    shutil.copy(LIGHT_MODEL_SOURCE, model / "1" / "model.py")
    config = contract_config(
        model_name=name,
        description="a light model with the contract's tensors, for benchmarks and tests",
        backend="python",
        max_batch_size=8,
        instance_count=1,
        device="cpu",
        logits_per_token=logits_per_token,
        parameters={"delay_s": str(delay_s)} if delay_s else None,
        manifest=False,
    )
    (model / "config.pbtxt").write_text(config)
    return model
