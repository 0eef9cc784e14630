"""The deployer's domain errors. Each message says what is wrong and what to do about it."""

from __future__ import annotations

from collections.abc import Sequence


class DeployerError(Exception):
    """Base of every error the deployer reports to its user."""


class BadInputError(DeployerError):
    """The user's input (schema, values, chart) is wrong: nothing was sent to the cluster.

    The command exits with code 2.
    """


class SchemaError(BadInputError):
    """``schema.yaml`` cannot be read or is not a Marketplace schema the deployer understands."""


class ValuesError(BadInputError):
    """The values do not satisfy the schema; ``problems`` lists every one, each with its key.

    The message stays short whatever the values hold (a 1 MB name, 20,000 unknown keys): each
    problem is cut to ``SHOWN_CHARS`` and the list to ``SHOWN_TOTAL`` characters, saying how
    many were left out; ``problems`` keeps them all.
    """

    SHOWN_CHARS = 1_000
    SHOWN_TOTAL = 3_000

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines: list[str] = []
        size = 0
        for problem in problems:
            if len(problem) > self.SHOWN_CHARS:
                problem = f"{problem[: self.SHOWN_CHARS]}... (cut)"
            if lines and size + len(problem) > self.SHOWN_TOTAL:
                lines.append(f"  ... and {len(problems) - len(lines):,} more problem(s)")
                break
            lines.append(f"  - {problem}")
            size += len(problem)
        text = "\n".join(lines)
        super().__init__(
            f"{len(problems):,} problem(s) in the values; fix them and deploy again:\n{text}"
        )


class RenderError(BadInputError):
    """``helm template`` failed, or rendered something the deployer refuses to apply."""


class ClusterError(DeployerError):
    """The cluster could not be reached or refused an operation (exit code 1)."""


class ApplyError(ClusterError):
    """Some objects could not be applied; ``failures`` names each object with its error, and
    ``applied`` the others of the same run, which are in place: nothing is left half-applied
    without the message saying so."""

    def __init__(self, failures: list[str], *, applied: Sequence[str] = ()) -> None:
        self.failures = failures
        self.applied = list(applied)
        lines = "\n".join(f"  - {f}" for f in failures)
        text = f"{len(failures)} object(s) could not be applied:\n{lines}"
        if self.applied:
            text += (
                f"\nthe other {len(self.applied)} were applied and are in place: "
                f"{', '.join(self.applied)}"
            )
        super().__init__(text)


class ReadinessTimeout(ClusterError):  # noqa: N818 (the name the docs and style guide use)
    """Objects were not ready in time, or failed for good (``gave_up``); ``reasons`` names
    each object and says why."""

    def __init__(self, reasons: list[str], *, timeout_s: float, gave_up: bool = False) -> None:
        self.reasons = reasons
        self.gave_up = gave_up
        lines = "\n".join(f"  - {r}" for r in reasons)
        head = "failed before it was ready" if gave_up else f"not ready after {timeout_s:.0f} s"
        super().__init__(f"{len(reasons)} object(s) {head}:\n{lines}")


class DeadlinePassed(ClusterError):  # noqa: N818 (says what happened, as ReadinessTimeout)
    """The command's deadline (``--timeout``) passed: no further request is sent."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(
            f"the command's deadline of {seconds:g} s (--timeout) passed, so nothing more "
            "was sent to the cluster: see above what took the time, or give a longer --timeout"
        )


class VerificationError(ClusterError):
    """The Marketplace tester pod did not succeed."""
