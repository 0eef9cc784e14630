"""A pytest plugin (``-p tests.xdist_modules``) for runs over pytest-xdist workers: the tests of
tests/tiers.py's ``ONE_WORKER_MODULES`` go to one worker together, so their module fixture runs
once; every other test is sent on its own to the next free worker. ``python -m tests`` loads it
for the lanes of ``ONE_WORKER_MODULE_LANES``.

pytest-xdist's own way, an ``xdist_group`` mark with ``--dist loadgroup``, groups nothing with
pytest 9.2: it renames the tests' node ids, which pytest no longer takes
(pytest-dev/pytest-xdist#1386).
"""

from __future__ import annotations

from typing import Any

import pytest
from xdist.scheduler import LoadScopeScheduling

from tests.tiers import xdist_scope


class ModuleFixtureScheduling(LoadScopeScheduling):  # type: ignore[misc]  # xdist is untyped
    """pytest-xdist's scheduling by scope, with ``xdist_scope``'s scopes: the grouped modules are
    sent first, the biggest first, then the single tests in collection order."""

    def _split_scope(self, nodeid: str) -> str:
        return xdist_scope(nodeid)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> ModuleFixtureScheduling:
    return ModuleFixtureScheduling(config, log)
