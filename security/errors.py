"""The audit's errors: each message says what is wrong and what to change."""

from __future__ import annotations


class AuditError(Exception):
    """Base of every error the audit reports."""


class RecordError(AuditError):
    """A record in security/ (bulletins, third-party manifests) is malformed."""


class ReleaseError(AuditError):
    """A value is not an NGC release (``YY.MM``) or an image tag that names one."""
