"""The Marketplace Application's phase: the patches that say how a deploy is going.

GKE Marketplace reads ``spec.assemblyPhase`` (``Pending``, ``Success``, ``Failed``); the reason
goes in a ``Ready`` condition of the status, where ``kubectl describe application`` shows it.
Pure functions: the caller sends the patches.
"""

from __future__ import annotations

import datetime
from enum import Enum
from typing import Any

MAX_MESSAGE = 2000
"""Condition messages are cut here: an Application is no place for a long log."""


class Phase(Enum):
    PENDING = "Pending"
    SUCCESS = "Success"
    FAILED = "Failed"


_CONDITION_STATUS = {Phase.PENDING: "Unknown", Phase.SUCCESS: "True", Phase.FAILED: "False"}


def phase_patch(phase: Phase) -> dict[str, Any]:
    """The merge patch that sets the Application's assembly phase."""
    return {"spec": {"assemblyPhase": phase.value}}


def status_patch(
    phase: Phase, *, reason: str, message: str, now: datetime.datetime | None = None
) -> dict[str, Any]:
    """The merge patch for the status subresource: one ``Ready`` condition with the reason.

    ``reason`` is a CamelCase word (``Deploying``, ``ApplyFailed``, ``NotReady``); ``message``
    says what happened, cut to MAX_MESSAGE characters.
    """
    stamp = (now or datetime.datetime.now(tz=datetime.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "…"
    return {
        "status": {
            "conditions": [
                {
                    "type": "Ready",
                    "status": _CONDITION_STATUS[phase],
                    "reason": reason,
                    "message": text,
                    "lastTransitionTime": stamp,
                    "lastUpdateTime": stamp,
                }
            ]
        }
    }


def phase_of(application: dict[str, Any] | None) -> str:
    """The live Application's phase as Marketplace shows it (empty means Success), with the
    reason when it failed."""
    if application is None:
        return "absent"
    phase = str((application.get("spec") or {}).get("assemblyPhase") or "Success")
    if phase != Phase.FAILED.value:
        return phase
    conditions = (application.get("status") or {}).get("conditions") or []
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    if ready is None:
        return phase
    return f"{phase} ({ready.get('reason', '')}: {ready.get('message', '')})"
