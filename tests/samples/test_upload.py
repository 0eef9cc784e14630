"""Upload to Cloud Storage, against a real ``gcp-storage-emulator`` on loopback.

Cases:
- a first upload sends every file with a progress line each and skips the TensorRT build
  inputs; a second sends nothing (MD5 unchanged); a changed file is the only one sent; a
  leftover remote object is reported, and removed with ``delete``;
- a file larger than the chunk size goes up in resumable chunks, a line each, intact;
- a missing bucket, missing credentials, a URL that is not gs:// and a missing folder each
  raise UploadError saying what to do (the CLI exits 2, and 0 with the helm command on success);
- the real Triton loads the uploaded repository from ``gs://`` through
  ``CLOUD_STORAGE_EMULATOR_ENDPOINT`` (bounded wait) and answers with torch's values.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as http

from demo.local import LocalTriton
from samples.bert import contract
from samples.bert.cli import main
from samples.bert.client import infer_inputs
from samples.bert.errors import UploadError
from samples.bert.network import SquadLogits
from samples.bert.upload import Destination, upload_repository
from tests.samples.helpers import expected_logits, sample_inputs

BUCKET = "models"


@pytest.fixture(scope="module")
def bucket(gcs_emulator: str) -> str:
    """A bucket in the emulator, created once."""
    from google.cloud import storage

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator)
        storage.Client().create_bucket(BUCKET)
    return BUCKET


@pytest.fixture(scope="module")
def repository(python_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The onnxruntime model of the python repository, plus TensorRT build inputs to skip."""
    copy = tmp_path_factory.mktemp("upload") / "models"
    shutil.copytree(python_repository / contract.DEFAULT_MODEL_NAME, copy / "bert")
    (copy / "bert" / "tensorrt-build").mkdir()
    (copy / "bert" / "tensorrt-build" / "model.onnx").write_bytes(b"not served")
    return copy


def test_destination_parsing() -> None:
    assert Destination.parse("gs://b/a/b/") == Destination("b", "a/b")
    assert Destination.parse("gs://b").object_name("x/config.pbtxt") == "x/config.pbtxt"
    for bad in ("s3://b/x", "gs:///x", "/tmp/models"):
        with pytest.raises(UploadError, match="is not a gs://BUCKET"):
            Destination.parse(bad)


def test_upload_skips_unchanged_and_reports_leftovers(
    emulator_env: str, bucket: str, repository: Path, tmp_path: Path
) -> None:
    lines: list[str] = []
    url = f"gs://{bucket}/first"
    first = upload_repository(repository, url, progress=lines.append)
    assert first.uploaded == [
        "bert/1/bert_network.py",
        "bert/1/bert_onnxruntime.py",
        "bert/1/model.onnx",
        "bert/1/model.py",
        "bert/MANIFEST.json",
        "bert/config.pbtxt",
    ]
    assert re.fullmatch(r"\[1/6\] uploading bert/1/bert_network\.py \(\d+\.\d kB\)", lines[0])
    assert lines[-1].startswith(f"{url}: 6 uploaded")

    second = upload_repository(repository, url, progress=lines.append)
    assert (second.uploaded, len(second.unchanged)) == ([], 6)

    changed = tmp_path / "models"
    shutil.copytree(repository, changed)
    (changed / "bert" / "config.pbtxt").write_text("# changed\n")
    (changed / "bert" / "MANIFEST.json").unlink()
    third = upload_repository(changed, url, progress=lines.append)
    assert third.uploaded == ["bert/config.pbtxt"]
    assert third.stale == ["first/bert/MANIFEST.json"]
    assert any("pass --delete" in line for line in lines)

    fourth = upload_repository(changed, url, delete=True, progress=lines.append)
    assert (fourth.uploaded, fourth.deleted) == ([], ["first/bert/MANIFEST.json"])


def test_large_files_go_up_in_chunks(emulator_env: str, bucket: str, repository: Path) -> None:
    lines: list[str] = []
    url = f"gs://{bucket}/chunked"
    chunk = 4 * 1024 * 1024
    onnx_size = (repository / "bert" / "1" / "model.onnx").stat().st_size
    assert onnx_size > 2 * chunk
    upload_repository(repository, url, chunk_bytes=chunk, progress=lines.append)
    chunk_lines = [line.strip() for line in lines if line.startswith("      bert/1/model.onnx: ")]
    assert len(chunk_lines) == -(-onnx_size // chunk)
    assert chunk_lines[-1].startswith("bert/1/model.onnx: 100% (")
    # The service holds the same bytes: the next upload finds every MD5 unchanged.
    again = upload_repository(repository, url, chunk_bytes=chunk, progress=lambda _: None)
    assert again.uploaded == []


def test_missing_bucket(emulator_env: str, repository: Path) -> None:
    with pytest.raises(UploadError, match="bucket 'no-such-bucket' does not exist: create it"):
        upload_repository(repository, "gs://no-such-bucket/models", progress=print)


def test_missing_credentials(
    repository: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    # A key file that is not there fails at once, without asking any metadata server.
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing-key.json"))
    with pytest.raises(UploadError, match="no Google Cloud credentials: run `gcloud auth"):
        upload_repository(repository, "gs://models/x", progress=print)


def test_cli_exit_codes(
    emulator_env: str,
    bucket: str,
    repository: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["upload", str(repository), f"gs://{bucket}/cli"]) == 0
    out = capsys.readouterr().out
    assert "[6/6] uploading bert/config.pbtxt" in out
    assert f"next: helm install triton chart --set modelRepository=gs://{bucket}/cli" in out
    assert main(["upload", str(tmp_path / "absent"), "gs://models/x"]) == 2
    assert "is not a folder: build it first" in capsys.readouterr().err
    assert main(["upload", str(repository), "gs://no-such-bucket"]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.slow
def test_triton_serves_the_uploaded_repository(
    emulator_env: str,
    bucket: str,
    repository: Path,
    reference: SquadLogits,
    tmp_path: Path,
) -> None:
    url = f"gs://{bucket}/served"
    upload_repository(repository, url, progress=lambda _: None)
    with LocalTriton(
        model_repository=url,
        workdir=tmp_path / "triton",
        env={"CLOUD_STORAGE_EMULATOR_ENDPOINT": emulator_env},
        ready_timeout_s=90,
    ) as server:
        client = http.InferenceServerClient(server.http_url.removeprefix("http://"))
        try:
            inputs = sample_inputs(2, seed=5)
            request = infer_inputs(http, inputs.items())
            result = client.infer(contract.DEFAULT_MODEL_NAME, request)
            np.testing.assert_allclose(
                result.as_numpy(contract.OUTPUT_LOGITS),
                expected_logits(reference, inputs),
                rtol=0,
                atol=1e-4,
            )
        finally:
            client.close()
