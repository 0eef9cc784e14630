#!/usr/bin/python3
"""``tritonserver`` of the Triton image the image tests republish as the listing's: the chart's
default Triton is a newer release than the tests' build (2.51, NGC 24.10: tests/kube/
node_images.py), and the chart renders for it flags that 2.51 refuses to start with
(``--http-max-input-size``, from NGC 25.06). This launcher drops each flag the real binary does
not list in its ``--help``, saying so on stderr, and runs it with the rest, as the local demo
does (``demo.local.unknown_flags``). Python's standard library only."""

from __future__ import annotations

import os
import re
import subprocess
import sys

SERVER = "/opt/tritonserver/bin/tritonserver"


def known_flags() -> set[str]:
    shown = subprocess.run([SERVER, "--help"], capture_output=True, text=True, check=False)
    return set(re.findall(r"^\s+(--[a-z0-9][a-z0-9-]*)", shown.stdout + shown.stderr, re.M))


def main() -> None:
    known = known_flags()
    kept = []
    for arg in sys.argv[1:]:
        flag = arg.split("=", 1)[0]
        if arg.startswith("--") and flag not in known:
            print(f"launcher: dropped {flag}: this Triton predates it", file=sys.stderr)
        else:
            kept.append(arg)
    os.execv(SERVER, [SERVER, *kept])


if __name__ == "__main__":
    main()
