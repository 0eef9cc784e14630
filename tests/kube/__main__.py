"""``python -m tests.kube COMMAND...``: run a command against the tests' control plane.

The control plane (with the CRDs the chart's objects need) and the kubelet stand-in with a CPU
node and an ``nvidia-l4`` node, as the ``control_plane`` and ``kubelet`` fixtures start them;
``KUBECONFIG`` names its admin kubeconfig in the command's environment. Everything is stopped
when the command ends, however it ends; its exit code is returned. ``make bench-deployer``
runs the deployer benchmark this way.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tests.kube.control_plane import missing_prerequisite, running_control_plane
from tests.kube.kubelet import KubeletStandIn

ROOT = Path(__file__).resolve().parents[2]
CRD_FILES = sorted((ROOT.parent / "shared" / "crds").glob("*.yaml")) + sorted(
    (ROOT / "tests" / "chart" / "crds").glob("*.yaml")
)


def main(command: Sequence[str]) -> int:
    if not command:
        print("usage: python -m tests.kube COMMAND [ARGS...]", file=sys.stderr)
        return 2
    reason = missing_prerequisite()
    if reason:
        print(f"no control plane here: {reason}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as folder, running_control_plane(Path(folder)) as plane:
        plane.apply_files(CRD_FILES)
        plane.wait_for_crds()
        kubelet = KubeletStandIn(plane.api_client())
        kubelet.start()
        try:
            kubelet.add_node("cpu-node-1", cpu="16", memory="64Gi")
            kubelet.add_node("l4-node-1", accelerator="nvidia-l4", gpus=1, cpu="8", memory="32Gi")
            env = {**os.environ, "KUBECONFIG": str(plane.kubeconfig)}
            return subprocess.run(command, env=env, check=False).returncode
        finally:
            kubelet.stop()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
