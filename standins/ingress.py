"""An edge in front of the local Triton, as the chart's ingress modes put one in front of it in
the cluster: Debian's nginx on loopback, routing on exact host names (404 for any other, as an
Istio VirtualService or an HTTPRoute with hostnames does), terminating TLS with a certificate
made here (a CA of its own and a server certificate for the host names), and passing gRPC on
over HTTP/2 (``grpc_pass``).

nginx runs in the foreground as a child of the test run, with its own prefix, configuration,
pid, logs and temporary paths under the test's folder, and is stopped by its PID. Its
listeners, each on a free loopback port:

- ``open``: HTTP/1.1 to Triton whatever the host (an edge without host routing);
- ``open_grpc``: gRPC in cleartext (h2c) to Triton whatever the authority;
- ``http``: HTTP/1.1 for the routed hosts only;
- ``grpc``: gRPC in cleartext for the routed hosts only (nginx 1.22 serves cleartext HTTP/2
  only on a listener of its own; Envoy, Istio's gateway, serves both on one port);
- ``tls``: HTTPS and gRPC over TLS on one port (ALPN), for the routed hosts only, with a
  certificate from the test's own CA;
- ``tls_self_signed``: the same with a self-signed certificate.
"""

from __future__ import annotations

import datetime
import getpass
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from common.loopback import answers, free_ports
from common.processes import ExitedError, Service, start_logged, wait_serving
from common.processes import stop as stop_process
from demo.local import LocalTriton

LISTENERS: Final = ("open", "open_grpc", "http", "grpc", "tls", "tls_self_signed")
START_TIMEOUT_S: Final = 15.0


@dataclass(frozen=True)
class Pki:
    """PEM files: a CA of the test's own and a server certificate it issued, and a
    self-signed server certificate (as ``openssl req -x509`` makes), for the same names."""

    ca: Path
    certificate: Path
    key: Path
    self_signed: Path
    self_signed_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_pki(folder: Path, names: Sequence[str]) -> Pki:
    """A CA and a server certificate for ``names`` (DNS names), valid for a day."""
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("load test CA"))
        .issuer_name(_name("load test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    server = _server_certificate(names, key=key, issuer=ca.subject, issuer_key=ca_key)
    own_key = ec.generate_private_key(ec.SECP256R1())
    self_signed = _server_certificate(
        names, key=own_key, issuer=_name(names[0]), issuer_key=own_key, ca=True
    )
    pki = Pki(
        ca=folder / "ca.pem",
        certificate=folder / "server.pem",
        key=folder / "server.key",
        self_signed=folder / "self-signed.pem",
        self_signed_key=folder / "self-signed.key",
    )
    pki.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.certificate.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    pki.self_signed.write_bytes(self_signed.public_bytes(serialization.Encoding.PEM))
    for path, private in ((pki.key, key), (pki.self_signed_key, own_key)):
        path.write_bytes(
            private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return pki


def _server_certificate(
    names: Sequence[str],
    *,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    ca: bool = False,
) -> x509.Certificate:
    """A TLS server certificate for ``names`` (DNS), valid for a day."""
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(names[0]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .sign(issuer_key, hashes.SHA256())
    )


class NginxUnavailableError(RuntimeError):
    """This machine has no nginx (the message says what to install)."""


class NginxError(RuntimeError):
    """nginx did not start, or did not reload (the message holds its error log's tail)."""


def _find_nginx() -> str | None:
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")


def missing_nginx() -> str | None:
    """Why nginx cannot run here, or None when it can."""
    if _find_nginx() is None:
        return "no nginx on PATH or in /usr/sbin: run `make debian-packages` (Debian's nginx)"
    return None


def nginx_binary() -> Path:
    """Debian's nginx (on PATH or in /usr/sbin), which ``make debian-packages`` installs;
    raises :class:`NginxUnavailableError` where it is absent."""
    found = _find_nginx()
    if found is None:
        raise NginxUnavailableError(missing_nginx())
    return Path(found)


class NginxIngress(Service):
    """nginx in front of ``triton`` (see the module's docstring for its listeners), routing
    ``hosts`` with the certificate of ``pki``; a context manager."""

    def __init__(
        self, *, triton: LocalTriton, workdir: Path, hosts: Sequence[str], pki: Pki
    ) -> None:
        self.triton = triton
        self.workdir = workdir
        self.hosts = list(hosts)
        self.pki = pki
        self.ports = dict(zip(LISTENERS, free_ports(len(LISTENERS)), strict=True))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def config_path(self) -> Path:
        return self.workdir / "nginx.conf"

    @property
    def access_log(self) -> Path:
        return self.workdir / "access.log"

    @property
    def error_log(self) -> Path:
        return self.workdir / "error.log"

    def url(self, listener: str, *, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.ports[listener]}"

    def address(self, listener: str) -> str:
        return f"127.0.0.1:{self.ports[listener]}"

    def config(self) -> str:
        """The whole configuration: one foreground master, one worker, everything under
        ``workdir``; per listener a default server (404, or Triton for the open ones) and,
        on the routed ones, a server for ``hosts``."""
        temp = self.workdir / "temp"
        issued = f"ssl_certificate {self.pki.certificate}; ssl_certificate_key {self.pki.key};"
        own = (
            f"ssl_certificate {self.pki.self_signed}; "
            f"ssl_certificate_key {self.pki.self_signed_key};"
        )
        routes = (
            # Inference and readiness (and the rest of Triton's API: the chart's routes are
            # checked in tests/chart; here the edge's host routing and TLS are the point).
            "location /inference.GRPCInferenceService/ { grpc_pass grpc://triton_grpc; }\n"
            "    location / { proxy_pass http://triton_http; proxy_http_version 1.1; "
            'proxy_set_header Connection ""; }'
        )
        listen = {
            "open": f"listen {self.address('open')} default_server;",
            "open_grpc": f"listen {self.address('open_grpc')} http2 default_server;",
            "http": f"listen {self.address('http')} default_server;",
            "grpc": f"listen {self.address('grpc')} http2 default_server;",
            "tls": f"listen {self.address('tls')} ssl http2 default_server; {issued}",
            "tls_self_signed": (
                f"listen {self.address('tls_self_signed')} ssl http2 default_server; {own}"
            ),
        }
        servers = []
        for name in ("open", "open_grpc"):
            servers.append(f"server {{ {listen[name]} server_name _;\n    {routes}\n  }}")
        hosts = " ".join(self.hosts)
        for name in ("http", "grpc", "tls", "tls_self_signed"):
            servers.append(f"server {{ {listen[name]} server_name _; return 404; }}")
            routed = listen[name].replace(" default_server", "")
            servers.append(f"server {{ {routed} server_name {hosts};\n    {routes}\n  }}")
        user = f"user {getpass.getuser()};" if os.geteuid() == 0 else ""
        server_blocks = "\n  ".join(servers)
        return f"""{user}
daemon off;
master_process on;
worker_processes 1;
pid {self.workdir / "nginx.pid"};
error_log {self.error_log} notice;
events {{ worker_connections 1024; }}
http {{
  log_format routed '$status $host "$request"';
  access_log {self.access_log} routed;
  client_body_temp_path {temp / "body"};
  proxy_temp_path {temp / "proxy"};
  fastcgi_temp_path {temp / "fastcgi"};
  uwsgi_temp_path {temp / "uwsgi"};
  scgi_temp_path {temp / "scgi"};
  upstream triton_http {{ server {self.triton.http_url.removeprefix("http://")}; keepalive 64; }}
  upstream triton_grpc {{ server {self.triton.grpc_url}; keepalive 64; }}
  {server_blocks}
}}
"""

    def start(self) -> None:
        binary = nginx_binary()
        (self.workdir / "temp").mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config())
        command = [str(binary), "-p", str(self.workdir), "-c", str(self.config_path),
                   "-e", str(self.error_log)]  # fmt: skip
        self._process = start_logged(command, self.workdir / "nginx.out")
        try:
            started = wait_serving(self._process, self._answers, timeout_s=START_TIMEOUT_S)
        except ExitedError:
            started = False
        if not started:
            self.stop()
            raise NginxError(f"nginx did not start; its error log:\n{self._log_tail()}")

    def _answers(self) -> bool:
        return answers(f"{self.url('open')}/v2/health/ready")

    def _log_tail(self) -> str:
        for path in (self.error_log, self.workdir / "nginx.out"):
            if path.exists() and path.read_text().strip():
                return "\n".join(path.read_text().splitlines()[-20:])
        return "(empty)"

    def route(self, hosts: Sequence[str]) -> None:
        """Route ``hosts`` instead (a changed ingress host): rewrite the configuration and
        reload (SIGHUP to the master); returns once a new worker serves it."""
        assert self._process is not None
        self.hosts = list(hosts)
        self.config_path.write_text(self.config())
        before = self.error_log.read_text().count("start worker process")
        self._process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + START_TIMEOUT_S
        while self.error_log.read_text().count("start worker process") <= before:
            if time.monotonic() > deadline:
                raise NginxError(f"nginx did not reload; its error log:\n{self._log_tail()}")
            time.sleep(0.05)

    def requests_logged(self, status: int, host: str | None = None) -> int:
        """Requests of the access log answered ``status`` (for ``host``, if given)."""
        if not self.access_log.exists():
            return 0
        lines = [line.split(" ", 2) for line in self.access_log.read_text().splitlines()]
        return sum(
            1
            for code, logged_host, _ in lines
            if code == str(status) and host in (None, logged_host)
        )

    def stop(self) -> None:
        """Stop nginx by its PID (SIGQUIT: a graceful stop), killed if it lingers."""
        process, self._process = self._process, None
        if process is not None:
            stop_process(process, timeout_s=10, signal_number=signal.SIGQUIT)
