"""A plain loop of ``tritonclient.http`` calls in threads, binary tensors, every answer
checked: one of the load generators ``bench.clients`` compares, run as a process of its own.

    python -m bench.tritonclient_loop --url http://127.0.0.1:8000 --seconds 10 --out FILE

Writes answers per whole second and failures as JSON to FILE.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from samples.bert.client import check_logits, infer_inputs, make_batches
from samples.bert.contract import DEFAULT_MODEL_NAME, OUTPUT_LOGITS, SEQUENCE_LENGTH


def tritonclient_loop(*, url: str, seconds: float, threads: int) -> tuple[dict[int, int], int]:
    """``threads`` threads, each with its own client, sending binary requests one after another
    for ``seconds`` and checking each answer. Returns answers per whole second, and failures."""
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    batches = make_batches(count=64, batch_size=1, seq_len=SEQUENCE_LENGTH)
    per_second: Counter[int] = Counter()
    failures = 0
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker(offset: int) -> None:
        nonlocal failures
        client = httpclient.InferenceServerClient(url.removeprefix("http://"))
        requests = [(batch, infer_inputs(httpclient, batch.named())) for batch in batches]
        outputs = [httpclient.InferRequestedOutput(OUTPUT_LOGITS, binary_data=True)]
        index = offset
        while time.monotonic() < deadline:
            batch, inputs = requests[index % len(requests)]
            index += 1
            try:
                result = client.infer(DEFAULT_MODEL_NAME, inputs, outputs=outputs)
                logits = result.as_numpy(OUTPUT_LOGITS)
                if logits is None:
                    raise ValueError("no output")
                check_logits(logits, batch_size=batch.batch_size, seq_len=batch.seq_len)
                ok = True
            except (InferenceServerException, ValueError, OSError):
                ok = False
            with lock:
                if ok:
                    per_second[math.floor(time.time())] += 1
                else:
                    failures += 1
        client.close()

    pool = [threading.Thread(target=worker, args=(i * 7,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return dict(per_second), failures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    per_second, failures = tritonclient_loop(
        url=args.url, seconds=args.seconds, threads=args.threads
    )
    args.out.write_text(json.dumps({"per_second": per_second, "failures": failures}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
