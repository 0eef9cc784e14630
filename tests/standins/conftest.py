"""Fixtures for the stand-ins' tests: the API emulator and the deployer's cluster module on it
are the deployer tests' own fixtures (tests/deployer/conftest.py), so both suites test the same
emulator the same way."""

from tests.deployer.conftest import cluster, emulator

__all__ = ["cluster", "emulator"]
