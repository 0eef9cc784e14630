"""pip's package sources on this machine, as arguments for ``uv pip install``.

``make venv`` installs with uv (pip unpacks the 2 GB environment file by file on one core), but
uv reads none of pip's configuration. A machine that points pip at a mirror, a local wheel folder
(the CPU build of torch, say) or a constraints file would otherwise get other packages from uv
than from pip. This prints the index, extra indexes, find-links and constraints that ``pip config
list`` shows (its files and ``PIP_*`` variables, the variables first, as pip ranks them),
shell-quoted, one argument per word, and pip's way of choosing among them: the best match across
every source (uv's default takes a package from the first index that has it at all). A local
folder or ``file:`` index that does not exist is left out, as pip leaves it out (with a warning).

Usage: python -m scripts.uv_sources   (with the pip of the environment being installed)
"""

from __future__ import annotations

import ast
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlparse

SECTIONS = (":env:", "install", "global")
"""Where ``pip install`` reads an option, the first that sets it winning."""

OPTIONS = {
    "index-url": "--index-url",
    "extra-index-url": "--extra-index-url",
    "find-links": "--find-links",
    "constraint": "--constraint",
}
"""pip's options that choose packages, and uv's flag for each (one flag per value)."""


def pip_settings(listing: str) -> dict[str, str]:
    """``pip config list`` lines (``section.option='value'``) as option -> value, the first
    section of SECTIONS that sets an option winning."""
    found: dict[tuple[str, str], str] = {}
    for line in listing.splitlines():
        key, _, value = line.partition("=")
        section, _, option = key.rpartition(".")
        if section in SECTIONS and option in OPTIONS and value:
            found[section, option] = ast.literal_eval(value)
    settings: dict[str, str] = {}
    for section in SECTIONS:
        for option in OPTIONS:
            if (section, option) in found:
                settings.setdefault(option, found[section, option])
    return settings


def local_path(location: str) -> Path | None:
    """The folder or file ``location`` names on this machine, None for a remote URL."""
    parsed = urlparse(location)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    return Path(location) if parsed.scheme == "" else None


def uv_arguments(
    settings: dict[str, str], exists: Callable[[Path], bool] = Path.exists
) -> list[str]:
    """uv's arguments for pip's ``settings``: each value of a list option its own flag; a local
    location that does not exist is dropped."""
    arguments = ["--index-strategy", "unsafe-best-match"]
    for option, flag in OPTIONS.items():
        for value in settings.get(option, "").split():
            path = local_path(value)
            if path is None or exists(path):
                arguments += [flag, value]
    return arguments


def main() -> int:
    listing = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], check=True, capture_output=True, text=True
    ).stdout
    print(shlex.join(uv_arguments(pip_settings(listing))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
