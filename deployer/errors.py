"""The deployer's domain errors. Each message says what is wrong and what to do about it."""

from __future__ import annotations


class DeployerError(Exception):
    """Base of every error the deployer reports to its user."""


class LocalTritonError(DeployerError):
    """The local Triton server could not be found, started or made ready."""
