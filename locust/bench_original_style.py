"""The original sample's load-test style, kept only as the benchmark's baseline.

``HttpUser`` (python-requests), the JSON body serialized again for every request, the answer
never looked at. Run at full speed (no wait) by ``bench_clients.py``; not a load test to use.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from locust import HttpUser, constant, task

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bert_payload import encode_json, make_batches

MODEL_NAME = os.environ.get("LOCUST_MODEL_NAME", "bert")


class OriginalStyleUser(HttpUser):
    wait_time = constant(0)

    def on_start(self) -> None:
        (batch,) = make_batches(count=1, batch_size=1, seq_len=128)
        self.data: dict[str, Any] = json.loads(encode_json(batch).body)
        self.url = f"{self.environment.host}/v2/models/{MODEL_NAME}/infer"

    @task
    def bert(self) -> None:
        self.client.post(self.url, data=json.dumps(self.data))
