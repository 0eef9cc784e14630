"""`make package`: the chart as users get it, a package signed with the release key.

Cases:
- it writes ``NAME-VERSION.tgz`` and its provenance file; `helm verify` with the key's public
  keyring passes with Helm 3 and Helm 4, and names the package's sha256;
- the package renders exactly what the chart folder renders (the artifact is what the tests
  test), and holds the chart alone;
- a tampered package (one value changed, repacked) fails `helm verify` with both Helms; so does
  a provenance file whose signed text was changed, and any other key's keyring;
- without a key it refuses, saying what to set, and writes nothing.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from standins.signing import Keyring, throwaway_keyring
from tests.chart.releases import CHART_NAME, VERSION, make, signing_args
from tests.conftest import CHART_DIR


@pytest.fixture(scope="module")
def signed_package(signing_keyring: Keyring, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `make package` wrote, signed with the test's release key."""
    out = tmp_path_factory.mktemp("package")
    packaged = make("package", *signing_args(signing_keyring), f"RELEASE_DIR={out}", env=os.environ)
    assert packaged.returncode == 0, packaged.stdout + packaged.stderr
    return out / f"{CHART_NAME}-{VERSION}.tgz"


@pytest.fixture(scope="module")
def other_keyring(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keyring]:
    """A key that did not sign the release."""
    with throwaway_keyring(tmp_path_factory.mktemp("other-key"), "Someone Else") as keyring:
        yield keyring


def helm_verify(helm: Path, package: Path, keyring: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helm), "verify", str(package), "--keyring", str(keyring)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_package_and_its_provenance_verify(
    helm: Path, signed_package: Path, signing_keyring: Keyring
) -> None:
    provenance = signed_package.with_name(signed_package.name + ".prov")
    assert sorted(p.name for p in signed_package.parent.iterdir()) == [
        signed_package.name,
        provenance.name,
    ]
    verified = helm_verify(helm, signed_package, signing_keyring.public)
    assert verified.returncode == 0, verified.stderr
    sha256 = hashlib.sha256(signed_package.read_bytes()).hexdigest()
    assert f"Chart Hash Verified: sha256:{sha256}" in verified.stdout + verified.stderr
    assert "Release Tests" in verified.stdout + verified.stderr, "signed by the release key"


def _render(helm: Path, chart: Path) -> str:
    """The chart's objects; the restricted-API key, drawn at random each time, left out."""
    rendered = subprocess.run(
        [str(helm), "template", "r", str(chart), "--set", "modelRepository=gs://bucket/m"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return re.sub(r"(?m)^(\s+admin-key: ).*$", r"\1(random)", rendered.stdout)


def test_the_package_is_the_chart(helm4: Path, signed_package: Path) -> None:
    assert _render(helm4, signed_package) == _render(helm4, CHART_DIR)
    with tarfile.open(signed_package) as package:
        names = {m.name for m in package.getmembers() if m.isfile()}
    in_chart = {
        f"{CHART_NAME}/{p.relative_to(CHART_DIR).as_posix()}"
        for p in CHART_DIR.rglob("*")
        if p.is_file()
    }
    assert names == in_chart


def _tampered(package: Path, out: Path) -> Path:
    """``package`` with one value changed (the default Triton image), packed again."""
    copy = out / package.name
    with tarfile.open(package) as source, tarfile.open(copy, "w:gz") as target:
        for member in source.getmembers():
            data = source.extractfile(member)
            if member.name == f"{CHART_NAME}/values.yaml" and data is not None:
                text = data.read().replace(b"registry: nvcr.io", b"registry: evil.example")
                member.size = len(text)
                target.addfile(member, io.BytesIO(text))
            else:
                target.addfile(member, data)
    return copy


def test_a_tampered_package_fails_verification(
    helm: Path, signed_package: Path, signing_keyring: Keyring, tmp_path: Path
) -> None:
    tampered = _tampered(signed_package, tmp_path)
    shutil.copyfile(
        signed_package.with_name(signed_package.name + ".prov"),
        tampered.with_name(tampered.name + ".prov"),
    )
    result = helm_verify(helm, tampered, signing_keyring.public)
    assert result.returncode != 0
    assert "sha256 sum does not match" in result.stderr


def test_a_tampered_provenance_fails_verification(
    helm: Path, signed_package: Path, signing_keyring: Keyring, tmp_path: Path
) -> None:
    """The provenance re-pointed at a tampered package: its signature no longer holds."""
    tampered = _tampered(signed_package, tmp_path)
    provenance = signed_package.with_name(signed_package.name + ".prov").read_text()
    old = hashlib.sha256(signed_package.read_bytes()).hexdigest()
    new = hashlib.sha256(tampered.read_bytes()).hexdigest()
    assert old in provenance
    tampered.with_name(tampered.name + ".prov").write_text(provenance.replace(old, new))
    result = helm_verify(helm, tampered, signing_keyring.public)
    assert result.returncode != 0
    assert "invalid signature" in result.stderr or "hash tag doesn't match" in result.stderr, (
        result.stderr
    )


def test_another_key_does_not_verify(
    helm: Path, signed_package: Path, other_keyring: Keyring
) -> None:
    result = helm_verify(helm, signed_package, other_keyring.public)
    assert result.returncode != 0
    assert "signature made by unknown entity" in result.stderr


def test_packaging_without_a_key_is_refused(tmp_path: Path) -> None:
    result = make("package", "SIGNING_KEY=", f"RELEASE_DIR={tmp_path / 'out'}", env=os.environ)
    assert result.returncode == 2
    assert "set SIGNING_KEY" in result.stderr
    assert not (tmp_path / "out").exists()
    missing = make(
        "package",
        "SIGNING_KEY=someone",
        f"SIGNING_KEYRING={tmp_path / 'absent.gpg'}",
        f"RELEASE_DIR={tmp_path / 'out'}",
        env=os.environ,
    )
    assert missing.returncode == 2
    assert "is not a file" in missing.stderr
    assert not (tmp_path / "out").exists()
