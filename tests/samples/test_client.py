"""Requests the load test sends and the checks on what comes back (pure functions).

Cases: inputs are well-formed BERT pairs (ids in the vocabulary's range, [CLS]/[SEP] placed,
segments and masks consistent, lengths varied, the same for the same seed); the binary request
carries the JSON header length and the raw tensors; the JSON request round-trips; a correct
binary or JSON answer passes; each kind of wrong answer fails with a message naming the problem
(non-200, not JSON, output missing, wrong datatype, wrong shape, truncated or mis-declared bytes,
NaN, wrong number of JSON values).
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
        assert batch.input_ids.dtype == np.int32
        assert batch.input_ids.shape == batch.segment_ids.shape == batch.input_mask.shape
        for ids, segments, mask in zip(
            batch.input_ids, batch.segment_ids, batch.input_mask, strict=True
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
    assert all((a.input_ids == b.input_ids).all() for a, b in zip(first, again, strict=True))


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
    assert (ids == batch.input_ids).all()


def test_json_request_round_trips() -> None:
    (batch,) = make_batches(count=1, batch_size=1, seq_len=SEQ)
    request = encode_json(batch)
    assert INFER_HEADER_LENGTH not in request.headers
    body = json.loads(request.body)
    assert body["inputs"][2]["data"] == batch.input_mask.ravel().tolist()
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
        "json-count",
    ],
)
def test_wrong_answers_fail_with_the_reason(
    status: int, answer: tuple[bytes, int | None], message: str
) -> None:
    body, head = answer
    with pytest.raises(UnexpectedResponseError, match=message.replace("[", r"\[")):
        check_response(status=status, body=body, header_length=head, request=_request())
