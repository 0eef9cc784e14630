"""Requests the load test sends and the checks on what comes back (pure functions).

Cases: inputs are well-formed BERT pairs (ids in the vocabulary's range, [CLS]/[SEP] placed,
segments and masks consistent, lengths varied, the same for the same seed, numpy views of
the same values); the binary request
carries the JSON header length and the raw tensors; the JSON request round-trips; a correct
binary or JSON answer passes; each kind of wrong answer fails with a message naming the problem
(non-200, not JSON, output missing, wrong datatype, wrong shape, truncated or mis-declared bytes,
NaN, a single infinity or NaN among finite values, wrong number of JSON values, a JSON NaN
or string); finite values whose high byte is that of NaN pass.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from samples.bert.client import (
    CLS_ID,
    FIRST_WORD_ID,
    INFER_HEADER_LENGTH,
    SEP_ID,
    VOCAB_SIZE,
    EncodedRequest,
    UnexpectedResponseError,
    check_response,
    encode_binary,
    encode_json,
    make_batches,
)
from samples.bert.contract import INPUT_IDS, INPUT_MASK, OUTPUT_LOGITS, SEGMENT_IDS

SEQ = 128


def test_inputs_are_well_formed_pairs() -> None:
    batches = make_batches(count=32, batch_size=2, seq_len=SEQ, seed=3)
    lengths = set()
    for batch in batches:
        tensors = dict(batch.named())
        assert tensors[INPUT_IDS].dtype == np.int32
        assert all(t.shape == (2, SEQ) for t in tensors.values())
        for ids, segments, mask in zip(
            tensors[INPUT_IDS], tensors[SEGMENT_IDS], tensors[INPUT_MASK], strict=True
        ):
            length = int(mask.sum())
            lengths.add(length)
            assert mask[:length].all() and not mask[length:].any()
            assert ids[0] == CLS_ID and ids[length - 1] == SEP_ID
            assert (ids[length:] == 0).all() and (segments[length:] == 0).all()
            separators = np.flatnonzero(ids[:length] == SEP_ID)
            assert len(separators) == 2
            words = np.delete(ids[:length], [0, *separators])
            assert ((words >= FIRST_WORD_ID) & (words < VOCAB_SIZE)).all()
            # Question (with [CLS] and its [SEP]) is segment 0, the context segment 1.
            assert (segments[: separators[0] + 1] == 0).all()
            assert (segments[separators[0] + 1 : length] == 1).all()
    assert len(lengths) > 20, "mask lengths should vary between requests"


def test_same_seed_same_inputs() -> None:
    first = make_batches(count=4, batch_size=1, seq_len=SEQ, seed=7)
    again = make_batches(count=4, batch_size=1, seq_len=SEQ, seed=7)
    other = make_batches(count=4, batch_size=1, seq_len=SEQ, seed=8)
    assert [b.flat() for b in first] == [b.flat() for b in again]
    assert [b.flat() for b in first] != [b.flat() for b in other]


def test_too_short_a_sequence_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 8"):
        make_batches(count=1, batch_size=1, seq_len=4)


def test_binary_request_layout() -> None:
    (batch,) = make_batches(count=1, batch_size=3, seq_len=SEQ)
    request = encode_binary(batch)
    assert request.headers["Accept-Encoding"] == "identity"
    head_length = int(request.headers[INFER_HEADER_LENGTH])
    header = json.loads(request.body[:head_length])
    assert [i["name"] for i in header["inputs"]] == [INPUT_IDS, SEGMENT_IDS, INPUT_MASK]
    assert all(i["shape"] == [3, SEQ] and i["datatype"] == "INT32" for i in header["inputs"])
    assert header["outputs"] == [{"name": OUTPUT_LOGITS, "parameters": {"binary_data": True}}]
    raw = request.body[head_length:]
    assert len(raw) == 3 * 3 * SEQ * 4
    ids = np.frombuffer(raw[: 3 * SEQ * 4], dtype="<i4").reshape(3, SEQ)
    assert (ids == dict(batch.named())[INPUT_IDS]).all()


def test_json_request_round_trips() -> None:
    (batch,) = make_batches(count=1, batch_size=1, seq_len=SEQ)
    request = encode_json(batch)
    assert INFER_HEADER_LENGTH not in request.headers
    body = json.loads(request.body)
    assert body["inputs"][2]["data"] == batch.input_mask.tolist()
    assert body["outputs"][0]["parameters"] == {"binary_data": False}


def _request(batch_size: int = 1) -> EncodedRequest:
    (batch,) = make_batches(count=1, batch_size=batch_size, seq_len=SEQ)
    return encode_binary(batch)


def _binary_answer(logits: np.ndarray[Any, Any], **overrides: Any) -> tuple[bytes, int]:
    raw = logits.astype("<f4").tobytes()
    output = {
        "name": OUTPUT_LOGITS,
        "datatype": "FP32",
        "shape": list(logits.shape),
        "parameters": {"binary_data_size": len(raw)},
        **overrides,
    }
    head = json.dumps({"model_name": "bert", "outputs": [output]}).encode()
    return head + raw, len(head)


def test_correct_binary_answer_passes() -> None:
    body, head = _binary_answer(np.zeros((2, SEQ, 2), dtype=np.float32))
    check_response(status=200, body=body, header_length=head, request=_request(2))


def test_correct_json_answer_passes() -> None:
    output = {"name": OUTPUT_LOGITS, "datatype": "FP32", "shape": [1, SEQ, 2]}
    body = json.dumps({"outputs": [{**output, "data": [0.5] * (SEQ * 2)}]}).encode()
    check_response(status=200, body=body, header_length=None, request=_request())


GOOD = np.ones((1, SEQ, 2), dtype=np.float32)


def _with(logits: np.ndarray[Any, Any], index: int, value: float) -> np.ndarray[Any, Any]:
    changed = logits.copy()
    changed.reshape(-1)[index] = value
    return changed


def _json_answer(data: list[Any]) -> tuple[bytes, None]:
    output = {"name": OUTPUT_LOGITS, "datatype": "FP32", "shape": [1, SEQ, 2], "data": data}
    return json.dumps({"outputs": [output]}).encode(), None


def test_finite_values_whose_high_byte_looks_like_nan_pass() -> None:
    # +-3.0e38 are 0x7F61... and 0xFF61...: the high byte of NaN, but the exponent's lowest
    # bit (the next byte's top bit) is clear, so the values are finite.
    values = np.array([3.0e38, -3.0e38, 1.0, -2.5] * (SEQ // 2), dtype=np.float32)
    body, head = _binary_answer(values.reshape(1, SEQ, 2))
    assert 0x7F in body[head + 3 :: 4] and 0xFF in body[head + 3 :: 4]
    check_response(status=200, body=body, header_length=head, request=_request())


@pytest.mark.parametrize(
    ("status", "answer", "message"),
    [
        (400, (b'{"error":"unexpected shape for input"}', None), "HTTP 400: unexpected shape"),
        (200, (b"<html>gateway</html>", None), "not JSON"),
        (200, _binary_answer(GOOD, name="logits"), "no output 'cls_squad_logits'"),
        (200, _binary_answer(GOOD, datatype="FP16"), "is FP16, expected FP32"),
        (200, _binary_answer(np.ones((1, SEQ, 3), np.float32)), "shape [1, 128, 3]"),
        (200, _binary_answer(GOOD, shape=[1, SEQ]), "shape [1, 128], expected"),
        (200, _binary_answer(GOOD, parameters={"binary_data_size": 12}), "the header says 12"),
        (200, (_binary_answer(GOOD)[0][:-8], _binary_answer(GOOD)[1]), "carries 1016"),
        (200, _binary_answer(np.full((1, SEQ, 2), np.nan, np.float32)), "NaN"),
        (200, _binary_answer(_with(GOOD, 200, np.inf)), "NaN or infinite"),
        (200, _binary_answer(_with(GOOD, 0, -np.nan)), "NaN or infinite"),
        (
            200,
            (
                json.dumps(
                    {
                        "outputs": [
                            {
                                "name": OUTPUT_LOGITS,
                                "datatype": "FP32",
                                "shape": [1, SEQ, 2],
                                "data": [0.0] * 7,
                            }
                        ]
                    }
                ).encode(),
                None,
            ),
            "has 7 values",
        ),
        (200, _json_answer([0.0] * (SEQ * 2 - 1) + [float("nan")]), "NaN, infinite"),
        (200, _json_answer([0.0] * (SEQ * 2 - 1) + ["1.0"]), "non-numeric"),
    ],
    ids=[
        "http-error",
        "not-json",
        "missing-output",
        "datatype",
        "shape",
        "header-shape",
        "declared-size",
        "truncated",
        "nan",
        "one-inf",
        "one-negative-nan",
        "json-count",
        "json-nan",
        "json-text",
    ],
)
def test_wrong_answers_fail_with_the_reason(
    status: int, answer: tuple[bytes, int | None], message: str
) -> None:
    body, head = answer
    with pytest.raises(UnexpectedResponseError, match=message.replace("[", r"\[")):
        check_response(status=status, body=body, header_length=head, request=_request())
