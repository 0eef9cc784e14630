"""The benchmarks' errors: a run that cannot go on, with what to do about it."""

from __future__ import annotations


class BenchError(Exception):
    """A benchmark cannot run as asked; the message says what to change."""
