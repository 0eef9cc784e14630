"""The load test's options: one table of flags, each setting a field of ``RunSettings`` and
read from ``LOCUST_<NAME>`` as well (Locust's parser is configargparse). No Locust import here,
so the settings are plain data the tests can build.
"""

from __future__ import annotations

import argparse
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, Final

from loadtest.load_plan import Stage, constant_stages, stepped_stages
from samples.bert.client import MIN_SEQUENCE_LENGTH
from samples.bert.contract import DEFAULT_MODEL_NAME, SEQUENCE_LENGTH

PROTOCOLS: Final = ("binary", "json", "grpc")
LOAD_SHAPES: Final = ("steps", "constant", "users")


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {text}")
    return value


_HOST_NAME = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(:[0-9]{1,5})?$")
_PORT = re.compile(r":[0-9]{1,5}$")


def _host_name(text: str) -> str:
    """A host name (or address) with an optional port: what a Host header or an authority
    carries, never a URL. Empty: none (argparse also parses the default)."""
    if text and ("://" in text or not _HOST_NAME.match(text)):
        raise argparse.ArgumentTypeError(
            f"expected a host name such as triton.example.com (optionally :PORT), got {text!r}"
        )
    return text


def _grpc_target(text: str) -> str:
    """``HOST:PORT``, or empty; a URL is refused, since TLS follows ``-H``'s scheme."""
    if text and ("://" in text or not (_HOST_NAME.match(text) and _PORT.search(text))):
        raise argparse.ArgumentTypeError(
            f"expected HOST:PORT such as 10.0.0.7:8001, got {text!r} (gRPC uses TLS when -H is "
            "https://)"
        )
    return text


def _ca_file(text: str) -> str:
    """A PEM file of certificates, loaded as the clients will load it, or empty."""
    if not text:
        return text
    try:
        ssl.create_default_context(cafile=text)
    except FileNotFoundError as exc:
        raise argparse.ArgumentTypeError(f"no such file: {text}") from exc
    except ssl.SSLError as exc:
        raise argparse.ArgumentTypeError(
            f"{text} holds no PEM certificate ({exc.reason}): give the CA's certificate, "
            "-----BEGIN CERTIFICATE----- ..."
        ) from exc
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot read {text}: {exc.strerror}") from exc
    return text


def _seq_len(text: str) -> int:
    value = int(text)
    if value < MIN_SEQUENCE_LENGTH:
        raise argparse.ArgumentTypeError(f"must be at least {MIN_SEQUENCE_LENGTH}, got {text}")
    return value


@dataclass(frozen=True)
class RunSettings:
    """This test's options, read once from Locust's parsed options."""

    protocol: str = "binary"
    """``binary`` (v2 binary tensor extension), ``json``, or ``grpc``."""
    model_name: str = DEFAULT_MODEL_NAME
    """The model's name in the repository."""
    model_version: str = ""
    """A version number, or empty for the server's choice (the latest)."""
    seq_len: int = SEQUENCE_LENGTH
    """Tokens per sequence."""
    batch_size: int = 1
    """Sequences per request."""
    load_shape: str = "steps"
    """``steps``, ``constant`` or ``users`` (Locust's ``--users`` and ``--spawn-rate``)."""
    target_qps: float = 200.0
    """Requests per second the steps end at, or the constant rate."""
    step_seconds: float = 60.0
    """Length of each step of the ``steps`` shape."""
    user_qps: float = 1.0
    """Requests per second of each user; 0 sends the next request as soon as one returns."""
    host_header: str = ""
    """The ``Host`` header of HTTP requests, for an edge that routes on a host name reached by
    its address; with ``https`` also the name sent in TLS (SNI) and looked for in the server's
    certificate. Empty: the ``-H`` host."""
    ca_file: str = ""
    """PEM file of the certificates to trust for ``https`` and gRPC over TLS, instead of the
    system's CAs: a private CA, or the server's own certificate (self-signed or not)."""
    insecure: bool = False
    """Do not check the server's certificate (``https`` and gRPC over TLS); said at the start
    and in the summary."""
    grpc_url: str = ""
    """``host:port`` of the gRPC endpoint; empty: see ``load_target.grpc_endpoint``."""
    grpc_authority: str = ""
    """The ``:authority`` of gRPC calls (and, over TLS, the name sent and checked); empty: the
    ``--host-header``, else the target's host."""
    ready_timeout_s: float = 300.0
    """How long to wait for the server and the model to be ready before giving up."""
    request_timeout_s: float = 5.0
    """A request not answered within this many seconds is cut off and counts as a failure: a
    stalled server shows as failures, not as a slow tail (Locust's own limit is 60 s)."""

    progress_s: float = 0.0
    """Seconds between two progress lines (0: none; Locust's own table is the default)."""
    summary_file: str = ""
    """Where to write the end-of-run summary as JSON (empty: only printed)."""

    @classmethod
    def from_options(cls, options: argparse.Namespace | None) -> RunSettings:
        """Settings from Locust's options (each option's ``dest`` is the field's name);
        defaults where an option is absent (library use)."""
        defaults = cls()
        return cls(
            **{f.name: getattr(options, f.name, getattr(defaults, f.name)) for f in fields(cls)}
        )

    def model_path(self) -> str:
        """``/v2/models/NAME`` with ``/versions/N`` when a version is pinned."""
        version = f"/versions/{self.model_version}" if self.model_version else ""
        return f"/v2/models/{self.model_name}{version}"

    def stages(self) -> tuple[Stage, ...]:
        """The rate over time for the ``steps`` and ``constant`` shapes."""
        if self.load_shape == "constant":
            return constant_stages(target_qps=self.target_qps)
        return stepped_stages(target_qps=self.target_qps, step_s=self.step_seconds)


@dataclass(frozen=True)
class Option:
    """One command-line option; its ``dest`` is the ``RunSettings`` field it sets."""

    flag: str
    """``--name``; the environment variable is ``LOCUST_NAME``."""
    dest: str
    """The ``RunSettings`` field, whose default is the option's."""
    help: str
    """What it sets."""
    type: Callable[[str], Any] | None = str
    """Parses and checks the value (None for a switch)."""
    choices: tuple[str, ...] | None = None
    """The values allowed, if a fixed set."""

    @property
    def is_switch(self) -> bool:
        """A flag without a value (``--insecure``); its variable reads true/false, 1/0, yes/no."""
        return self.type is None

    @property
    def env_var(self) -> str:
        return "LOCUST_" + self.flag.removeprefix("--").upper().replace("-", "_")


OPTIONS: Final = (
    Option("--protocol", "protocol", "request encoding", choices=PROTOCOLS),
    Option("--model-name", "model_name", "model to query"),
    Option("--model-version", "model_version", "model version (empty: the latest)"),
    Option("--seq-len", "seq_len", "tokens per sequence", _seq_len),
    Option("--batch-size", "batch_size", "sequences per request", _positive_int),
    Option(
        "--load-shape",
        "load_shape",
        "steps up to --target-qps, constant --target-qps, or Locust's --users",
        choices=LOAD_SHAPES,
    ),
    Option("--target-qps", "target_qps", "target requests per second", _positive_float),
    Option("--step-seconds", "step_seconds", "length of each step", _positive_float),
    Option(
        "--user-qps",
        "user_qps",
        "requests per second of each user (0: no wait, with --load-shape users)",
        _non_negative_float,
    ),
    Option(
        "--host-header",
        "host_header",
        "Host header to send, and with https the certificate's name (empty: the -H host)",
        _host_name,
    ),
    Option(
        "--ca-file",
        "ca_file",
        "PEM file of the CAs to trust for https and gRPC over TLS (empty: the system's)",
        _ca_file,
    ),
    Option(
        "--insecure",
        "insecure",
        "do not check the server's certificate (reported in the output and the summary)",
        None,
    ),
    Option(
        "--grpc-url",
        "grpc_url",
        "gRPC host:port (empty: the -H host; port 8001 when -H is on Triton's port 8000, "
        "else -H's port); TLS when -H is https",
        _grpc_target,
    ),
    Option(
        "--grpc-authority",
        "grpc_authority",
        ":authority of gRPC calls, and over TLS the certificate's name (empty: --host-header)",
        _host_name,
    ),
    Option(
        "--ready-timeout",
        "ready_timeout_s",
        "seconds to wait for the server and the model to be ready",
        _positive_float,
    ),
    Option(
        "--request-timeout",
        "request_timeout_s",
        "seconds after which a request counts as a failure",
        _positive_float,
    ),
    Option(
        "--progress-seconds",
        "progress_s",
        "seconds between one-line progress reports (0: none)",
        _non_negative_float,
    ),
    Option("--summary-file", "summary_file", "JSON file for the end-of-run summary (empty: none)"),
)


def add_options(parser: Any) -> None:
    """Register this test's options; each also reads its environment variable."""
    defaults = RunSettings()
    group = parser.add_argument_group("BERT on Triton")
    for option in OPTIONS:
        default = getattr(defaults, option.dest)
        help = f"{option.help} (default {default!r}; env {option.env_var})"
        if option.is_switch:
            group.add_argument(
                option.flag,
                dest=option.dest,
                action="store_true",
                default=default,
                env_var=option.env_var,
                help=help,
            )
            continue
        group.add_argument(
            option.flag,
            dest=option.dest,
            type=option.type,
            choices=option.choices,
            default=default,
            env_var=option.env_var,
            help=help,
        )
