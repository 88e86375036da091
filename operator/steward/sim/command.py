"""``steward simulate``: replay traces through Steward's decision code and the baselines."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from steward.cost.power import curve_for
from steward.sim.budgets import PolicyError, load_governance
from steward.sim.engine import Inputs
from steward.sim.loaders import (
    TraceError,
    aws_spot_prices,
    gcp_prices,
    load_capacity,
    load_workload,
)
from steward.sim.mapping import SimMapping, load_mapping
from steward.sim.model import EnergyModel, PriceSeries
from steward.sim.pools import check_pools
from steward.sim.replay import POLICIES, replay_all
from steward.sim.report import Report, write

#: Wide enough for the summary's columns, also when printed to a file or pipe.
_WIDTH = 180
EXISTING = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.command()
@click.option("--workload", type=EXISTING, required=True, help="openb pod list or Alibaba jobs.")
@click.option("--spot", type=EXISTING, required=True, help="Spot capacity trace.")
@click.option("--prices", type=EXISTING, required=True,
              help="AWS spot price history CSV or GCP price history CSV(.gz).")  # fmt: skip
@click.option("--instance", required=True, help="Instance type priced (e.g. p3.16xlarge).")
@click.option("--zone", required=True, help="AWS availability zone or GCP region priced.")
@click.option("--on-demand-prices", type=EXISTING, help="AWS on-demand price list (JSON).")
@click.option("--policies", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Directory of Budgets, CostPolicies and GPUNodePools (YAML): Steward is "
                   "governed by them, every policy's breaches are counted, every policy runs "
                   "on the node pools.")  # fmt: skip
@click.option("--mapping", "mapping_file", type=EXISTING, help="YAML overriding the mapping.")
@click.option("--policy", "chosen", multiple=True, type=click.Choice(POLICIES),
              help="Replay only these (repeatable; default all).")  # fmt: skip
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for report.md, report.json and PNG plots.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON only.")
def simulate(
    *,
    workload: Path,
    spot: Path,
    prices: Path,
    instance: str,
    zone: str,
    on_demand_prices: Path | None,
    policies: Path | None,
    mapping_file: Path | None,
    chosen: tuple[str, ...],
    out: Path | None,
    as_json: bool,
) -> None:
    """Replay real job, spot and price traces through Steward's policies and the baselines."""
    console = Console(stderr=as_json, width=_WIDTH)
    try:
        mapping = load_mapping(mapping_file)
        series = _prices(prices, instance, zone, on_demand_prices)
        inputs = replace(_inputs(workload, spot, series, mapping),
                         governance=load_governance(policies))  # fmt: skip
        check_pools(inputs.governance, inputs.jobs)
    except (TraceError, PolicyError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    names = (workload.name, inputs.capacity.name, series.name)
    report = _replay(inputs, names, list(chosen or POLICIES), console)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        console.print(report.table())
    if out is not None:
        try:
            written = write(report, out)
        except ImportError as error:
            raise click.ClickException(
                f"{error}: pip install 'ai-steward[sim]' for plots"
            ) from None
        for path in written:
            console.print(f"wrote {path}")


def _replay(
    inputs: Inputs,
    names: tuple[str, str, str],
    chosen: list[str],
    console: Console,
) -> Report:
    horizon = max(j.arrival + j.work for j in inputs.jobs)
    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:  # fmt: skip
        tasks = {p: bar.add_task(p, total=horizon) for p in chosen}
        return replay_all(
            inputs, names=names, policies=chosen,
            progress=lambda p, now: bar.update(tasks[p], completed=min(now, horizon)),
        )  # fmt: skip


def _inputs(workload: Path, spot: Path, prices: PriceSeries, mapping: SimMapping) -> Inputs:
    jobs = load_workload(workload, mapping)
    capacity = load_capacity(spot, mapping)
    return Inputs(jobs, capacity, prices, mapping, energy_model(mapping))


def energy_model(mapping: SimMapping) -> EnergyModel:
    """The mapping's GPU model's measured power curve at its utilisation (busy) and idle."""
    curve = curve_for(mapping.gpu_model)
    return EnergyModel(curve.watts(mapping.utilization_percent), mapping.pue,
                       mapping.grams_co2e_per_kwh, idle_watts=curve.watts(None))  # fmt: skip


def _prices(path: Path, instance: str, zone: str, on_demand: Path | None) -> PriceSeries:
    with path.open("rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
    if gzipped or "gcp" in path.name:
        return gcp_prices(path, instance, zone)
    if on_demand is None:
        raise click.UsageError("--on-demand-prices is required with an AWS spot price history")
    return aws_spot_prices(path, on_demand, instance, zone)
