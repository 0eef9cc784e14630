"""CUDA graphs per batch bucket on a real GPU: the gpu tier (``python -m tests gpu`` on a
machine with an NVIDIA GPU; elsewhere every test here is skipped, saying why).

The python variant as the GPU benchmark serves it (BERT-large, random weights, fp16, max batch
256, graphs up to 64) runs in this process through its own ``model.py``, with the backend
stand-in of ``python_backend.py``. The reference is the eager network of the same weights on
the same GPU, run on each request alone, unpadded.

Cases:
- each instance captures every bucket at load and logs what that cost (seconds per bucket, GPU
  memory), printed here for the record;
- two instances on one GPU, batches alternating between them: different requests through the
  same bucket, batch after batch, each get the eager network's answer for their own rows
  (within fp16 rounding, far nearer their own answer than any other request's), and keep it
  after later replays; a batch above the largest bucket runs eagerly, also right;
- a capture that fails on the GPU (the captured pass synchronises with the host, which a
  capture forbids) leaves the runner serving every batch eagerly with the right answers,
  says so once, and the GPU keeps working;
- the graphs' GPU memory is what they hold, also where earlier, larger work left memory in
  PyTorch's cache (which every capture gives back as it starts).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import torch

from samples.bert import contract
from samples.bert.build_settings import BuildSettings
from samples.bert.cuda_graphs import LOG_PREFIX, BatchRunner, bucket_sizes
from samples.bert.network import SquadLogits, load_network, random_network
from samples.bert.repository import write_repository
from tests.samples import python_backend
from tests.samples.helpers import quiet, sample_inputs

FP16_TOLERANCE = 0.02
"""Largest absolute difference allowed between a served logit and the eager network's for
the same sequence in fp16: batch shapes change the order of fp16 sums. Logits of different
sequences differ by about 0.6 here, 30 times more."""


@pytest.fixture(scope="module")
def served(cuda_device: torch.device, tmp_path_factory: pytest.TempPathFactory) -> BuildSettings:
    settings = BuildSettings(
        variant="python",
        repository=tmp_path_factory.mktemp("gpu") / "models",
        size="large",
        device="gpu",
        max_batch_size=256,
    )
    write_repository(settings, progress=quiet, warn=quiet)
    return settings


@pytest.fixture(scope="module")
def reference(served: BuildSettings, cuda_device: torch.device) -> SquadLogits:
    """The eager network the served model loads, on the same GPU, in fp16 as served."""
    weights = served.model_dir / str(served.version) / "weights"
    return load_network(weights).half().to(cuda_device)


def _expected(reference: SquadLogits, inputs: dict[str, npt.NDArray[np.int32]]) -> Any:
    with torch.inference_mode():
        tensors = [torch.from_numpy(inputs[s.name]).cuda() for s in contract.INPUTS]
        return reference(*tensors).float().cpu().numpy()


@pytest.fixture(scope="module")
def instances(served: BuildSettings) -> Iterator[list[Any]]:
    """Two instances of the served model on one GPU, as Triton runs two stubs on it."""
    python_backend.Logger.lines.clear()
    with ExitStack() as stack:
        yield [stack.enter_context(python_backend.loaded_model(served)) for _ in range(2)]


def test_each_instance_captures_every_bucket_at_load(
    served: BuildSettings, instances: list[Any]
) -> None:
    reports = [
        json.loads(message.removeprefix(LOG_PREFIX))
        for level, message in python_backend.Logger.lines
        if level == "info" and message.startswith(LOG_PREFIX)
    ]
    assert len(reports) == len(instances)
    for report in reports:
        print(f"\ncapture report ({torch.cuda.get_device_name()}): {json.dumps(report)}")
        assert report["buckets"] == list(bucket_sizes(64)) == list(served.graph_buckets)
        assert report["failure"] == ""
        assert set(report["seconds"]) == {str(b) for b in report["buckets"]}
        assert report["pool_mib"] > 0 and report["device_mib"] > 0
    assert not [line for line in python_backend.Logger.lines if line[0] != "info"]


BATCHES: Sequence[Sequence[int]] = (
    (3, 2, 1),  # 6 rows: bucket 8
    (5,),  # bucket 8 again, other requests
    (1,),  # bucket 1
    (4, 4),  # bucket 8, full
    (8,) * 9,  # 72 rows: above the largest bucket, eager
    (2,) * 20,  # 40 rows: bucket 40
    (1, 1, 1),  # bucket 4
    (2, 2, 2),  # bucket 8 on the instance whose rows 6-39 held the 40-row batch
)


def test_requests_through_one_bucket_each_get_their_own_answer(
    instances: list[Any], reference: SquadLogits
) -> None:
    answers = []
    seed = 1000
    for number, sizes in enumerate(BATCHES):
        model = instances[number % len(instances)]
        inputs = []
        for rows in sizes:
            inputs.append(sample_inputs(rows, seed=seed))
            seed += 1
        requests = [python_backend.request(x, reverse=k % 2 == 1) for k, x in enumerate(inputs)]
        answers.append((inputs, model.execute(requests)))
    replays = sum(model._runner.replays for model in instances)
    eager = sum(model._runner.eager_passes for model in instances)
    assert (replays, eager) == (len(BATCHES) - 1, 1)
    # Compared once every batch has run: an answer that were memory a later replay reuses
    # would now hold another request's rows.
    worst, spread = 0.0, []
    for inputs, responses in answers:
        for given, response in zip(inputs, responses, strict=True):
            expected = _expected(reference, given)
            got = python_backend.logits(response)
            assert got.shape == expected.shape
            worst = max(worst, float(np.abs(got - expected).max()))
            spread.append(float(expected.std()))
    print(
        f"\n{sum(len(s) for s in BATCHES)} requests in {len(BATCHES)} batches: largest "
        f"|served - eager| {worst:.5f}; logits' spread (std) {min(spread):.3f}-{max(spread):.3f}"
    )
    assert worst <= FP16_TOLERANCE


class SyncsWithTheHost(torch.nn.Module):
    """The network, reading a value back to the host inside its pass: fine eagerly, refused
    while a CUDA graph captures."""

    def __init__(self, network: SquadLogits) -> None:
        super().__init__()
        self.network = network

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if inputs[0].sum().item() < 0:
            raise AssertionError("ids are never negative")
        result: torch.Tensor = self.network(*inputs)
        return result


def test_a_failed_capture_on_the_gpu_leaves_every_batch_eager(cuda_device: torch.device) -> None:
    network = random_network("tiny", seed=5).to(cuda_device)
    warned: list[str] = []
    runner = BatchRunner(
        SyncsWithTheHost(network),
        device=cuda_device,
        inputs=len(contract.INPUTS),
        sequence_length=contract.SEQUENCE_LENGTH,
        buckets=bucket_sizes(16),
        warn=warned.append,
    )
    print(f"\nfailed capture: {runner.report.failure}")
    assert runner.buckets == ()
    (warning,) = warned
    assert "CUDA graphs are off, every batch runs eagerly" in warning
    for seed, sizes in enumerate([(1,), (3, 2), (16,)]):
        inputs = [sample_inputs(rows, seed=500 + 10 * seed + k) for k, rows in enumerate(sizes)]
        columns = [[torch.from_numpy(x[s.name]) for x in inputs] for s in contract.INPUTS]
        logits = runner(columns)
        for given, chunk in zip(inputs, torch.split(logits, list(sizes)), strict=True):
            with torch.inference_mode():
                expected = network(
                    *[torch.from_numpy(given[s.name]).cuda() for s in contract.INPUTS]
                )
            torch.testing.assert_close(chunk, expected.float().cpu(), rtol=0, atol=2e-3)
    assert (runner.replays, runner.eager_passes) == (0, 3)
    assert len(warned) == 1


def test_capture_memory_leaves_out_what_earlier_work_left_cached(
    cuda_device: torch.device,
) -> None:
    network = random_network("tiny", seed=6).to(cuda_device)
    torch.empty(2**30, dtype=torch.uint8, device=cuda_device)  # 1 GiB freed into the cache
    assert torch.cuda.memory_reserved(cuda_device) >= 2**30
    logged: list[str] = []
    runner = BatchRunner(
        network,
        device=cuda_device,
        inputs=len(contract.INPUTS),
        sequence_length=contract.SEQUENCE_LENGTH,
        buckets=bucket_sizes(8),
        log=logged.append,
    )
    report = runner.report
    print(f"\nafter 1 GiB left cached: pool {report.pool_mib} MiB, device {report.device_mib} MiB")
    assert report.failure == "" and len(logged) == 1
    assert report.pool_mib is not None and report.device_mib is not None
    assert 0 < report.pool_mib < 1024 and 0 < report.device_mib < 1024
