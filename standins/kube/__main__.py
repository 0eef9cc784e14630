"""``python -m standins.kube COMMAND...``: run a command against a local control plane.

The control plane (with the CRDs the chart's objects need) and the kubelet stand-in with a CPU
node and an ``nvidia-l4`` node, as the tests' ``control_plane`` and ``kubelet`` fixtures start
them; ``KUBECONFIG`` names its admin kubeconfig in the command's environment. Everything is
stopped when the command ends, however it ends; its exit code is returned.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from standins.kube.control_plane import missing_prerequisite, running_control_plane_with_crds
from standins.kube.kubelet import KubeletStandIn, add_standard_nodes


def main(command: Sequence[str]) -> int:
    if not command:
        print("usage: python -m standins.kube COMMAND [ARGS...]", file=sys.stderr)
        return 2
    reason = missing_prerequisite()
    if reason:
        print(f"no control plane here: {reason}", file=sys.stderr)
        return 1
    with (
        tempfile.TemporaryDirectory() as folder,
        running_control_plane_with_crds(Path(folder)) as plane,
    ):
        kubelet = KubeletStandIn(plane.api_client())
        kubelet.start()
        try:
            add_standard_nodes(kubelet)
            env = {**os.environ, "KUBECONFIG": str(plane.kubeconfig)}
            return subprocess.run(command, env=env, check=False).returncode
        finally:
            kubelet.stop()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
