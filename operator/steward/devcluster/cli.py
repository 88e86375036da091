"""``steward dev-cluster``: build, start, inspect and stop the local cluster."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from steward.devcluster import build, cluster
from steward.devcluster.kube import core_api
from steward.devcluster.nodes import GPUNode, add_node, delete_node, list_nodes
from steward.devcluster.processes import ClusterError

_WORKDIR = click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Cluster directory. Default: $STEWARD_DEVCLUSTER_DIR, else "
    "~/.cache/steward/clusters/default.",
)


def _state(workdir: Path | None) -> cluster.ClusterState:
    state = cluster.load(workdir or cluster.default_workdir())
    if state is None:
        raise click.ClickException(
            "no local cluster is running; start one with `steward dev-cluster up`"
        )
    return state


@click.group("dev-cluster")
def dev_cluster() -> None:
    """A real local Kubernetes with simulated GPU nodes and Prometheus, on loopback."""


@dev_cluster.command("build")
def build_command() -> None:
    """Build the binaries from Go modules (cached by version; a second run does nothing)."""
    try:
        spent = build.build_all(report=click.echo)
    except build.BuildError as error:
        raise click.ClickException(str(error)) from error
    click.echo("everything already built" if not spent else f"built in {sum(spent.values()):.0f}s")


@dev_cluster.command()
@_WORKDIR
@click.option(
    "--build/--no-build", "build_missing", default=True, help="Build what is missing first."
)
@click.option(
    "--crds",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Also install the CRDs in this directory (e.g. crds/).",
)
def up(workdir: Path | None, build_missing: bool, crds: Path | None) -> None:
    """Start the cluster and print how to reach it."""
    try:
        if build_missing:
            build.build_all(report=click.echo)
        state = cluster.up(workdir or cluster.default_workdir(), report=click.echo)
        if crds is not None:
            cluster.install_crds(state, crds)
    except (build.BuildError, ClusterError) as error:
        raise click.ClickException(str(error)) from error
    _print_env(state)


@dev_cluster.command()
@_WORKDIR
def down(workdir: Path | None) -> None:
    """Stop every process of the cluster and delete its directory."""
    existed = cluster.down(workdir or cluster.default_workdir())
    click.echo("stopped" if existed else "no local cluster was running")


@dev_cluster.command()
@_WORKDIR
def status(workdir: Path | None) -> None:
    """Which components run. Exits 1 when any is down."""
    state = _state(workdir)
    health = cluster.status(Path(state.workdir))
    for name, running in health.items():
        click.echo(f"{name:26} {'running' if running else 'DOWN'}")
    click.echo(f"kubeconfig   {state.kubeconfig}\nprometheus   {state.prometheus_url}")
    if not all(health.values()):
        raise SystemExit(1)


@dev_cluster.command()
@_WORKDIR
def env(workdir: Path | None) -> None:
    """Print `export` lines for the shell: eval "$(steward dev-cluster env)"."""
    _print_env(_state(workdir))


def _print_env(state: cluster.ClusterState) -> None:
    for key, value in state.env().items():
        click.echo(f"export {key}={shlex.quote(value)}")


@dev_cluster.group()
def node() -> None:
    """Add, delete (preempt) and list simulated GPU nodes."""


@node.command("add")
@_WORKDIR
@click.argument("name")
@click.option("--gpus", default=8, show_default=True)
@click.option("--gpu-model", default="NVIDIA-H100-80GB-HBM3", show_default=True)
@click.option("--instance-type", default="p5.48xlarge", show_default=True)
@click.option("--spot", is_flag=True, help="A spot node (labelled and tainted as such).")
@click.option("--zone", default="us-east-1a", show_default=True)
def node_add(
    *,
    workdir: Path | None,
    name: str,
    gpus: int,
    gpu_model: str,
    instance_type: str,
    spot: bool,
    zone: str,
) -> None:
    """Add a GPU node."""
    spec = GPUNode(name, gpu_model, gpus, instance_type, spot, zone, zone[:-1])
    add_node(core_api(_state(workdir).kubeconfig), spec)
    click.echo(f"node/{name} added ({gpus} x {gpu_model}, {spec.capacity_label})")


@node.command("delete")
@_WORKDIR
@click.argument("name")
def node_delete(workdir: Path | None, name: str) -> None:
    """Delete a node at once, as a spot preemption does."""
    delete_node(core_api(_state(workdir).kubeconfig), name)
    click.echo(f"node/{name} deleted")


@node.command("list")
@_WORKDIR
def node_list(workdir: Path | None) -> None:
    """List the simulated GPU nodes."""
    for item in list_nodes(core_api(_state(workdir).kubeconfig)):
        labels = item["metadata"].get("labels", {})
        gpus = item.get("status", {}).get("capacity", {}).get("nvidia.com/gpu", "0")
        click.echo(
            f"{item['metadata']['name']:24} {gpus:>2} x {labels.get('nvidia.com/gpu.product')}"
            f"  {labels.get('karpenter.sh/capacity-type')}"
        )
