"""Where the load goes (``loadtest/load_target.py``): the choices that need no server (the real
TLS edge, nginx, is in test_ingress.py).

Cases: the gRPC target follows -H: Triton's own port 8000 means its gRPC port 8001, any other
port (an edge) is shared, https means TLS on -H's port (443 by default), and --grpc-url wins;
the authority is --grpc-authority, else --host-header; the host name of an authority with a
port or an IPv6 address; which name a pinned certificate is checked against (the one asked
for when the certificate covers it, a wildcard's included, else one it carries).
"""

from __future__ import annotations

import pytest

from loadtest.load_options import RunSettings
from loadtest.load_target import GrpcEndpoint, grpc_endpoint, name_of, usable_name


@pytest.mark.parametrize(
    ("host", "settings", "expected"),
    [
        ("http://10.0.0.7:8000", RunSettings(), GrpcEndpoint("10.0.0.7:8001", False, "")),
        ("http://127.0.0.1:8000/", RunSettings(), GrpcEndpoint("127.0.0.1:8001", False, "")),
        (
            "http://34.1.2.3",
            RunSettings(host_header="t.example.com"),
            GrpcEndpoint("34.1.2.3:80", False, "t.example.com"),
        ),
        ("http://t.example.com:8080", RunSettings(), GrpcEndpoint("t.example.com:8080", False, "")),
        (
            "https://34.1.2.3",
            RunSettings(host_header="t.example.com", grpc_authority="g.example.com"),
            GrpcEndpoint("34.1.2.3:443", True, "g.example.com"),
        ),
        ("https://[::1]:8443", RunSettings(), GrpcEndpoint("[::1]:8443", True, "")),
        (
            "https://34.1.2.3",
            RunSettings(grpc_url="10.9.9.9:9443"),
            GrpcEndpoint("10.9.9.9:9443", True, ""),
        ),
    ],
)
def test_the_grpc_target_follows_the_host(
    host: str, settings: RunSettings, expected: GrpcEndpoint
) -> None:
    assert grpc_endpoint(settings, host) == expected


def test_endpoint_names_and_descriptions() -> None:
    endpoint = GrpcEndpoint("34.1.2.3:443", True, "g.example.com:443")
    assert endpoint.name == "g.example.com"
    assert endpoint.describe() == "34.1.2.3:443 (TLS, authority g.example.com:443)"
    assert GrpcEndpoint("10.0.0.7:8001", False, "").describe() == "10.0.0.7:8001 (plaintext)"


@pytest.mark.parametrize(
    ("authority", "name"),
    [("t.example.com", "t.example.com"), ("t.example.com:8443", "t.example.com"),
     ("[::1]:8443", "::1"), ("10.0.0.7:8001", "10.0.0.7")],
)  # fmt: skip
def test_name_of_an_authority(authority: str, name: str) -> None:
    assert name_of(authority) == name


@pytest.mark.parametrize(
    ("names", "wanted", "used"),
    [
        (["t.example.com"], "t.example.com", "t.example.com"),
        (["*.example.com"], "t.example.com", "t.example.com"),
        (["*.example.com"], "a.b.example.com", "insecure.example.com"),
        (["t.example.com", "g.example.com"], "34.1.2.3", "t.example.com"),
        ([], "34.1.2.3", "34.1.2.3"),
    ],
)
def test_the_name_a_pinned_certificate_is_checked_against(
    names: list[str], wanted: str, used: str
) -> None:
    assert usable_name(names, wanted) == used
