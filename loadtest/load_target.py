"""Where the load goes and whom it trusts: the gRPC endpoint that ``-H`` implies, the
certificates trusted over TLS (the system's, those of ``--ca-file``, or none with
``--insecure``) for HTTPS and for gRPC, and what a refused certificate tells the user to do.
No Locust import and standard library only (Locust's own image runs it; the tests use it as
plain functions).
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from loadtest.load_options import RunSettings

TRITON_HTTP_PORT: Final = 8000
TRITON_GRPC_PORT: Final = 8001
"""Triton's own ports (its Service's too): an ``-H`` on 8000 is Triton itself, gRPC on 8001."""
GRPC_REFUSALS: Final = ("CERTIFICATE_VERIFY_FAILED", "Hostname Verification Check failed")
"""What gRPC's messages say when it refuses the server's certificate (chain or name)."""


class UntrustedServerError(Exception):
    """The server's certificate was refused: waiting longer cannot help."""


def refused(*, name: str, reason: str) -> UntrustedServerError:
    """The error for a certificate refused while connecting to ``name``, saying what to give."""
    return UntrustedServerError(
        f"the certificate presented for {name} is not trusted ({reason}): give the CA that "
        "issued it with --ca-file (or the server's certificate itself), the name it is issued "
        "for with --host-header/--grpc-authority, or --insecure to skip the check"
    )


@dataclass(frozen=True)
class GrpcEndpoint:
    """Where the gRPC calls go and the name they are for."""

    target: str
    """``host:port`` dialed."""
    tls: bool
    """TLS (``-H`` is ``https``) or plaintext."""
    authority: str
    """The ``:authority`` sent and, over TLS, the name checked; '' for the target's own."""

    @property
    def name(self) -> str:
        """The host name calls are for (over TLS: sent as SNI, looked for in the certificate)."""
        return name_of(self.authority or self.target)

    def describe(self) -> str:
        scheme = "TLS" if self.tls else "plaintext"
        authority = f", authority {self.authority}" if self.authority else ""
        return f"{self.target} ({scheme}{authority})"


def grpc_endpoint(settings: RunSettings, host: str) -> GrpcEndpoint:
    """``--grpc-url``, else ``-H``'s host: on port 8001 when ``-H`` is Triton's own HTTP port
    (8000, its Service or a port-forward), else on ``-H``'s port, which an edge serves gRPC on
    too (Istio's gateway on its HTTP port; any edge over TLS, by ALPN). TLS when ``-H`` is
    ``https``; the authority is ``--grpc-authority``, else ``--host-header``."""
    parts = urlsplit(host)
    tls = parts.scheme == "https"
    authority = settings.grpc_authority or settings.host_header
    if settings.grpc_url:
        return GrpcEndpoint(target=settings.grpc_url, tls=tls, authority=authority)
    hostname = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if tls else 80)
    if not tls and port == TRITON_HTTP_PORT:
        port = TRITON_GRPC_PORT
    name = f"[{hostname}]" if ":" in hostname else hostname
    return GrpcEndpoint(target=f"{name}:{port}", tls=tls, authority=authority)


def http_context(*, ca_file: str, insecure: bool) -> ssl.SSLContext:
    """The client context of the HTTPS connections (HTTP/1.1, offered as such by ALPN, so an
    edge that also speaks HTTP/2 on the port answers in HTTP/1.1)."""
    context = ssl.create_default_context(cafile=ca_file or None)
    # A certificate of --ca-file is an anchor even if not self-signed (a server's own
    # certificate, an intermediate), as gRPC takes it and Python 3.13 does by default.
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["http/1.1"])
    return context


def name_of(authority: str) -> str:
    """The host name of ``host[:port]`` (brackets of an IPv6 address removed)."""
    if authority.startswith("["):
        return authority[1 : authority.index("]")]
    return authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority


def _covers(pattern: str, name: str) -> bool:
    """Whether a certificate name (``*.example.com`` covers one label) covers ``name``."""
    pattern, name = pattern.lower(), name.lower()
    if pattern.startswith("*."):
        head, _, rest = name.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == name


def usable_name(names: list[str], wanted: str) -> str:
    """The name to check a pinned certificate against: ``wanted`` when the certificate covers
    it, else one the certificate carries (a wildcard's label filled in)."""
    if any(_covers(n, wanted) for n in names):
        return wanted
    if not names:
        return wanted
    first = names[0]
    return "insecure" + first[1:] if first.startswith("*.") else first


@dataclass(frozen=True)
class PinnedCertificate:
    """The certificate a server presented, to be trusted as it is (``--insecure`` over gRPC,
    whose Python API cannot skip the check)."""

    pem: bytes
    name: str
    """A name the certificate is valid for, to check it against."""


def pin_presented_certificate(
    address: tuple[str, int], *, server_name: str, timeout_s: float
) -> PinnedCertificate:
    """Fetch the certificate ``address`` presents for ``server_name`` (sent as SNI), unchecked,
    then read the names it carries by trusting it alone (OpenSSL's partial-chain mode accepts
    a leaf as its own anchor). Raises ``OSError`` when the server cannot be reached."""
    anything = ssl.create_default_context()
    anything.check_hostname = False
    anything.verify_mode = ssl.CERT_NONE
    sni = server_name or None
    with (
        socket.create_connection(address, timeout=timeout_s) as raw,
        anything.wrap_socket(raw, server_hostname=sni) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    if der is None:
        raise ssl.SSLError(f"{address[0]}:{address[1]} presented no certificate")
    pem = ssl.DER_cert_to_PEM_cert(der)
    itself = ssl.create_default_context(cadata=pem)
    itself.check_hostname = False
    itself.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    with (
        socket.create_connection(address, timeout=timeout_s) as raw,
        itself.wrap_socket(raw, server_hostname=sni) as tls,
    ):
        decoded: dict[str, Any] = dict(tls.getpeercert() or {})
    return PinnedCertificate(pem=pem.encode(), name=usable_name(_names(decoded), server_name))


def _names(decoded: dict[str, Any]) -> list[str]:
    """The names a certificate (as ``getpeercert()`` decodes it) is valid for: its DNS and IP
    subject alternative names, then its common name."""
    names = [str(value) for kind, value in decoded.get("subjectAltName", ()) if kind == "DNS"]
    alternative = decoded.get("subjectAltName", ())
    names += [str(value).strip() for kind, value in alternative if kind == "IP Address"]
    for part in decoded.get("subject", ()):
        names += [str(value) for key, value in part if key == "commonName"]
    return names
