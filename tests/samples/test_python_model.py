"""The python variant in the real local Triton (the tritonserver of nvidia-pytriton).

The models are built from the session's ``save_pretrained`` checkpoint (real weights, tiny).
Cases, for both CPU runtimes (onnxruntime, the default, and torch, the GPU code path): the
served config has the contract's names, types and shapes; an inference of three sequences
answers ``cls_squad_logits`` FP32 ``[3, 128, 2]`` with the values of the in-process network and
of ``transformers``' model of the checkpoint, within 1e-4 absolute; concurrent requests,
which the dynamic batcher merges into one execute() call, each get their own answer, also when
clients send the three inputs in different orders; a request with the wrong sequence length is
refused with a message naming the expected shape.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import tritonclient.http as http
from tritonclient.utils import InferenceServerException

from demo.local import LocalTriton
from samples.bert import contract
from samples.bert.client import infer_inputs
from samples.bert.network import SquadLogits
from tests.samples.helpers import (
    TORCH_MODEL,
    expected_logits,
    sample_inputs,
    transformers_logits,
)

MODELS = [contract.DEFAULT_MODEL_NAME, TORCH_MODEL]
TOLERANCE = 1e-4


CONCURRENCY = 12


@pytest.fixture(scope="module")
def client(local_triton: LocalTriton) -> Iterator[http.InferenceServerClient]:
    """One client for the module, closed at its end: Triton waits for open connections
    before it exits."""
    client = http.InferenceServerClient(
        local_triton.http_url.removeprefix("http://"), concurrency=CONCURRENCY, network_timeout=60
    )
    yield client
    client.close()


def _request(
    inputs: dict[str, npt.NDArray[np.int32]], *, reverse: bool = False
) -> list[http.InferInput]:
    request: list[http.InferInput] = infer_inputs(http, inputs.items())
    return request[::-1] if reverse else request


def _infer(
    client: http.InferenceServerClient, model: str, inputs: dict[str, npt.NDArray[np.int32]]
) -> http.InferResult:
    return client.infer(model, _request(inputs))


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_served_config_speaks_the_contract(client: http.InferenceServerClient, model: str) -> None:
    metadata = client.get_model_metadata(model)
    assert [(t["name"], t["datatype"], t["shape"]) for t in metadata["inputs"]] == [
        (spec.name, spec.datatype, [-1, contract.SEQUENCE_LENGTH]) for spec in contract.INPUTS
    ]
    assert [(t["name"], t["datatype"], t["shape"]) for t in metadata["outputs"]] == [
        (contract.OUTPUT_LOGITS, "FP32", [-1, contract.SEQUENCE_LENGTH, 2])
    ]


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_answers_with_the_checkpoints_values(
    client: http.InferenceServerClient,
    reference: SquadLogits,
    transformers_model: Any,
    model: str,
) -> None:
    inputs = sample_inputs(3, seed=1)
    result = _infer(client, model, inputs)
    output = result.get_output(contract.OUTPUT_LOGITS)
    assert output["datatype"] == "FP32"
    assert output["shape"] == [3, contract.SEQUENCE_LENGTH, 2]
    logits = result.as_numpy(contract.OUTPUT_LOGITS)
    np.testing.assert_allclose(logits, expected_logits(reference, inputs), rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(
        logits, transformers_logits(transformers_model, inputs), rtol=0, atol=TOLERANCE
    )


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_batched_requests_get_their_own_answers(
    client: http.InferenceServerClient, reference: SquadLogits, model: str
) -> None:
    requests = [sample_inputs(1 + k % 3, seed=10 + k) for k in range(CONCURRENCY)]
    # In flight together, on the client's pooled connections (it is not thread-safe); every
    # other request names its inputs in reverse order, as nothing obliges a client to follow
    # the config's.
    pending = [
        client.async_infer(model, _request(inputs, reverse=k % 2 == 1))
        for k, inputs in enumerate(requests)
    ]
    results = [call.get_result() for call in pending]
    for inputs, result in zip(requests, results, strict=True):
        np.testing.assert_allclose(
            result.as_numpy(contract.OUTPUT_LOGITS),
            expected_logits(reference, inputs),
            rtol=0,
            atol=TOLERANCE,
        )
    statistics = client.get_inference_statistics(model)["model_stats"][0]
    # Fewer executions than requests: the dynamic batcher merged some.
    assert int(statistics["execution_count"]) < int(statistics["inference_count"])


@pytest.mark.slow
def test_wrong_sequence_length_is_refused(client: http.InferenceServerClient) -> None:
    inputs = {name: array[:, :64].copy() for name, array in sample_inputs(1, seed=2).items()}
    with pytest.raises(InferenceServerException, match=r"\[-1,128\]"):
        _infer(client, contract.DEFAULT_MODEL_NAME, inputs)
