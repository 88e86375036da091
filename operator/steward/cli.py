"""The ``steward`` command line."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console

from steward import crdgen, refdoc
from steward.api.constants import DEFAULT_COMPRESSION_IMAGE
from steward.compress.command import compress
from steward.demo.command import demo
from steward.devcluster.cli import dev_cluster
from steward.policy.placement import PLATFORMS
from steward.sim.command import simulate
from steward.validation import validate_paths

if TYPE_CHECKING:
    from steward.act.lease import LeaseSettings
    from steward.controllers.accounting import AccountingOptions
    from steward.controllers.governor import GovernorOptions

#: Where ``steward crds`` writes by default, relative to the repository root.
DEFAULT_CRD_DIRS = (Path("crds"), Path("charts/steward/crds"))
#: Where ``steward reference`` writes by default.
DEFAULT_REFERENCE = Path("docs/api-reference.md")


def _version() -> str:
    try:
        return version("ai-steward")
    except PackageNotFoundError:  # running from a source tree without an install
        return "0+unknown"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(_version(), prog_name="steward")
def main() -> None:
    """Steward: AI cost governance for Kubernetes GPU clusters."""


@main.command()
@click.option(
    "--out",
    "directories",
    multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory to write (repeatable). Default: crds/ and charts/steward/crds/.",
)
@click.option("--check", is_flag=True, help="Write nothing; fail if the files differ.")
def crds(directories: tuple[Path, ...], check: bool) -> None:
    """Generate the CustomResourceDefinitions from the API models."""
    targets = directories or DEFAULT_CRD_DIRS
    if check:
        problems = crdgen.drift(targets)
        for line in problems:
            click.echo(line, err=True)
        if problems:
            raise click.ClickException(
                f"{len(problems)} CRD file(s) out of date; run `steward crds` and commit the result"
            )
        click.echo(f"CRDs up to date in {', '.join(map(str, targets))}")
        return
    for directory in targets:
        for path in crdgen.write(directory):
            click.echo(f"wrote {path}")


@main.command()
@click.option(
    "--out",
    default=DEFAULT_REFERENCE,
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
)
@click.option("--check", is_flag=True, help="Write nothing; fail if the file differs.")
def reference(out: Path, check: bool) -> None:
    """Generate the API reference (Markdown) from the models."""
    text = refdoc.render()
    if check:
        if not out.is_file() or out.read_text(encoding="utf-8") != text:
            raise click.ClickException(
                f"{out} is out of date; run `steward reference` and commit the result"
            )
        click.echo(f"{out} up to date")
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    click.echo(f"wrote {out}")


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
def validate(paths: tuple[Path, ...]) -> None:
    """Check Steward manifests (files or directories of YAML) against the API.

    Every error names the file, the object and the exact field. Exits 1 if any is invalid.
    """
    console = Console(stderr=True, highlight=False)
    report = validate_paths(paths)
    for problem in report.problems:
        console.print(f"[red]error[/red] {problem}", markup=True, soft_wrap=True)
    summary = (
        f"{len(report.checked)} Steward object(s) checked, {len(report.problems)} problem(s)"
        + (f", {len(report.skipped)} other document(s) skipped" if report.skipped else "")
    )
    if not report.ok:
        raise click.ClickException(summary)
    if not report.checked:
        raise click.ClickException("no Steward objects found in " + ", ".join(map(str, paths)))
    click.echo(summary)


@main.command()
@click.option(
    "--namespace",
    "namespaces",
    multiple=True,
    help="Watch only this namespace (repeatable). Default: the whole cluster.",
)
@click.option(
    "--liveness",
    default="http://0.0.0.0:8080/healthz",
    show_default=True,
    help="Where kopf serves its liveness probe; 'none' to serve none.",
)
@click.option("--json-logs", is_flag=True, help="Log JSON lines (for log collectors).")
@click.option(
    "--capacity-labels",
    type=click.Choice(sorted(PLATFORMS)),
    default="karpenter",
    show_default=True,
    help="Which node label tells spot from on-demand capacity.",
)
@click.option(
    "--resync-seconds",
    type=click.FloatRange(min=0.5),
    default=30.0,
    show_default=True,
    help="How often every workload is re-examined (time-based decisions such as spot fallback).",
)
@click.option(
    "--prometheus-url",
    envvar="STEWARD_PROMETHEUS_URL",
    help="Prometheus to account cost and energy from; without it accounting and budgets are off.",
)
@click.option(
    "--prometheus-token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File holding a bearer token for Prometheus (re-read every cycle).",
)
@click.option(
    "--prometheus-ca-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="CA bundle to verify Prometheus' certificate with.",
)
@click.option(
    "--prometheus-insecure", is_flag=True, help="Do not verify Prometheus' TLS certificate."
)
@click.option(
    "--prometheus-timeout",
    type=click.FloatRange(min=1),
    default=30.0,
    show_default=True,
    help="Seconds one Prometheus query may take before the cycle counts the data as stale.",
)
@click.option(
    "--price-catalog",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Price catalog YAML (default: the catalog shipped with Steward; docs/pricing.md).",
)
@click.option(
    "--queries",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="YAML overriding PromQL queries and required scrape jobs (docs/accounting.md).",
)
@click.option(
    "--accounting-step",
    type=click.IntRange(min=1),
    default=15,
    show_default=True,
    help="Seconds between samples of the accounting (at least the scrape interval).",
)
@click.option(
    "--cycle-interval",
    "--accounting-interval",
    "accounting_interval",
    type=click.FloatRange(min=1),
    default=30.0,
    show_default=True,
    help="Seconds between governor cycles (accounting, then decisions).",
)
@click.option(
    "--accounting-lag",
    type=click.IntRange(min=0),
    default=30,
    show_default=True,
    help="Seconds a window ends before now, so Prometheus has stored its samples.",
)
@click.option(
    "--max-sample-age",
    type=click.FloatRange(min=1),
    default=60.0,
    show_default=True,
    help="A moment is accounted only if every required scrape job succeeded this recently.",
)
@click.option(
    "--attribution",
    type=click.Choice(["Requested", "Utilization"]),
    default="Requested",
    show_default=True,
    help="Share a node's cost by requested GPUs, or by requested GPUs x utilisation.",
)
@click.option(
    "--leader-election/--no-leader-election",
    default=True,
    show_default=True,
    help="Act only while holding the Lease (run several replicas; one acts).",
)
@click.option(
    "--compression-image",
    default=DEFAULT_COMPRESSION_IMAGE,
    show_default=True,
    help="Image of the compression runner's Jobs when a CompressionJob names none.",
)
@click.option(
    "--lease-namespace",
    envvar="POD_NAMESPACE",
    default="default",
    show_default=True,
    help="Namespace of the Lease 'steward-leader' (env POD_NAMESPACE).",
)
@click.option(
    "--lease-seconds",
    type=click.IntRange(min=3, max=300),
    default=15,
    show_default=True,
    help="Lease duration: a standby takes over this long after the leader's last renewal.",
)
@click.option(
    "--identity",
    envvar="POD_NAME",
    default=None,
    help="This replica's name in the Lease (env POD_NAME; default host name and process id).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(min=0, max=65535),
    default=9108,
    show_default=True,
    help="Port of the operator's /metrics (prometheus_client); 0 serves none.",
)
@click.option(
    "--preemptions-per-hour",
    type=click.FloatRange(min=0, max=100),
    default=0.1,
    show_default=True,
    help="Expected spot preemptions per hour in the spot savings estimate (docs/governor.md).",
)
def run(
    namespaces: tuple[str, ...],
    liveness: str,
    json_logs: bool,
    capacity_labels: str,
    resync_seconds: float,
    **options: Any,
) -> None:
    """Run the operator against the cluster of the current kubeconfig or service account."""
    # Imported here so that validate/crds start without loading kopf and aiohttp.
    from steward.controllers.runner import run as run_operator  # noqa: PLC0415
    from steward.controllers.workloads import WorkloadSettings  # noqa: PLC0415

    run_operator(
        namespaces,
        None if liveness == "none" else liveness,
        json_logs=json_logs,
        workloads=WorkloadSettings(
            capacity_labels=capacity_labels,
            resync_seconds=resync_seconds,
            compression_image=options["compression_image"],
        ),
        accounting=_accounting_options(capacity_labels, options),
        governor=_governor_options(options),
        lease=_lease_settings(options),
    )


def _governor_options(options: dict[str, Any]) -> GovernorOptions:
    from decimal import Decimal  # noqa: PLC0415

    from steward.controllers.governor import GovernorOptions  # noqa: PLC0415
    from steward.policy.governor import SpotEconomics  # noqa: PLC0415

    return GovernorOptions(
        interval_seconds=options["accounting_interval"],
        catalog_file=options["price_catalog"],
        metrics_port=options["metrics_port"],
        economics=SpotEconomics(preemptions_per_hour=Decimal(str(options["preemptions_per_hour"]))),
    )


def _lease_settings(options: dict[str, Any]) -> LeaseSettings | None:
    if not options["leader_election"]:
        return None
    import os  # noqa: PLC0415
    import socket  # noqa: PLC0415

    from steward.act.lease import LeaseSettings  # noqa: PLC0415
    from steward.api.constants import LEASE_NAME  # noqa: PLC0415

    identity = options["identity"] or f"{socket.gethostname()}-{os.getpid()}"
    return LeaseSettings(
        namespace=options["lease_namespace"],
        name=LEASE_NAME,
        identity=identity,
        duration_seconds=options["lease_seconds"],
    )


def _accounting_options(capacity_labels: str, options: dict[str, Any]) -> AccountingOptions | None:
    """The accounting's options, or None when no Prometheus is given."""
    if not options["prometheus_url"]:
        return None
    from steward.controllers.accountant import AccountingSettings  # noqa: PLC0415
    from steward.controllers.accounting import AccountingOptions  # noqa: PLC0415
    from steward.cost.accounting import Attribution  # noqa: PLC0415
    from steward.observe.prometheus import PrometheusSettings  # noqa: PLC0415

    return AccountingOptions(
        prometheus=PrometheusSettings(
            url=options["prometheus_url"],
            bearer_token_file=options["prometheus_token_file"],
            verify_tls=not options["prometheus_insecure"],
            ca_file=options["prometheus_ca_file"],
            timeout_seconds=options["prometheus_timeout"],
        ),
        accounting=AccountingSettings(
            capacity_labels=PLATFORMS[capacity_labels],
            step_seconds=options["accounting_step"],
            lag_seconds=options["accounting_lag"],
            interval_seconds=options["accounting_interval"],
            max_sample_age_seconds=options["max_sample_age"],
            attribution=Attribution(options["attribution"]),
        ),
        catalog_file=options["price_catalog"],
        queries_file=options["queries"],
    )


@main.command()
@click.argument("target")
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("--kubeconfig", envvar="KUBECONFIG", default=None)
def explain(target: str, namespace: str, kubeconfig: str | None) -> None:
    """Why the governor last acted on TARGET (trainingjob/NAME or inferenceservice/NAME)."""
    from steward.act.explain import KINDS  # noqa: PLC0415
    from steward.act.explain import explain as explain_workload  # noqa: PLC0415
    from steward.act.kube import Kube, KubeError, load_client  # noqa: PLC0415

    kind, _, name = target.partition("/")
    if kind.lower() not in KINDS or not name:
        raise click.ClickException(
            f"TARGET must be trainingjob/NAME or inferenceservice/NAME, not {target!r}"
        )
    try:
        lines = explain_workload(Kube(load_client(kubeconfig)), kind, namespace, name)
    except KubeError as error:
        raise click.ClickException(f"{target} in {namespace}: {error.message}") from None
    console = Console()
    for line in lines:
        console.print(line, highlight=False, markup=False)


main.add_command(dev_cluster)
main.add_command(simulate)
main.add_command(demo)
main.add_command(compress)


if __name__ == "__main__":
    main()
