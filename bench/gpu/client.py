"""One client process of the sweep: an asyncio loop over many connections, speaking the v2
binary tensor protocol of ``samples/bert/client.py``, every response checked."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from samples.bert import client as bert_client
from samples.bert import contract


@dataclass(frozen=True)
class ClientJob:
    """What one client process does."""

    url: str
    model: str
    connections: int
    sequences_per_request: int
    start_at: float
    """Wall-clock time when measuring starts (requests before it warm up)."""
    stop_at: float
    """Wall-clock time when the process stops sending."""
    seed: int


def run_client(job: ClientJob) -> dict[str, Any]:
    """Run ``job`` to its end (the entry point of a client process); its raw figures."""
    return asyncio.run(_client(job))


async def _client(job: ClientJob) -> dict[str, Any]:
    import aiohttp

    requests = [
        bert_client.encode_binary(batch)
        for batch in bert_client.make_batches(
            count=16,
            batch_size=job.sequences_per_request,
            seq_len=contract.SEQUENCE_LENGTH,
            seed=job.seed,
        )
    ]
    url = f"{job.url}{contract.infer_path(job.model)}"
    latencies: list[float] = []
    failures: list[str] = []
    sequences = 0

    async def loop(index: int, session: aiohttp.ClientSession) -> None:
        nonlocal sequences
        n = index
        while (now := time.time()) < job.stop_at:
            request = requests[n % len(requests)]
            n += 1
            sent = time.perf_counter()
            try:
                async with session.post(url, data=request.body, headers=request.headers) as resp:
                    body = await resp.read()
                    length = resp.headers.get(bert_client.INFER_HEADER_LENGTH)
                    bert_client.check_response(
                        status=resp.status,
                        body=body,
                        header_length=None if length is None else int(length),
                        request=request,
                    )
            # A request past the client's timeout is a failure of that point, not of the run.
            except (aiohttp.ClientError, TimeoutError, bert_client.UnexpectedResponseError) as exc:
                if now >= job.start_at:
                    failures.append(f"{type(exc).__name__}: {exc}"[:200])
                continue
            done = time.time()
            if now >= job.start_at and done <= job.stop_at:
                latencies.append(time.perf_counter() - sent)
                sequences += request.batch_size

    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(loop(i, session) for i in range(job.connections)))
    return {"latencies": latencies, "failures": failures, "sequences": sequences}
