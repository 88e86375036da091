"""One real local cluster and Prometheus per test session; a fresh namespace per test.

The cluster's processes are tied to the test process: they die with it, even when pytest is
killed. Where the cluster cannot be built (no Go, no proxy, no Prometheus), the integration
tests are skipped with the reason; with ``STEWARD_REQUIRE_CLUSTER=1`` (CI) they fail instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes import client
from prometheus_api_client import PrometheusConnect

from steward.devcluster import build, cluster, processes
from steward.devcluster.kube import core_api
from tests.conftest import REPO

T = TypeVar("T")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in item.nodeid.split("/"):
            item.add_marker(pytest.mark.integration)
    # Tests that bring up a cluster of their own run first, alone on the machine; tests that
    # judge what the whole suite did run last (stable order otherwise).
    items.sort(
        key=lambda item: (
            item.get_closest_marker("after_suite") is not None,
            item.get_closest_marker("before_cluster") is None,
        )
    )


def require_cluster_build() -> None:
    """Build the local cluster's binaries, or skip (fail in CI) saying why they cannot be."""
    try:
        build.build_all(report=lambda line: print(line, flush=True))
        build.prometheus_binary()
    except build.BuildError as error:
        if os.environ.get("STEWARD_REQUIRE_CLUSTER"):
            pytest.fail(f"the local cluster is required here but cannot be built: {error}")
        pytest.skip(f"LOCAL CLUSTER UNAVAILABLE, integration tests skipped: {error}")


@pytest.fixture(scope="session")
def dev_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[cluster.ClusterState]:
    require_cluster_build()
    workdir = tmp_path_factory.mktemp("cluster")
    state = cluster.up(workdir, tie_to_parent=True, report=lambda _line: None)
    try:
        cluster.install_crds(state, REPO / "crds")
        install_operator_identity(state)
        yield state
    finally:
        cluster.down(workdir)


#: Where the chart's ServiceAccount, its Lease and its namespaced RBAC live in the tests.
OPERATOR_NAMESPACE = "steward-system"
#: Release name of the chart's RBAC in the tests: the ServiceAccount is called this.
OPERATOR_RELEASE = "steward"
#: The chart's values for the tests: every node-pool provider the suite drives.
CHART_TEST_VALUES = (
    "nodePoolProviders.kwok=true",
    "nodePoolProviders.clusterAPI=true",
    "nodePoolProviders.karpenter=true",
)


def helm(*args: str) -> str:
    """Run the built helm; fail the test with its error output."""
    result = subprocess.run(
        [str(build.binaries()["helm"]), *args], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def chart_rbac() -> str:
    """The chart's ServiceAccount and RBAC objects, as the tests install them."""
    sets = [a for value in CHART_TEST_VALUES for a in ("--set", value)]
    return helm(
        "template", OPERATOR_RELEASE, str(REPO / "charts" / "steward"),
        "--namespace", OPERATOR_NAMESPACE, *sets,
        "--show-only", "templates/serviceaccount.yaml", "--show-only", "templates/rbac.yaml",
    )  # fmt: skip


def install_operator_identity(state: cluster.ClusterState) -> None:
    """Install the chart's ServiceAccount and RBAC and write a kubeconfig with a token of that
    ServiceAccount (``operator-kubeconfig``): the operator runs in the tests with exactly the
    permissions the chart grants, and the apiserver's audit log records what it asks for."""
    cluster.kubectl(state, "create", "namespace", OPERATOR_NAMESPACE)
    cluster.kubectl(state, "apply", "-f", "-", stdin=chart_rbac())
    token = cluster.kubectl(
        state, "create", "token", OPERATOR_RELEASE, "-n", OPERATOR_NAMESPACE, "--duration=24h"
    ).strip()
    config = json.loads(Path(state.kubeconfig).read_text(encoding="utf-8"))
    config["users"] = [{"name": "steward-operator", "user": {"token": token}}]
    config["contexts"][0]["context"]["user"] = "steward-operator"
    path = operator_kubeconfig(state)
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    path.chmod(0o600)


def operator_kubeconfig(state: cluster.ClusterState) -> Path:
    return Path(state.workdir) / "operator-kubeconfig"


@pytest.fixture(scope="session")
def core(dev_cluster: cluster.ClusterState) -> client.CoreV1Api:
    return core_api(dev_cluster.kubeconfig)


@pytest.fixture(scope="session")
def batch(core: client.CoreV1Api) -> client.BatchV1Api:
    return client.BatchV1Api(core.api_client)


@pytest.fixture(scope="session")
def prometheus(dev_cluster: cluster.ClusterState) -> PrometheusConnect:
    return PrometheusConnect(url=dev_cluster.prometheus_url, disable_ssl=True)


@pytest.fixture
def namespace(core: client.CoreV1Api) -> Iterator[str]:
    """A namespace of its own for one test, deleted afterwards."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace(body={"metadata": {"name": name}})  # type: ignore[arg-type]
    yield name
    core.delete_namespace(name=name)


def eventually(check: Callable[[], T | None], *, timeout: float = 60, what: str = "") -> T:
    """Poll ``check`` until it returns something truthy, and return that; fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what or check}")
        time.sleep(0.25)


def install_stub_crds(core: client.CoreV1Api, *crds: dict[str, Any]) -> None:
    """Install CRDs of other projects' kinds (schema-less) and wait until they serve; no
    controller of theirs runs. Already installed ones are kept."""
    api = client.ApiextensionsV1Api(core.api_client)
    for crd in crds:
        try:
            api.create_custom_resource_definition(crd)  # type: ignore[arg-type]
        except client.ApiException as error:
            if error.status != 409:
                raise
    for crd in crds:
        eventually(lambda c=crd: any(  # type: ignore[misc]
            cond.type == "Established" and cond.status == "True"
            for cond in api.read_custom_resource_definition(c["metadata"]["name"]).status.conditions
            or []), timeout=30, what="CRD established")  # fmt: skip


def stub_crd(group: str, version: str, kind: str, plural: str, *, namespaced: bool = True,
             scale: bool = False) -> dict[str, Any]:  # fmt: skip
    """A CRD that accepts any object of ``kind``, as a stand-in for another project's CRD;
    ``scale`` adds the scale subresource over ``spec.replicas``."""
    schema = {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}
    served: dict[str, Any] = {"name": version, "served": True, "storage": True, "schema": schema}
    if scale:
        served["subresources"] = {"scale": {"specReplicasPath": ".spec.replicas",
                                            "statusReplicasPath": ".status.replicas"}}  # fmt: skip
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {"group": group, "scope": "Namespaced" if namespaced else "Cluster",
                 "names": {"plural": plural, "singular": kind.lower(), "kind": kind},
                 "versions": [served]},
    }  # fmt: skip


def pod_phase(pod: Any) -> str | None:
    return pod.status.phase if pod is not None and pod.status is not None else None


class Operator:
    """``steward run`` as a real process against the test cluster; restartable and killable."""

    def __init__(
        self,
        kubeconfig: str,
        log: Path,
        prometheus_url: str,
        catalog: Path,
        metrics_port: int | None = None,
        identity: str | None = None,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.log = log
        self.pid: int | None = None
        self.prometheus_url = prometheus_url
        self.catalog = catalog
        self.metrics_port = METRICS_PORT if metrics_port is None else metrics_port
        self.identity = identity

    def start(self) -> None:
        argv = [
            sys.executable, "-m", "steward.cli", "run", "--liveness", "none",
            "--resync-seconds", str(RESYNC_SECONDS),
            "--prometheus-url", self.prometheus_url, "--price-catalog", str(self.catalog),
            "--accounting-step", str(ACCOUNTING_STEP), "--accounting-interval", "3",
            "--accounting-lag", "7", "--max-sample-age", "12", "--prometheus-timeout", "3",
            "--lease-seconds", str(LEASE_SECONDS), "--metrics-port", str(self.metrics_port),
            "--lease-namespace", OPERATOR_NAMESPACE,
        ]  # fmt: skip
        if self.identity:
            argv += ["--identity", self.identity]
        self.pid = processes.start(
            argv, self.log, tie_to_parent=True, env={"KUBECONFIG": self.kubeconfig}
        )
        eventually(
            lambda: "index filled" in self.log.read_text(errors="replace")[self._offset :],
            timeout=60,
            what="the operator to start",
        )

    def kill(self) -> None:
        """SIGKILL: no cleanup, as when a node dies under the operator."""
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            processes.stop(self.pid, timeout=5)
            self.pid = None
        self._offset = len(self.log.read_text(errors="replace")) if self.log.exists() else 0

    def restart(self) -> None:
        self.kill()
        self.start()

    _offset = 0


#: Short, so that time-based decisions (spot fallback) show within a test.
RESYNC_SECONDS = 1.0
#: Short, so that a standby takes over (and a restarted operator resumes) within a test.
LEASE_SECONDS = 6
#: Where the session's operator serves its metrics.
METRICS_PORT = 19108
#: The accounting's grid step: the dev cluster's scrape interval.
ACCOUNTING_STEP = 5
#: The prices and energy factors of the test catalog: every test node is a p5.48xlarge (8 GPUs)
#: in us-east-1.
ON_DEMAND_USD_PER_HOUR = 80.0
SPOT_USD_PER_HOUR = 32.0
GRAMS_CO2E_PER_KWH = 400.0
PUE = 1.2
TEST_CATALOG = f"""
instances:
  - instanceType: p5.48xlarge
    region: us-east-1
    gpuModel: NVIDIA-H100-80GB-HBM3
    gpus: 8
    onDemandUSDPerHour: {ON_DEMAND_USD_PER_HOUR}
    spotUSDPerHour: {SPOT_USD_PER_HOUR}
regions:
  - region: us-east-1
    gramsCO2ePerKWh: {GRAMS_CO2E_PER_KWH}
    pue: {PUE}
"""


@pytest.fixture(scope="session")
def operator(
    dev_cluster: cluster.ClusterState, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator]:
    """The operator, running for the whole session (tests may restart it)."""
    workdir = tmp_path_factory.mktemp("operator")
    catalog = workdir / "catalog.yaml"
    catalog.write_text(TEST_CATALOG, encoding="utf-8")
    running = Operator(
        str(operator_kubeconfig(dev_cluster)), workdir / "log", dev_cluster.prometheus_url, catalog
    )
    running.start()
    cluster.scrape_operator(dev_cluster, [f"127.0.0.1:{running.metrics_port}"])
    try:
        yield running
    finally:
        cluster.scrape_operator(dev_cluster, [])
        running.kill()
        print("operator log (tail):\n" + processes.log_tail(running.log, 40))
