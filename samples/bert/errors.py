"""The sample's errors. Each message says what is wrong and what to do about it."""

from __future__ import annotations


class SampleError(Exception):
    """Base of every error the BERT sample reports to its user."""


class BuildError(SampleError):
    """The model repository cannot be written as asked (bad settings, checkpoint, output)."""


class UploadError(SampleError):
    """The repository cannot be uploaded (no credentials, no bucket, no such folder)."""
