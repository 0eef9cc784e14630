"""CUDA graphs per batch bucket (``samples/bert/cuda_graphs.py``), on the CPU with a stand-in
graph capture; ``test_cuda_graphs_gpu.py`` runs the real captures on a GPU.

The stand-in records the forward pass once, as a capture does, and each replay reruns that
same pass on the static input views it was recorded with, writing into the output tensor
created at capture: so a batch the runner failed to copy into its bucket, stale rows left as
padding, or an answer handed out as a view of the reused output would show here as on a GPU.

Cases:
- the buckets: 1, 2, 4, 8 then multiples of 8 up to the largest, which is always one; the
  bucket of a batch, none above the largest; a largest below 1 is refused;
- every bucket is captured when the runner is made, largest first, before any batch;
- different requests through the same bucket each get the network's own answer for their
  rows, and answers handed out earlier stay as they were after later replays;
- the rows past a batch in its bucket are zeros when it replays, also after a larger batch;
- batches above the largest bucket run eagerly, with the network's answers;
- a capture that fails leaves every batch running eagerly with the right answers, and is
  reported once, as a warning naming the bucket and the error;
- the capture report is one JSON line after its prefix;
- the python model on the CPU (in this process, the backend stand-in of ``python_backend.py``)
  answers each request of a batch with its own rows, an out-of-range request with its own
  error, whatever order the inputs come in;
- the model refuses a bad ``cuda_graphs`` or ``cuda_graph_max_batch_size`` value, and
  ``cuda_graphs`` with ``torch_compile``, before it loads the network.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest
import torch

from samples.bert import contract
from samples.bert.build_settings import BuildSettings
from samples.bert.cuda_graphs import (
    LOG_PREFIX,
    BatchRunner,
    CaptureReport,
    Replay,
    bucket_for,
    bucket_sizes,
)
from samples.bert.model_config import python_parameters
from samples.bert.network import SquadLogits, random_network
from samples.bert.repository import write_repository
from tests.samples import python_backend
from tests.samples.helpers import quiet, sample_inputs

SEQUENCE = contract.SEQUENCE_LENGTH
TOLERANCE = 1e-5


class StandInCapture:
    """Records the forward pass at capture; a replay reruns it, as recorded, into the output
    created at capture, as a CUDA graph does."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.fail_at = fail_at
        self.captured: list[int] = []

    def __call__(self, forward: Callable[[], torch.Tensor]) -> tuple[Replay, torch.Tensor]:
        output = forward()
        rows = int(output.shape[0])
        if rows == self.fail_at:
            raise RuntimeError("operation not permitted when stream is capturing")
        self.captured.append(rows)
        return lambda: output.copy_(forward()), output


class Recorded:
    """The network, keeping a copy of the inputs of every pass."""

    def __init__(self, network: SquadLogits) -> None:
        self.network = network
        self.seen: list[torch.Tensor] = []

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        self.seen.append(torch.stack(inputs).clone())
        result: torch.Tensor = self.network(*inputs)
        return result


@pytest.fixture(scope="module")
def network() -> SquadLogits:
    return random_network("tiny", seed=3)


def _requests(sizes: Sequence[int], seed: int) -> list[list[torch.Tensor]]:
    """One ``[rows, sequence]`` tensor per input for each request of ``sizes``."""
    requests = []
    for k, rows in enumerate(sizes):
        inputs = sample_inputs(rows, seed=seed + k)
        requests.append([torch.from_numpy(inputs[spec.name]) for spec in contract.INPUTS])
    return requests


def _columns(requests: list[list[torch.Tensor]]) -> list[list[torch.Tensor]]:
    return [list(column) for column in zip(*requests, strict=True)]


def _alone(network: SquadLogits, request: list[torch.Tensor]) -> torch.Tensor:
    with torch.inference_mode():
        logits: torch.Tensor = network(*request).float()
        return logits


def _runner(
    network: Callable[..., torch.Tensor],
    capture: StandInCapture,
    largest: int = 16,
    **kwargs: Any,
) -> BatchRunner:
    return BatchRunner(
        network,
        device=torch.device("cpu"),
        inputs=len(contract.INPUTS),
        sequence_length=SEQUENCE,
        buckets=bucket_sizes(largest),
        capture=capture,
        **kwargs,
    )


def test_buckets_are_powers_of_two_then_multiples_of_eight() -> None:
    assert bucket_sizes(64) == (1, 2, 4, 8, 16, 24, 32, 40, 48, 56, 64)
    assert bucket_sizes(20) == (1, 2, 4, 8, 16, 20)
    assert bucket_sizes(6) == (1, 2, 4, 6)
    assert bucket_sizes(1) == (1,)
    with pytest.raises(ValueError, match="at least 1, not 0"):
        bucket_sizes(0)


def test_a_batch_goes_to_the_smallest_bucket_that_holds_it() -> None:
    buckets = bucket_sizes(64)
    assert [bucket_for(rows, buckets) for rows in (1, 2, 3, 8, 9, 33, 64)] == [
        1,
        2,
        4,
        8,
        16,
        40,
        64,
    ]
    assert bucket_for(65, buckets) is None
    assert bucket_for(1, ()) is None


def test_every_bucket_is_captured_before_the_first_batch(network: SquadLogits) -> None:
    capture = StandInCapture()
    logged: list[str] = []
    runner = _runner(network, capture, log=logged.append)
    assert capture.captured == [16, 8, 4, 2, 1]  # largest first: it sizes the shared pool
    assert runner.buckets == (1, 2, 4, 8, 16)
    assert runner.report.buckets == [1, 2, 4, 8, 16]
    assert set(runner.report.seconds) == {1, 2, 4, 8, 16}
    assert runner.replays == runner.eager_passes == 0
    (line,) = logged
    assert json.loads(line.removeprefix(LOG_PREFIX))["buckets"] == [1, 2, 4, 8, 16]


def test_requests_through_one_bucket_each_get_their_own_answer(network: SquadLogits) -> None:
    runner = _runner(network, StandInCapture())
    # Batches of 6, 5, 7 and 8 rows all replay bucket 8, each with other requests.
    batches = [
        _requests(sizes, seed=10 * n) for n, sizes in enumerate([[3, 2, 1], [5], [4, 3], [8]])
    ]
    answers = []
    for requests in batches:
        logits = runner(_columns(requests))
        sizes = [int(r[0].shape[0]) for r in requests]
        assert logits.shape == (sum(sizes), SEQUENCE, 2)
        answers.append((requests, torch.split(logits, sizes)))
    assert runner.replays == 4 and runner.eager_passes == 0
    # Checked after every replay is done: an answer that were a view of the bucket's output
    # would now hold the last batch's rows.
    for requests, chunks in answers:
        for request, chunk in zip(requests, chunks, strict=True):
            torch.testing.assert_close(chunk, _alone(network, request), rtol=0, atol=TOLERANCE)


def test_rows_past_the_batch_are_zeros_when_it_replays(network: SquadLogits) -> None:
    recorded = Recorded(network)
    runner = _runner(recorded, StandInCapture())
    large, small = _requests([7], seed=1), _requests([2, 3], seed=2)
    recorded.seen.clear()  # the captures' passes
    runner(_columns(large))  # bucket 8, 7 rows
    runner(_columns(small))  # bucket 8 again, 5 rows: rows 5 and 6 held the first batch
    first, second = recorded.seen
    assert first.shape == second.shape == (3, 8, SEQUENCE)
    assert torch.equal(first[:, :7], torch.stack(large[0]))
    assert not first[:, 7:].any()
    expected = torch.stack([torch.cat(pair) for pair in zip(*small, strict=True)])
    assert torch.equal(second[:, :5], expected)
    assert not second[:, 5:].any()


def test_batches_above_the_largest_bucket_run_eagerly(network: SquadLogits) -> None:
    recorded = Recorded(network)
    runner = _runner(recorded, StandInCapture(), largest=8)
    recorded.seen.clear()
    requests = _requests([6, 5], seed=5)
    logits = runner(_columns(requests))
    assert runner.eager_passes == 1 and runner.replays == 0
    (passed,) = recorded.seen
    assert passed.shape == (3, 11, SEQUENCE)  # the batch itself, not padded
    for request, chunk in zip(requests, torch.split(logits, [6, 5]), strict=True):
        torch.testing.assert_close(chunk, _alone(network, request), rtol=0, atol=TOLERANCE)


def test_a_failed_capture_leaves_every_batch_eager_and_says_so_once(
    network: SquadLogits,
) -> None:
    logged: list[str] = []
    warned: list[str] = []
    runner = _runner(network, StandInCapture(fail_at=8), log=logged.append, warn=warned.append)
    assert runner.buckets == ()
    assert runner.report.failure.startswith("at batch 8: RuntimeError: operation not permitted")
    for seed, sizes in enumerate([[1], [3, 2], [8], [16]]):
        requests = _requests(sizes, seed=40 + seed)
        logits = runner(_columns(requests))
        for request, chunk in zip(requests, torch.split(logits, sizes), strict=True):
            torch.testing.assert_close(chunk, _alone(network, request), rtol=0, atol=TOLERANCE)
    assert runner.eager_passes == 4 and runner.replays == 0
    assert logged == []
    (warning,) = warned
    assert "CUDA graphs are off, every batch runs eagerly" in warning
    assert "at batch 8" in warning


def test_the_capture_report_is_one_json_line() -> None:
    report = CaptureReport(buckets=[1, 2], seconds={1: 0.0123, 2: 0.5}, total_s=0.51)
    line = report.line()
    assert line.startswith(LOG_PREFIX) and "\n" not in line
    document = json.loads(line.removeprefix(LOG_PREFIX))
    assert document["seconds"] == {"1": 0.012, "2": 0.5}
    assert document["pool_mib"] is None and document["failure"] == ""


@pytest.fixture(scope="module")
def cpu_model(tmp_path_factory: pytest.TempPathFactory) -> BuildSettings:
    settings = BuildSettings(
        variant="python",
        repository=tmp_path_factory.mktemp("cpu") / "models",
        size="tiny",
        seed=3,
        device="cpu",
        cpu_runtime="torch",
    )
    write_repository(settings, progress=quiet, warn=quiet)
    return settings


def test_the_model_answers_each_request_of_a_batch_with_its_own_rows(
    cpu_model: BuildSettings, network: SquadLogits
) -> None:
    inputs = [sample_inputs(rows, seed=60 + rows) for rows in (2, 1, 3)]
    bad = sample_inputs(1, seed=70)
    bad[contract.INPUT_IDS][0, 5] = 10**6
    with python_backend.loaded_model(cpu_model) as model:
        requests = [python_backend.request(x, reverse=k == 1) for k, x in enumerate(inputs)]
        responses = model.execute([requests[0], python_backend.request(bad), *requests[1:]])
    assert responses[1].error is not None
    assert "input 'input_ids' holds 1000000 at [0, 5]" in responses[1].error.message
    for given, response in zip(inputs, [responses[0], *responses[2:]], strict=True):
        expected = _alone(network, [torch.from_numpy(given[s.name]) for s in contract.INPUTS])
        np.testing.assert_allclose(
            python_backend.logits(response), expected.numpy(), rtol=0, atol=TOLERANCE
        )


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"cuda_graphs": "yes"}, "parameter cuda_graphs='yes': write true or false"),
        ({"cuda_graph_max_batch_size": "0"}, "cuda_graph_max_batch_size='0': write a whole"),
        (
            {"cuda_graphs": "true", "torch_compile": "true"},
            "torch_compile and cuda_graphs are both true",
        ),
    ],
)
def test_the_model_refuses_bad_graph_parameters_before_loading(
    cpu_model: BuildSettings,
    parameters: dict[str, str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_loading(*args: object, **kwargs: object) -> None:
        raise AssertionError("the weights were read before the parameters were checked")

    monkeypatch.setattr(torch, "load", no_loading)
    given = {**python_parameters(cpu_model), **parameters}
    with (
        pytest.raises(python_backend.TritonModelException, match=message),
        python_backend.loaded_model(cpu_model, parameters=given),
    ):
        pass
