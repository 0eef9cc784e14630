"""The demo's errors. Each message says what is wrong and what to do about it."""

from __future__ import annotations


class DemoError(Exception):
    """``make demo`` could not run a step; the message says which and what to do."""


class LocalTritonError(DemoError):
    """The local Triton server could not be found, started or made ready."""
