"""The load test's options, parsed by the same kind of parser Locust uses (configargparse).

Cases: every setting has exactly one option and every option sets a setting; environment
variables are named after the flags and are read; flags win over the environment; defaults
come from ``RunSettings``; bad values are refused with the option's name; the model path with
and without a pinned version; the stages each shape asks for; the edge's options: a Host
header and gRPC authority are host names (a URL is refused), --grpc-url is HOST:PORT, the CA
file must hold PEM certificates, and --insecure is a switch its variable turns on.
"""

from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path

import configargparse  # type: ignore[import-untyped]
import pytest

from loadtest.load_options import OPTIONS, RunSettings, add_options
from loadtest.load_plan import Stage


def _parse(argv: list[str], env: dict[str, str] | None = None) -> RunSettings:
    parser = configargparse.ArgumentParser()
    add_options(parser)
    return RunSettings.from_options(parser.parse_args(argv, env_vars=env or {}))


def test_every_setting_has_one_option() -> None:
    assert sorted(o.dest for o in OPTIONS) == sorted(f.name for f in fields(RunSettings))


def test_environment_variables_follow_the_flags() -> None:
    names = {o.flag: o.env_var for o in OPTIONS}
    assert names["--target-qps"] == "LOCUST_TARGET_QPS"
    assert names["--ready-timeout"] == "LOCUST_READY_TIMEOUT"


def test_defaults() -> None:
    assert _parse([]) == RunSettings()


def test_environment_and_flags() -> None:
    settings = _parse(
        ["--protocol", "json", "--target-qps", "75"],
        env={"LOCUST_TARGET_QPS": "50", "LOCUST_MODEL_NAME": "bert_large", "LOCUST_SEQ_LEN": "64"},
    )
    assert (settings.protocol, settings.target_qps) == ("json", 75.0)
    assert (settings.model_name, settings.seq_len) == ("bert_large", 64)


def test_the_request_timeout_is_a_few_seconds_and_read_from_the_environment() -> None:
    assert RunSettings().request_timeout_s == 5.0
    assert _parse([], env={"LOCUST_REQUEST_TIMEOUT": "2.5"}).request_timeout_s == 2.5
    assert _parse(["--request-timeout", "1"]).request_timeout_s == 1.0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--batch-size", "0"], "argument --batch-size: must be 1 or more, got 0"),
        (["--step-seconds", "-1"], "argument --step-seconds: must be greater than 0, got -1"),
        (["--load-shape", "ramp"], "argument --load-shape: invalid choice: 'ramp'"),
        (["--request-timeout", "0"], "argument --request-timeout: must be greater than 0, got 0"),
        (
            ["--host-header", "https://t.example.com"],
            "argument --host-header: expected a host name such as triton.example.com",
        ),
        (["--grpc-authority", "a b"], "argument --grpc-authority: expected a host name"),
        (["--grpc-url", "http://10.0.0.7:8001"], "argument --grpc-url: expected HOST:PORT"),
        (["--grpc-url", "10.0.0.7"], "argument --grpc-url: expected HOST:PORT"),
        (["--ca-file", "/no/such/ca.pem"], "argument --ca-file: no such file: /no/such/ca.pem"),
    ],
)
def test_bad_values(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parse(argv)
    assert message in capsys.readouterr().err


def test_model_path() -> None:
    assert RunSettings().model_path() == "/v2/models/bert"
    assert RunSettings(model_version="3").model_path() == "/v2/models/bert/versions/3"


def test_stages_of_each_shape() -> None:
    assert RunSettings(load_shape="constant", target_qps=30).stages() == (
        Stage(until_s=math.inf, qps=30),
    )
    steps = RunSettings(target_qps=100, step_seconds=10).stages()
    assert [s.qps for s in steps] == [25, 50, 75, 100]


def test_edge_options_and_their_variables(tmp_path: Path) -> None:
    assert _parse([]).insecure is False
    assert _parse(["--insecure"]).insecure is True
    assert _parse([], env={"LOCUST_INSECURE": "true"}).insecure is True
    assert _parse([], env={"LOCUST_INSECURE": "0"}).insecure is False
    settings = _parse(
        ["--host-header", "t.example.com", "--grpc-url", "[::1]:8443"],
        env={"LOCUST_GRPC_AUTHORITY": "g.example.com:443"},
    )
    assert (settings.host_header, settings.grpc_url, settings.grpc_authority) == (
        "t.example.com",
        "[::1]:8443",
        "g.example.com:443",
    )


def test_the_ca_file_must_hold_certificates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("not a certificate\n")
    with pytest.raises(SystemExit):
        _parse(["--ca-file", str(not_pem)])
    assert f"argument --ca-file: {not_pem} holds no PEM certificate" in capsys.readouterr().err
