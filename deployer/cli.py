"""The command line: parse arguments, run one action, map errors to exit codes.

Exit codes: 0 done; 1 the cluster refused, or objects were not ready; 2 bad input (schema,
values, chart), with nothing sent to the cluster.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import yaml

from deployer import actions, application, deadline, objects, values, verify
from deployer.errors import BadInputError, DeployerError

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
REPO_ROOT = Path(__file__).resolve().parent.parent
TEST_SCHEMA = "/data-test/schema.yaml"
"""Where Google's deploy_with_tests.sh finds the properties verify lays over the schema."""


def _default(image_path: str, repo_path: Path) -> Path:
    """The image's ``/data`` path when it exists, else the repository's own file."""
    return Path(image_path) if Path(image_path).exists() else repo_path


def _seconds(text: str) -> float:
    """A positive number of seconds (argparse type)."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return seconds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="triton-gke-deployer",
        description="Deploy Triton Inference Server on GKE from its chart (GKE Marketplace "
        "deployer). Exit codes: 0 done, 1 cluster or readiness failure, 2 bad input.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    inputs = argparse.ArgumentParser(add_help=False)
    inputs.add_argument(
        "--values",
        type=Path,
        default=_default("/data/values.yaml", Path("/data/values")),
        help="values file, or a folder of one file per key as Marketplace mounts them "
        "(default: /data/values.yaml, else /data/values)",
    )
    inputs.add_argument(
        "--schema",
        type=Path,
        default=_default("/data/schema.yaml", REPO_ROOT / "schema.yaml"),
        help="Marketplace schema v2 (default: %(default)s)",
    )
    inputs.add_argument(
        "--chart",
        type=Path,
        default=_default("/data/chart", REPO_ROOT / "chart"),
        help="chart directory (default: %(default)s)",
    )
    inputs.add_argument("--helm", help="helm binary (default: $HELM, /usr/local/bin/helm, PATH)")
    live = argparse.ArgumentParser(add_help=False)
    live.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster, $KUBECONFIG)")
    live.add_argument("--context", help="kubeconfig context")
    live.add_argument(
        "--timeout",
        type=_seconds,
        help="seconds the whole command may take, every API request included (each waits "
        f"at most {deadline.MAX_REQUEST_S:.0f} s). Default from the chart: deploy waits the "
        f"Deployment's progressDeadlineSeconds + {deadline.APPLY_AND_REPORT_S:.0f} s, verify "
        "--tester-timeout more for each tester pod, delete the pods' grace period + "
        f"{deadline.APPLY_AND_REPORT_S:.0f} s, status {deadline.STATUS_S:.0f} s",
    )
    live.add_argument(
        "--poll-interval", type=float, default=2.0, help="seconds between checks (default: 2)"
    )

    job = argparse.ArgumentParser(add_help=False)
    job.add_argument(
        "--marketplace-job",
        action="store_true",
        help="run as GKE Marketplace's deployer Job (the image's /bin/deploy.sh and "
        "/bin/deploy_with_tests.sh): any failure marks the Application Failed, and success "
        "ends by deleting the deployer's own ServiceAccount, as Google's deploy.sh does",
    )
    for name, text in (
        ("status", "print each object's readiness and the Application's phase"),
        ("delete", "delete what deploy applies, in reverse order, and wait"),
    ):
        sub.add_parser(name, parents=[inputs, live], help=text, description=text)
    text = "validate, render, apply and wait until ready"
    sub.add_parser("deploy", parents=[inputs, live, job], help=text, description=text)
    text = "deploy, run the chart's tests as Marketplace testers, report, clean up"
    check = sub.add_parser("verify", parents=[inputs, live, job], help=text, description=text)
    check.add_argument(
        "--keep-app",
        action="store_true",
        help="leave the application and its testers (mpdev verify deletes them)",
    )
    check.add_argument(
        "--test-schema",
        type=Path,
        default=Path(TEST_SCHEMA),
        help="properties laid over the schema, as mpdev verify passes no values "
        "(default: %(default)s, where it exists)",
    )
    check.add_argument(
        "--tester-timeout",
        type=float,
        default=float(os.environ.get("TESTER_TIMEOUT") or 300),
        help="seconds each tester pod may run (default: $TESTER_TIMEOUT, else 300, as in "
        "Google's deploy_with_tests.sh)",
    )
    show = sub.add_parser(
        "render",
        parents=[inputs],
        help="print the objects deploy would apply (namespaces and owner references are "
        "added at deploy time)",
    )
    show.add_argument("--tests", action="store_true", help="include the chart's test objects")
    show.add_argument(
        "--show-secrets", action="store_true", help="print Secret values instead of redacting"
    )
    return parser


def _print(line: str) -> None:
    print(line, flush=True)


def _render(plan: actions.Plan, args: argparse.Namespace) -> None:
    shown = [*plan.objects, *(plan.tests if args.tests else [])]
    labels = application.component_labels(plan.application) if plan.application else {}
    docs = [objects.with_labels(o, labels) for o in shown]
    if not args.show_secrets:
        docs = [objects.redact_secrets(d) for d in docs]
    sys.stdout.write(yaml.safe_dump_all(docs, sort_keys=False))


_DEFAULT_SOURCES = {
    "deploy": "from the chart's progressDeadlineSeconds",
    "verify": "from the chart's progressDeadlineSeconds and --tester-timeout",
    "delete": "from the chart's terminationGracePeriodSeconds",
    "status": "the default for status",
}
"""Where a deadline comes from without ``--timeout``, as the deployer prints it."""


def _deadline(
    args: argparse.Namespace, plan: actions.Plan, *, started_at: float
) -> deadline.Deadline:
    """The command's deadline: ``--timeout``, else worked out from the rendered objects;
    printed, with a note when it is shorter than the rollout's own deadline."""
    rendered = [*plan.objects, *plan.tests]
    given = args.timeout is not None
    testers_s = args.tester_timeout if args.command == "verify" else 0.0
    seconds = (
        args.timeout
        if given
        else deadline.default_timeout_s(args.command, rendered, testers_s=testers_s)
    )
    rollout_s = deadline.rollout_budget_s(plan.objects)
    source = "--timeout" if given else _DEFAULT_SOURCES[args.command]
    _print(f"deadline {seconds:.0f} s ({source})")
    if args.command in ("deploy", "verify") and seconds < rollout_s:
        _print(
            f"note: the deadline is shorter than the Deployment's progressDeadlineSeconds "
            f"({rollout_s:.0f} s): a slow start ends as this deadline, not as the rollout's "
            "own verdict"
        )
    return deadline.Deadline(seconds, started_at=started_at)


def run(args: argparse.Namespace) -> int:
    """Run one command. Returns the exit code; DeployerError propagates to ``main``."""
    started_at = time.monotonic()
    test_schema = args.test_schema if args.command == "verify" else None
    inputs = actions.Inputs(
        chart=args.chart,
        schema=args.schema,
        values=args.values,
        helm=Path(args.helm) if args.helm else None,
        test_schema=test_schema,
    )
    plan = actions.make_plan(inputs)
    # On stderr for render, whose stdout is the objects.
    stream = sys.stderr if args.command == "render" else sys.stdout
    for derived in plan.release.derived:
        print(f"derived {derived.line()}", file=stream, flush=True)
    if args.command == "render":
        _render(plan, args)
        return EXIT_OK
    limit = _deadline(args, plan, started_at=started_at)
    # Imported once the plan is made: the Kubernetes client is a third of the start-up time,
    # and bad input, refused above, never needs it.
    from deployer.cluster import Cluster, connect

    api = connect(kubeconfig=args.kubeconfig, context=args.context)
    with Cluster(api, namespace=plan.release.namespace, deadline=limit) as cluster:
        poll_s = args.poll_interval
        if args.command == "deploy":
            actions.deploy(plan, cluster, report=_print, poll_s=poll_s)
        elif args.command == "delete":
            actions.delete(plan, cluster, report=_print, poll_s=poll_s)
        elif args.command == "verify":
            verify.verify(
                plan,
                cluster,
                report=_print,
                keep_app=args.keep_app,
                tester_timeout_s=args.tester_timeout,
                poll_s=poll_s,
            )
        elif not actions.status(plan, cluster, report=_print):
            return EXIT_FAILED
        if getattr(args, "marketplace_job", False):
            actions.remove_deployer_service_account(cluster, name=plan.release.name, report=_print)
    return EXIT_OK


def _release_of(args: argparse.Namespace) -> tuple[str, str] | None:
    """The app's name and namespace from the raw values, as deploy.sh's trap reads them
    when the values could not be expanded; None when even they cannot be read."""
    try:
        schema = values.load_schema(args.schema, chart=args.chart)
        raw = values.load_values(args.values, schema)
    except DeployerError:
        return None
    name, namespace = (raw.get(schema.release_keys[k]) for k in ("name", "namespace"))
    if not isinstance(name, str) or not isinstance(namespace, str) or not name or not namespace:
        return None
    return name, namespace


MARK_FAILED_S = 30.0
"""How long marking the Application Failed may take (a read and two patches)."""


def _mark_failed(args: argparse.Namespace, error: DeployerError) -> None:
    """deploy.sh's trap: whatever failed, the Application says Failed and why."""
    release = _release_of(args)
    if release is None:
        print("could not read the app's name and namespace: no Application marked Failed")
        return
    name, namespace = release
    reason = "BadInput" if isinstance(error, BadInputError) else "DeployFailed"
    from deployer.cluster import Cluster, connect  # see run()

    try:
        api = connect(kubeconfig=args.kubeconfig, context=args.context)
        # Its own short deadline: the command's may be spent, and a failure must be reported.
        limit = deadline.Deadline(MARK_FAILED_S)
        with Cluster(api, namespace=namespace, deadline=limit) as cluster:
            if actions.mark_failed(
                cluster, name=name, namespace=namespace, reason=reason, message=str(error)
            ):
                print(f"Application/{name}: phase Failed", flush=True)
    except DeployerError as exc:
        print(f"could not mark Application/{name} Failed: {exc}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``triton-gke-deployer`` and ``python -m deployer``."""
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except DeployerError as exc:
        if getattr(args, "marketplace_job", False):
            _mark_failed(args, exc)
        if isinstance(exc, BadInputError):
            marked = getattr(args, "marketplace_job", False)
            sent = "only the Application's phase" if marked else "nothing"
            print(f"error: {exc}\n{sent} was sent to the cluster", file=sys.stderr, flush=True)
            return EXIT_BAD_INPUT
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
