"""An OCI registry on loopback for the release tests: Debian's ``docker-registry`` (CNCF
distribution 2.8) serving HTTPS with a certificate from a certificate authority made for the
run, so helm talks to it as to a real registry (TLS verified, no ``--plain-http``): the
README's commands run unchanged, with ``SSL_CERT_FILE`` naming the authority.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from common.loopback import free_port
from common.processes import stop

REGISTRY_BINARY = "docker-registry"
START_TIMEOUT_S = 20.0


class RegistryUnavailableError(Exception):
    """The registry binary is missing or would not start (the message says why)."""


def missing_registry() -> str | None:
    """Why no registry can run here, or None."""
    if shutil.which(REGISTRY_BINARY) is None:
        return (
            f"{REGISTRY_BINARY} is not on PATH: apt-get install -y docker-registry "
            "(make test installs it)"
        )
    return None


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


_CA_USAGE = x509.KeyUsage(
    digital_signature=True,
    key_cert_sign=True,
    crl_sign=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    encipher_only=False,
    decipher_only=False,
)


def write_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A certificate authority and a server certificate it signs for 127.0.0.1 and
    localhost, valid for a day. Returns the authority's certificate, the server's certificate
    and the server's key (PEM files in ``directory``)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("release tests CA"))
        .issuer_name(_name("release tests CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_CA_USAGE, critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = (directory / "ca.crt", directory / "server.crt", directory / "server.key")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    paths[2].chmod(0o600)
    return paths


@dataclass(frozen=True)
class Registry:
    """A running registry."""

    host: str
    """``127.0.0.1:PORT``: what a reference names (``oci://HOST/charts/NAME``)."""
    ca_file: Path
    """The certificate authority that signed its certificate."""

    def helm_env(self, helm_home: Path) -> dict[str, str]:
        """The environment for helm against this registry: the authority trusted (Go reads
        ``SSL_CERT_FILE``), helm's config, cache and data in ``helm_home`` (so concurrent
        helms share no registry cache with each other or with the user's)."""
        return {
            **os.environ,
            "SSL_CERT_FILE": str(self.ca_file),
            "HELM_CONFIG_HOME": str(helm_home / "config"),
            "HELM_CACHE_HOME": str(helm_home / "cache"),
            "HELM_DATA_HOME": str(helm_home / "data"),
        }

    def tags(self, repository: str) -> list[str]:
        """The tags ``repository`` (``charts/NAME``) holds; none when it does not exist."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        url = f"https://{self.host}/v2/{repository}/tags/list"
        try:
            with urllib.request.urlopen(url, context=context, timeout=10) as answer:
                return sorted(json.load(answer).get("tags") or [])
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return []
            raise

    def digest(self, repository: str, tag: str) -> str:
        """The manifest digest of ``repository:tag``."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        request = urllib.request.Request(
            f"https://{self.host}/v2/{repository}/manifests/{tag}",
            method="HEAD",
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        )
        with urllib.request.urlopen(request, context=context, timeout=10) as answer:
            return str(answer.headers["Docker-Content-Digest"])


def _ready(url: str, ca_file: Path) -> bool:
    context = ssl.create_default_context(cafile=str(ca_file))
    with (
        contextlib.suppress(OSError),
        urllib.request.urlopen(url, context=context, timeout=2) as answer,
    ):
        return bool(answer.status == 200)
    return False


@contextlib.contextmanager
def running_registry(workdir: Path) -> Iterator[Registry]:
    """A registry storing in ``workdir``, stopped (by the PID it started) on the way out."""
    reason = missing_registry()
    if reason:
        raise RegistryUnavailableError(reason)
    ca_file, certificate, key = write_certificates(workdir)
    for _ in range(3):  # another program may take the free port before the registry does
        port = free_port()
        config = workdir / "config.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "version": 0.1,
                    "log": {"level": "warn"},
                    "storage": {"filesystem": {"rootdirectory": str(workdir / "storage")}},
                    "http": {
                        "addr": f"127.0.0.1:{port}",
                        "tls": {"certificate": str(certificate), "key": str(key)},
                    },
                }
            )
        )
        log = (workdir / "registry.log").open("ab")
        process = subprocess.Popen(
            [REGISTRY_BINARY, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while process.poll() is None and time.monotonic() < deadline:
            if _ready(f"https://127.0.0.1:{port}/v2/", ca_file):
                break
            time.sleep(0.1)
        if process.poll() is None and _ready(f"https://127.0.0.1:{port}/v2/", ca_file):
            try:
                yield Registry(host=f"127.0.0.1:{port}", ca_file=ca_file)
            finally:
                stop(process, timeout_s=10)
                log.close()
            return
        stop(process, timeout_s=10)
        log.close()
    raise RegistryUnavailableError(
        f"{REGISTRY_BINARY} did not answer on loopback: {(workdir / 'registry.log').read_text()}"
    )
