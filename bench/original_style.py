"""The original sample's load-test style, kept only as the benchmark's baseline.

``HttpUser`` (python-requests), the JSON body serialized again for every request, the answer
never looked at. Run at full speed (no wait) by ``bench/clients.py``, which writes the request
body to the file named by ``BENCH_ORIGINAL_BODY``; not a load test to use.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from locust import HttpUser, constant, task

MODEL_NAME = os.environ.get("LOCUST_MODEL_NAME", "bert")
BODY_FILE = os.environ.get("BENCH_ORIGINAL_BODY", "")


class OriginalStyleUser(HttpUser):
    wait_time = constant(0)

    def on_start(self) -> None:
        self.data: dict[str, Any] = json.loads(Path(BODY_FILE).read_text())
        self.url = f"{self.environment.host}/v2/models/{MODEL_NAME}/infer"

    @task
    def bert(self) -> None:
        self.client.post(self.url, data=json.dumps(self.data))
