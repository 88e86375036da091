"""``steward demo``: bring up the local cluster, start the operator in this process, play the
scenario live, end with the money and energy saved versus on-demand, and clean up."""

from __future__ import annotations

import json
import os
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import yaml
from rich.console import Console
from rich.live import Live

from steward import crdgen
from steward.act.kube import INFERENCE_SERVICES, TRAINING_JOBS, Kube, load_client
from steward.controllers.accountant import AccountingSettings
from steward.controllers.accounting import AccountingOptions
from steward.controllers.embedded import EmbeddedOperator, EmbeddedOperatorError
from steward.controllers.governor import GovernorOptions
from steward.controllers.workloads import WorkloadSettings
from steward.cost.catalog import PriceCatalog, load_catalog
from steward.demo import compression, display
from steward.demo.scenario import DemoSettings, demo_catalog
from steward.demo.script import Scenario
from steward.demo.summary import Summary, summarize
from steward.demo.view import Reader
from steward.devcluster import build, cluster
from steward.devcluster.processes import ClusterError
from steward.observe.prometheus import Prometheus, PrometheusSettings, aligned_end
from steward.observe.queries import load_query_config
from steward.policy.placement import PLATFORMS

#: Short intervals, as in the integration tests, so that decisions show within seconds.
ACCOUNTING = AccountingSettings(
    capacity_labels=PLATFORMS["karpenter"],
    step_seconds=5,
    lag_seconds=7,
    interval_seconds=3,
    max_sample_age_seconds=12,
)


@dataclass
class Stage:
    """What is up, for the cleanup."""

    workdir: Path
    keep: bool
    operator: EmbeddedOperator | None = None


@click.command()
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Cluster and demo files (default ~/.cache/steward/clusters/demo).",
)
@click.option(
    "--price-scale",
    type=click.IntRange(1, 3600),
    default=60,
    show_default=True,
    help="Multiply every price by this, so minutes cost what hours would.",
)
@click.option(
    "--time-limit",
    type=click.IntRange(min=60),
    default=600,
    show_default=True,
    help="Seconds the scenario may take before the demo gives up.",
)
@click.option(
    "--summary",
    "summary_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the final numbers here, as JSON.",
)
@click.option(
    "--plain",
    is_flag=True,
    help="Plain lines instead of the live screen (the default when not a terminal).",
)
@click.option("--no-compression", is_flag=True, help="Leave out the compression part.")
@click.option("--keep-cluster", is_flag=True, help="Leave the cluster running at the end.")
def demo(
    *,
    workdir: Path | None,
    price_scale: int,
    time_limit: int,
    summary_file: Path | None,
    plain: bool,
    no_compression: bool,
    keep_cluster: bool,
) -> None:
    """Steward on a local cluster with simulated GPU nodes, in a few minutes: budgets, spot with
    preemptions, node pools, compression; ends with what was saved versus on-demand."""
    live = not plain and sys.stdout.isatty()
    console = Console() if live else display.plain_console()
    stage = Stage(workdir or cluster.default_workdir().parent / "demo", keep_cluster)
    settings = DemoSettings(price_scale=price_scale)
    skip = compression.unavailable() if not no_compression else "--no-compression"
    if skip is not None:
        console.print(f"compression part left out: {skip}")
    try:
        summary, missed = _play(
            console, stage, settings, time_limit, compress=skip is None, live=live
        )
    except KeyboardInterrupt:
        console.print("interrupted: cleaning up")
        raise SystemExit(130) from None
    except (build.BuildError, ClusterError, EmbeddedOperatorError, LookupError) as error:
        raise click.ClickException(str(error)) from error
    finally:
        _clean_up(console, stage)
    console.print(display.summary_table(summary))
    if summary_file is not None:
        summary_file.write_text(json.dumps(summary.as_json() | {"missed": missed}, indent=2))
    if missed:
        raise click.ClickException("not shown within the time limit: " + "; ".join(missed))
    if summary.largest_difference_usd > 0.01:
        raise click.ClickException("the running accounts and the one-shot accounting differ")


def _play(
    console: Console,
    stage: Stage,
    settings: DemoSettings,
    time_limit: int,
    *,
    compress: bool,
    live: bool,
) -> tuple[Summary, list[str]]:
    state = _bring_up(console, stage.workdir)
    os.environ["KUBECONFIG"] = state.kubeconfig  # kopf's login reads it
    catalog = demo_catalog(load_catalog(None), settings.price_scale, datetime.now(UTC))
    catalog_file = stage.workdir / "demo-catalog.yaml"
    catalog_file.write_text(
        yaml.safe_dump(catalog.model_dump(mode="json", by_alias=True, exclude_none=True))
    )
    console.print(
        f"prices x{settings.price_scale}: a minute here costs what an hour would; the Budget's"
        f" period is {settings.budget_minutes} minutes long ({catalog_file})"
    )
    kube = Kube(load_client(state.kubeconfig))
    reader = Reader(kube)
    scenario = Scenario(kube, reader, settings, stage.workdir, console.print, compress)
    if compress:
        console.print("training the service's model (a digits MLP) for the compression part")
        compression.prepare_model(scenario.model_dir)
    prometheus = PrometheusSettings(url=state.prometheus_url, timeout_seconds=3)
    stage.operator = _operator(state.kubeconfig, prometheus, catalog_file, stage.workdir)
    console.print(f"starting the operator in this process (its log: {stage.workdir}/operator.log)")
    stage.operator.start()
    started = datetime.now(UTC)
    scenario.apply(ACCOUNTING.step_seconds)
    _run_story(console, scenario, reader, settings, time_limit, live=live)
    console.print("letting the accounting catch up with the last windows")
    time.sleep(ACCOUNTING.lag_seconds + 4 * ACCOUNTING.interval_seconds)
    stage.operator.stop()
    summary = _summary(reader, prometheus, catalog, started, settings.price_scale)
    missed = [g.text for g in scenario.goals if not g.met] + scenario.errors
    return summary, missed


def _bring_up(console: Console, workdir: Path) -> cluster.ClusterState:
    if build.missing():
        console.print(
            "building the local Kubernetes from Go modules (first run only; about 20"
            " minutes on 2 cores, cached in ~/.cache/steward)"
        )
        build.build_all(report=console.print)
    cluster.down(workdir)  # a fresh cluster: nothing left from an earlier run
    console.print(
        "starting the local cluster: etcd, kube-apiserver, scheduler, controller-"
        "manager, kwok, kube-state-metrics, Prometheus, the GPU metrics simulator"
    )
    state = cluster.up(workdir, tie_to_parent=True, report=lambda line: None)
    crds = workdir / "crds"
    crdgen.write(crds)
    cluster.install_crds(state, crds)
    return state


def _operator(
    kubeconfig: str, prometheus: PrometheusSettings, catalog: Path, workdir: Path
) -> EmbeddedOperator:
    return EmbeddedOperator(
        workloads=WorkloadSettings(resync_seconds=1.0, kubeconfig=kubeconfig),
        accounting=AccountingOptions(
            prometheus=prometheus,
            accounting=ACCOUNTING,
            catalog_file=catalog,
            kubeconfig=kubeconfig,
        ),
        governor=GovernorOptions(
            interval_seconds=ACCOUNTING.interval_seconds,
            catalog_file=catalog,
            kubeconfig=kubeconfig,
        ),
        log_file=workdir / "operator.log",
    )


def _run_story(
    console: Console,
    scenario: Scenario,
    reader: Reader,
    settings: DemoSettings,
    time_limit: int,
    *,
    live: bool,
) -> None:
    """Tick the scenario every second until every goal is met or the time limit passes."""
    story: list[str] = []
    seen: set[str] = set()
    begin = time.monotonic()
    with ExitStack() as stack:
        screen = stack.enter_context(Live(console=console, refresh_per_second=2)) if live else None

        def say(line: str) -> None:
            story.append(line)
            if screen is None:
                console.print(line)

        scenario.say = say
        while not scenario.done and time.monotonic() - begin < time_limit:
            scenario.tick()
            view = reader.read()
            if screen is not None:
                screen.update(
                    display.dashboard(
                        view, scenario.goals, story, time.monotonic() - begin, settings.price_scale
                    )
                )
            else:
                for event in view.events:
                    if event.key not in seen:
                        seen.add(event.key)
                        console.print(display.event_line(event))
            time.sleep(1)


def _summary(
    reader: Reader,
    prometheus: PrometheusSettings,
    catalog: PriceCatalog,
    started: datetime,
    scale: int,
) -> Summary:
    budget = reader.budget().get("status") or {}
    until = datetime.fromisoformat(str(budget["accountedUntil"]).replace("Z", "+00:00"))
    statuses = {}
    for obj in reader.team(TRAINING_JOBS) + reader.team(INFERENCE_SERVICES):
        cost = (obj.get("status") or {}).get("cost") or {}
        statuses[(obj["kind"], obj["metadata"]["name"])] = float(cost.get("totalUSD", 0))
    step = ACCOUNTING.step_seconds
    start = aligned_end(started, step, ACCOUNTING.lag_seconds) - timedelta(seconds=step)
    queries = load_query_config(None)
    return summarize(
        prometheus=Prometheus(prometheus, queries),
        queries=queries,
        settings=ACCOUNTING,
        catalog=catalog,
        window=(start, until),
        statuses=statuses,
        budget_spent_usd=float((budget.get("spent") or {}).get("usd") or 0),
        price_scale=scale,
    )


def _clean_up(console: Console, stage: Stage) -> None:
    if stage.operator is not None and stage.operator.running:
        stage.operator.stop()
    if stage.keep:
        console.print(
            f'the cluster keeps running: eval "$(steward dev-cluster env --workdir '
            f'{stage.workdir})"; `steward dev-cluster down --workdir {stage.workdir}`'
        )
    else:
        cluster.down(stage.workdir)
        console.print("cleaned up: the cluster is stopped and its files removed")
