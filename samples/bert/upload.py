"""Copy a model repository to ``gs://BUCKET/PREFIX``, skipping files whose MD5 already matches.

Uses ``google-cloud-storage`` with Application Default Credentials; with
``STORAGE_EMULATOR_HOST`` set it talks to that emulator instead, anonymously.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import io
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from samples.bert.errors import UploadError
from samples.bert.tensorrt import BUILD_FOLDER

DEFAULT_EXCLUDES = (f"*/{BUILD_FOLDER}/*", "*/__pycache__/*")
"""Not served: TensorRT build inputs (the ONNX model, the build script), and the bytecode a
local Triton leaves next to ``model.py``."""

Progress = Callable[[str], None]

CHUNK_BYTES = 64 * 1024 * 1024
"""Files larger than this go up in resumable chunks of this size, with a line per chunk
(BERT-large's ONNX model is 1.3 GB). A multiple of 256 KiB, as the service requires."""


class _ProgressReader(io.RawIOBase):
    """A read-only file that reports how much of it has been read, at most one line a chunk."""

    def __init__(self, path: Path, *, label: str, progress: Progress, every: int) -> None:
        self._file = path.open("rb")
        self._size = path.stat().st_size
        self._label = label
        self._progress = progress
        self._every = every
        self._reported = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(size)
        position = self._file.tell()
        if position - self._reported >= self._every or (data and position == self._size):
            self._reported = position
            percent = 100 * position // max(self._size, 1)
            self._progress(
                f"      {self._label}: {percent}% ({_size(position)} of {_size(self._size)})"
            )
        return data

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def close(self) -> None:
        self._file.close()
        super().close()


@dataclass(frozen=True)
class Destination:
    """Where a repository goes in Cloud Storage."""

    bucket: str
    """The bucket's name."""
    prefix: str
    """Object name prefix, without leading or trailing slashes; may be empty."""

    @classmethod
    def parse(cls, url: str) -> Destination:
        """``gs://bucket/some/prefix`` into its parts; ``UploadError`` for anything else."""
        if not url.startswith("gs://") or not url[5:].split("/", 1)[0]:
            raise UploadError(f"destination {url!r} is not a gs://BUCKET[/PREFIX] URL")
        bucket, _, prefix = url[5:].partition("/")
        return cls(bucket=bucket, prefix=prefix.strip("/"))

    def object_name(self, relative: str) -> str:
        """The object name of a file at ``relative`` (posix) in the repository."""
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def __str__(self) -> str:
        """The ``gs://`` URL."""
        return f"gs://{self.bucket}/{self.prefix}" if self.prefix else f"gs://{self.bucket}"


@dataclass(frozen=True)
class UploadSummary:
    """What one upload did."""

    uploaded: list[str]
    """Relative paths that were sent."""
    unchanged: list[str]
    """Relative paths skipped because the remote MD5 matched."""
    deleted: list[str]
    """Remote objects removed because they are no longer in the repository."""
    stale: list[str]
    """Remote objects not in the repository that were left in place."""
    bytes_sent: int
    """Total size of the uploaded files."""


def md5_base64(path: Path) -> str:
    """The file's MD5 as Cloud Storage reports it (``md5Hash``: base64 of the digest)."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return base64.b64encode(digest.digest()).decode()


def local_files(repository: Path, excludes: Sequence[str]) -> Iterator[tuple[str, Path]]:
    """``(relative posix path, path)`` of every file to upload, sorted."""
    for path in sorted(repository.rglob("*")):
        relative = path.relative_to(repository).as_posix()
        if path.is_file() and not any(fnmatch.fnmatch(relative, p) for p in excludes):
            yield relative, path


def _client() -> Any:
    """A storage client, or ``UploadError`` saying how to get credentials."""
    from google.auth.exceptions import DefaultCredentialsError
    from google.cloud import storage

    try:
        return storage.Client()
    except DefaultCredentialsError as exc:
        raise UploadError(
            "no Google Cloud credentials: run `gcloud auth application-default login`, or set "
            "GOOGLE_APPLICATION_CREDENTIALS to a service account key file (STORAGE_EMULATOR_HOST "
            f"for an emulator). Details: {exc}"
        ) from exc


def _remote_md5s(client: Any, destination: Destination) -> dict[str, str | None]:
    """Object name to MD5 of everything under the prefix; ``UploadError`` for a missing bucket
    or missing permissions."""
    from google.api_core import exceptions
    from google.auth.exceptions import GoogleAuthError

    prefix = f"{destination.prefix}/" if destination.prefix else ""
    try:
        return {
            blob.name: blob.md5_hash
            for blob in client.list_blobs(destination.bucket, prefix=prefix)
        }
    except exceptions.NotFound as exc:
        raise UploadError(
            f"bucket {destination.bucket!r} does not exist: create it with "
            f"`gcloud storage buckets create gs://{destination.bucket}` or fix the name"
        ) from exc
    except exceptions.Forbidden as exc:
        raise UploadError(
            f"no permission to list gs://{destination.bucket}: grant the account "
            f"roles/storage.objectAdmin on the bucket. Details: {exc.message}"
        ) from exc
    except GoogleAuthError as exc:
        raise UploadError(
            f"credentials were refused: run `gcloud auth application-default login`. Details: {exc}"
        ) from exc


def _size(num_bytes: int) -> str:
    return f"{num_bytes / 1e6:.1f} MB" if num_bytes >= 100_000 else f"{num_bytes / 1e3:.1f} kB"


def upload_repository(
    repository: Path,
    url: str,
    *,
    excludes: Sequence[str] = DEFAULT_EXCLUDES,
    delete: bool = False,
    chunk_bytes: int = CHUNK_BYTES,
    progress: Progress = print,
) -> UploadSummary:
    """Upload ``repository`` to ``url`` (``gs://bucket/prefix``), one progress line a file and
    one a chunk of ``chunk_bytes`` for larger files.

    Files whose remote MD5 matches are skipped. Remote objects under the prefix that are not in
    the repository are deleted with ``delete``, otherwise listed as stale (Triton would still
    load a leftover version folder).
    """
    destination = Destination.parse(url)
    if not repository.is_dir():
        raise UploadError(f"{repository} is not a folder: build it first (make model-repository)")
    files = list(local_files(repository, excludes))
    if not files:
        raise UploadError(f"{repository} holds no files to upload")
    client = _client()
    remote = _remote_md5s(client, destination)
    bucket = client.bucket(destination.bucket)
    started = time.monotonic()
    uploaded: list[str] = []
    unchanged: list[str] = []
    bytes_sent = 0
    for index, (relative, path) in enumerate(files, start=1):
        name = destination.object_name(relative)
        counter = f"[{index}/{len(files)}]"
        md5 = md5_base64(path)
        if remote.get(name) == md5:
            unchanged.append(relative)
            progress(f"{counter} unchanged {relative}")
            continue
        size = path.stat().st_size
        progress(f"{counter} uploading {relative} ({_size(size)})")
        if size > chunk_bytes:
            blob = bucket.blob(name, chunk_size=chunk_bytes)
            with _ProgressReader(
                path, label=relative, progress=progress, every=chunk_bytes
            ) as stream:
                blob.upload_from_file(stream, size=size)
        else:
            bucket.blob(name).upload_from_filename(str(path))
        uploaded.append(relative)
        bytes_sent += size
    wanted = {destination.object_name(relative) for relative, _ in files}
    leftovers = sorted(name for name in remote if name not in wanted)
    deleted: list[str] = []
    if delete:
        for name in leftovers:
            progress(f"deleting gs://{destination.bucket}/{name}")
            bucket.blob(name).delete()
            deleted.append(name)
    elif leftovers:
        progress(
            f"{len(leftovers)} object(s) under {destination} are not in {repository} "
            f"(e.g. {leftovers[0]}); pass --delete to remove them"
        )
    progress(
        f"{destination}: {len(uploaded)} uploaded ({_size(bytes_sent)}), {len(unchanged)} "
        f"unchanged, {len(deleted)} deleted in {time.monotonic() - started:.1f} s"
    )
    return UploadSummary(
        uploaded=uploaded,
        unchanged=unchanged,
        deleted=deleted,
        stale=[] if delete else leftovers,
        bytes_sent=bytes_sent,
    )
