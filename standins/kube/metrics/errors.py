"""The metrics stand-in's refusals: answered as ``Status`` objects with the messages of the
reader that refuses."""

from __future__ import annotations

import json


class MetricsApiError(Exception):
    """A refusal, answered as a ``Status`` with ``code`` and the reader's message."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


def go_quoted(text: str) -> str:
    """``text`` as Go's ``%q`` writes it (the adapter's messages use it)."""
    return json.dumps(text)


def not_found(message: str) -> MetricsApiError:
    return MetricsApiError(404, "NotFound", message)
