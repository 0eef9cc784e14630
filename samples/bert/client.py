"""The client side of the BERT sample's I/O contract: random well-formed inputs, Triton v2
inference requests, tritonclient input lists, and the checks every response must pass.

Shared by the locustfile, the demo, the benchmarks and the tests; it imports neither Locust,
gevent nor tritonclient, and
numpy only where a caller asks for numpy arrays (``BertBatch.named``, ``check_logits``): the HTTP
path runs on the standard library alone, so Locust's stock image runs the locustfile as is. Two
encodings of the same request:

- binary: the KServe v2 binary tensor data extension. A JSON header (its length in the
  ``Inference-Header-Content-Length`` header) followed by the raw little-endian tensors, and the
  output asked for as binary too. No number is printed or parsed as text.
- json: the plain v2 JSON body, as the original load test sent it.

Both send ``Accept-Encoding: identity``: HTTP clients offer gzip by default, and Triton then
compresses every answer, which costs more than the inference of a small model.
"""

from __future__ import annotations

import json
import math
import random
import sys
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

from samples.bert.contract import (
    INPUT_DATATYPE,
    INPUT_IDS,
    INPUT_MASK,
    LOGITS_PER_TOKEN,
    OUTPUT_DATATYPE,
    OUTPUT_LOGITS,
    SEGMENT_IDS,
)

VOCAB_SIZE: Final = 30522
"""Size of the uncased WordPiece vocabulary of BERT base and large."""
PAD_ID: Final = 0
CLS_ID: Final = 101
SEP_ID: Final = 102
FIRST_WORD_ID: Final = 1996
"""Ids below this are padding, ``[unusedN]``, special tokens and single characters."""
MIN_SEQUENCE_LENGTH: Final = 8
"""Room for ``[CLS]``, a question, ``[SEP]``, a context and ``[SEP]``."""

INFER_HEADER_LENGTH: Final = "Inference-Header-Content-Length"
_FP32_BYTES: Final = 4
_LITTLE_ENDIAN: Final = sys.byteorder == "little"


class UnexpectedResponseError(Exception):
    """A response that is not what the contract promises (a 200 with wrong outputs included)."""


def _le_bytes(values: array[Any]) -> bytes:
    """An array's items as little-endian bytes, the byte order the v2 binary extension uses."""
    if _LITTLE_ENDIAN:
        return values.tobytes()
    swapped = array(values.typecode, values)
    swapped.byteswap()
    return swapped.tobytes()


@dataclass(frozen=True)
class BertBatch:
    """One request's worth of tokenized question/context pairs: three ``int32 [batch, seq_len]``
    tensors, each held flat (row after row) in an ``array('i')``."""

    batch_size: int
    seq_len: int
    input_ids: array[int]
    """Token ids: ``[CLS] question [SEP] context [SEP]`` then padding."""
    segment_ids: array[int]
    """0 on the question (with ``[CLS]`` and its ``[SEP]``), 1 on the context, 0 on padding."""
    input_mask: array[int]
    """1 on real tokens, 0 on padding."""

    @property
    def shape(self) -> list[int]:
        return [self.batch_size, self.seq_len]

    def flat(self) -> tuple[tuple[str, array[int]], ...]:
        """The tensors, flat, with their contract names in the order the model declares them."""
        return (
            (INPUT_IDS, self.input_ids),
            (SEGMENT_IDS, self.segment_ids),
            (INPUT_MASK, self.input_mask),
        )

    def named(self) -> tuple[tuple[str, npt.NDArray[np.int32]], ...]:
        """The tensors as numpy ``int32 [batch, seq_len]`` arrays (for numpy clients: gRPC,
        tritonclient, torch), with their contract names."""
        import numpy as np

        return tuple(
            (name, np.asarray(values, dtype=np.int32).reshape(self.batch_size, self.seq_len))
            for name, values in self.flat()
        )


def make_batch(*, batch_size: int, seq_len: int, rng: random.Random) -> BertBatch:
    """Random but well-formed inputs: word ids from the vocabulary's range and real lengths
    spread between ``MIN_SEQUENCE_LENGTH`` and ``seq_len``, so masks differ between requests."""
    if seq_len < MIN_SEQUENCE_LENGTH:
        raise ValueError(f"seq_len must be at least {MIN_SEQUENCE_LENGTH}, got {seq_len}")
    ids: list[int] = []
    segments: list[int] = []
    mask: list[int] = []
    for _ in range(batch_size):
        length = rng.randint(MIN_SEQUENCE_LENGTH, seq_len)
        question = rng.randint(1, max(2, (length - 3) // 3))
        row = [rng.randrange(FIRST_WORD_ID, VOCAB_SIZE) for _ in range(length)]
        row[0] = CLS_ID
        row[question + 1] = SEP_ID
        row[length - 1] = SEP_ID
        padding = seq_len - length
        ids += row + [PAD_ID] * padding
        segments += [0] * (question + 2) + [1] * (length - question - 2) + [0] * padding
        mask += [1] * length + [0] * padding
    return BertBatch(
        batch_size=batch_size,
        seq_len=seq_len,
        input_ids=array("i", ids),
        segment_ids=array("i", segments),
        input_mask=array("i", mask),
    )


def make_batches(*, count: int, batch_size: int, seq_len: int, seed: int = 0) -> list[BertBatch]:
    """``count`` distinct batches, the same for the same seed (so runs are comparable)."""
    rng = random.Random(seed)
    return [make_batch(batch_size=batch_size, seq_len=seq_len, rng=rng) for _ in range(count)]


def infer_inputs(
    tritonclient: Any, tensors: Iterable[tuple[str, npt.NDArray[np.int32]]]
) -> list[Any]:
    """Named tensors (``BertBatch.named()``, or a dict's items) as ``InferInput`` objects of
    ``tritonclient`` (the ``tritonclient.http`` or ``tritonclient.grpc`` module, passed in so
    this module imports neither), each holding its data (binary, over HTTP), ready to pass to
    ``infer`` any number of times."""
    inputs = []
    for name, tensor in tensors:
        infer_input = tritonclient.InferInput(name, list(tensor.shape), INPUT_DATATYPE)
        infer_input.set_data_from_numpy(tensor)
        inputs.append(infer_input)
    return inputs


@dataclass(frozen=True)
class EncodedRequest:
    """An HTTP inference request ready to send as is, any number of times."""

    body: bytes
    """The request body."""
    headers: dict[str, str]
    """Headers the body needs (content type, JSON header length, no compression)."""
    batch_size: int
    """Sequences in the request: the response's first dimension."""
    seq_len: int
    """Tokens per sequence: the response's second dimension."""
    output_shape: list[int] = field(init=False)
    """The shape ``cls_squad_logits`` must have (computed once: it is checked per answer)."""
    output_values: int = field(init=False)
    """How many numbers that is."""

    def __post_init__(self) -> None:
        shape = expected_shape(batch_size=self.batch_size, seq_len=self.seq_len)
        object.__setattr__(self, "output_shape", shape)
        object.__setattr__(self, "output_values", math.prod(shape))


def _output_request(*, binary: bool) -> list[dict[str, Any]]:
    return [{"name": OUTPUT_LOGITS, "parameters": {"binary_data": binary}}]


def encode_binary(batch: BertBatch) -> EncodedRequest:
    """The request with the binary tensor data extension, output asked for in binary."""
    tensors = [(name, _le_bytes(values)) for name, values in batch.flat()]
    header = {
        "inputs": [
            {
                "name": name,
                "shape": batch.shape,
                "datatype": INPUT_DATATYPE,
                "parameters": {"binary_data_size": len(raw)},
            }
            for name, raw in tensors
        ],
        "outputs": _output_request(binary=True),
    }
    head = json.dumps(header, separators=(",", ":")).encode()
    return EncodedRequest(
        body=head + b"".join(raw for _, raw in tensors),
        headers={
            "Content-Type": "application/octet-stream",
            INFER_HEADER_LENGTH: str(len(head)),
            "Accept-Encoding": "identity",
        },
        batch_size=batch.batch_size,
        seq_len=batch.seq_len,
    )


def encode_json(batch: BertBatch) -> EncodedRequest:
    """The plain JSON request, output asked for as JSON numbers."""
    body = {
        "inputs": [
            {"name": name, "shape": batch.shape, "datatype": INPUT_DATATYPE, "data": list(values)}
            for name, values in batch.flat()
        ],
        "outputs": _output_request(binary=False),
    }
    return EncodedRequest(
        body=json.dumps(body, separators=(",", ":")).encode(),
        headers={"Content-Type": "application/json", "Accept-Encoding": "identity"},
        batch_size=batch.batch_size,
        seq_len=batch.seq_len,
    )


def perf_analyzer_input_data(batches: Sequence[BertBatch]) -> dict[str, Any]:
    """perf_analyzer's ``--input-data`` document for ``batches``: one entry per sequence, each
    tensor flat with its per-sequence shape (perf_analyzer stacks entries into a batch of
    ``-b``), so it sends the same pairs the locustfile sends."""
    entries = []
    for batch in batches:
        for row in range(batch.batch_size):
            span = slice(row * batch.seq_len, (row + 1) * batch.seq_len)
            entries.append(
                {
                    name: {"content": values[span].tolist(), "shape": [batch.seq_len]}
                    for name, values in batch.flat()
                }
            )
    return {"data": entries}


def expected_shape(*, batch_size: int, seq_len: int) -> list[int]:
    """The shape of ``cls_squad_logits`` for a request of ``batch_size`` sequences."""
    return [batch_size, seq_len, LOGITS_PER_TOKEN]


def check_logits(logits: npt.NDArray[Any], *, batch_size: int, seq_len: int) -> None:
    """Raise ``UnexpectedResponseError`` unless ``logits`` (a numpy array, as numpy clients
    return it) is finite FP32 of the expected shape."""
    import numpy as np

    shape = expected_shape(batch_size=batch_size, seq_len=seq_len)
    if list(logits.shape) != shape:
        raise UnexpectedResponseError(
            f"{OUTPUT_LOGITS} has shape {list(logits.shape)}, expected {shape}"
        )
    if logits.dtype != np.float32:
        raise UnexpectedResponseError(f"{OUTPUT_LOGITS} is {logits.dtype}, expected float32")
    if not np.isfinite(logits).all():
        raise UnexpectedResponseError(f"{OUTPUT_LOGITS} holds NaN or infinite values")


def _fp32_all_finite(body: bytes, offset: int) -> bool:
    """Whether every little-endian FP32 value of ``body[offset:]`` is finite.

    A value is NaN or infinite when its 8 exponent bits are all ones, so its high byte is 0x7F
    or 0xFF. Scanning every fourth byte for those runs at C speed; only when one shows up are
    the values decoded (a finite value can have such a high byte too)."""
    high_bytes = body[offset + 3 :: 4] if _LITTLE_ENDIAN else body[offset::4]
    if 0x7F not in high_bytes and 0xFF not in high_bytes:
        return True
    values = array("f", body[offset:])
    if not _LITTLE_ENDIAN:
        values.byteswap()
    return all(map(math.isfinite, values))


def _error_text(body: bytes) -> str:
    try:
        return str(json.loads(body)["error"])
    except (ValueError, KeyError, TypeError):
        return body[:200].decode(errors="replace")


def _find_output(outputs: Any) -> dict[str, Any]:
    if not isinstance(outputs, list):
        raise UnexpectedResponseError("the response has no 'outputs' list")
    for output in outputs:
        if isinstance(output, dict) and output.get("name") == OUTPUT_LOGITS:
            return output
    names = [o.get("name") for o in outputs if isinstance(o, dict)]
    raise UnexpectedResponseError(f"the response has no output {OUTPUT_LOGITS!r} (it has {names})")


def _check_header(output: dict[str, Any], shape: Sequence[int]) -> None:
    if output.get("datatype") != OUTPUT_DATATYPE:
        raise UnexpectedResponseError(
            f"{OUTPUT_LOGITS} is {output.get('datatype')}, expected {OUTPUT_DATATYPE}"
        )
    if output.get("shape") != list(shape):
        raise UnexpectedResponseError(
            f"{OUTPUT_LOGITS} has shape {output.get('shape')}, expected {list(shape)}"
        )


def _check_json_values(data: Any, expected: int) -> None:
    if not isinstance(data, list):
        raise UnexpectedResponseError(f"{OUTPUT_LOGITS} has no JSON 'data' (asked for as JSON)")
    if len(data) != expected:
        message = f"{OUTPUT_LOGITS} has {len(data)} values, expected {expected}"
        raise UnexpectedResponseError(message)
    try:
        # One NaN or infinity makes the sum so; FP32 values are too small to overflow a double.
        finite = math.isfinite(math.fsum(data))
    except (TypeError, OverflowError):
        finite = False
    if not finite:
        raise UnexpectedResponseError(f"{OUTPUT_LOGITS} holds NaN, infinite or non-numeric values")


def check_response(
    *, status: int, body: bytes, header_length: int | None, request: EncodedRequest
) -> None:
    """Raise ``UnexpectedResponseError`` saying what is wrong unless the response to
    ``request`` is a 200 carrying ``cls_squad_logits`` with the contract's name, type, shape
    and byte size, every value finite.

    ``header_length`` is the response's ``Inference-Header-Content-Length`` (None when absent:
    a plain JSON response).
    """
    if status != 200:
        raise UnexpectedResponseError(f"HTTP {status}: {_error_text(body)}")
    head = body if header_length is None else body[:header_length]
    try:
        header = json.loads(head)
    except ValueError as exc:
        raise UnexpectedResponseError(f"the response header is not JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise UnexpectedResponseError("the response header is not a JSON object")
    output = _find_output(header.get("outputs"))
    _check_header(output, request.output_shape)
    if header_length is None:
        _check_json_values(output.get("data"), request.output_values)
        return
    expected_bytes = request.output_values * _FP32_BYTES
    declared = (output.get("parameters") or {}).get("binary_data_size")
    received = len(body) - header_length
    if declared != expected_bytes or received != expected_bytes:
        raise UnexpectedResponseError(
            f"{OUTPUT_LOGITS} should be {expected_bytes} bytes; the header says {declared}, "
            f"the body carries {received}"
        )
    # Shape and type are checked above; the values still can be NaN.
    if not _fp32_all_finite(body, header_length):
        raise UnexpectedResponseError(f"{OUTPUT_LOGITS} holds NaN or infinite values")
