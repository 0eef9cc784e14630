"""The served model's answers, request by request, against the eager network in this process.

Before a configuration is measured, requests of 1 to 3 sequences, each different, are sent at
once, so the dynamic batcher merges them into shared batches: a graphed configuration replays
them padded into shared buckets. Each response must hold its own request's logits as the eager
network gives them for that request alone, within fp16 rounding (``TOLERANCE``): a request
answered with another's rows, or with rows a later replay overwrote, is off by the logits' own
size (about 0.6 on the sample's random network), not by rounding.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from samples.bert import client as bert_client
from samples.bert import contract

TOLERANCE = 0.02
"""Largest absolute difference allowed between a served logit and the eager network's: fp16
sums in another order (another batch shape) move logits by about 1e-3."""

REQUESTS = 48
"""Requests sent at once."""

SIZES = (1, 2, 3)
"""Sequences per request, in turn."""


@dataclass(frozen=True)
class ExpectedAnswer:
    """One request and the logits the eager network gives for it alone."""

    request: bert_client.EncodedRequest
    logits: npt.NDArray[np.float32]


@dataclass(frozen=True)
class AnswerCheck:
    """How the served answers compared with the eager network's."""

    requests: int
    worst_error: float
    """The largest absolute difference over every logit of every answered request."""
    wrong: int
    """Requests answered with an error, a malformed response, or logits off by more than
    ``TOLERANCE``."""
    first_wrong: str = ""

    def brief(self) -> str:
        verdict = "all right" if not self.wrong else f"{self.wrong} WRONG ({self.first_wrong})"
        return (
            f"{self.requests} requests in flight together, each against the eager network "
            f"alone: largest |served - eager| {self.worst_error:.4f} (allowed {TOLERANCE}); "
            f"{verdict}"
        )


def expected_answers(
    network: Callable[..., Any], *, device: Any, seed: int = 7000
) -> list[ExpectedAnswer]:
    """``REQUESTS`` different requests and what ``network`` (eager, on ``device``, as served)
    gives for each alone."""
    import torch

    answers = []
    for k in range(REQUESTS):
        (batch,) = bert_client.make_batches(
            count=1,
            batch_size=SIZES[k % len(SIZES)],
            seq_len=contract.SEQUENCE_LENGTH,
            seed=seed + k,
        )
        with torch.inference_mode():
            inputs = [torch.from_numpy(values).to(device) for _, values in batch.named()]
            logits = network(*inputs).float().cpu().numpy()
        answers.append(ExpectedAnswer(bert_client.encode_binary(batch), logits))
    return answers


def check_served(url: str, model: str, answers: Sequence[ExpectedAnswer]) -> AnswerCheck:
    """Send every request of ``answers`` to the server at ``url`` at once; compare each
    response with its expected logits."""
    return asyncio.run(_check(f"{url}{contract.infer_path(model)}", answers))


async def _check(url: str, answers: Sequence[ExpectedAnswer]) -> AnswerCheck:
    import aiohttp

    async def answer(session: aiohttp.ClientSession, request: bert_client.EncodedRequest) -> Any:
        async with session.post(url, data=request.body, headers=request.headers) as response:
            body = await response.read()
            length = response.headers.get(bert_client.INFER_HEADER_LENGTH)
            bert_client.check_response(
                status=response.status,
                body=body,
                header_length=None if length is None else int(length),
                request=request,
            )
            assert length is not None  # binary answers always carry it (checked above)
            values = np.frombuffer(body, dtype="<f4", offset=int(length))
            return values.reshape(request.output_shape)

    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        results = await asyncio.gather(
            *(answer(session, a.request) for a in answers), return_exceptions=True
        )
    worst, wrong, first = 0.0, 0, ""
    for number, (expected, result) in enumerate(zip(answers, results, strict=True)):
        if isinstance(result, BaseException):
            wrong += 1
            first = first or f"request {number}: {type(result).__name__}: {result}"[:200]
            continue
        error = float(np.abs(result - expected.logits).max())
        worst = max(worst, error)
        if error > TOLERANCE:
            wrong += 1
            first = first or f"request {number}: off by {error:.3f}"
    return AnswerCheck(requests=len(answers), worst_error=worst, wrong=wrong, first_wrong=first)
