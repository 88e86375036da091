"""Bring the local cluster up and down.

Every process listens on 127.0.0.1 only, on ports free at start-up, so several clusters (a
person's and a test run's) coexist. A cluster lives in one work directory: data, certificates,
logs, the kubeconfig and ``state.json``, which records pids and URLs so that ``status`` and
``down`` work from another process.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from steward.act.kwoknodes import KWOK_NODE_ANNOTATION
from steward.devcluster import build
from steward.devcluster.processes import (
    ClusterError,
    alive,
    free_port,
    http_ok,
    start,
    stop,
    wait_until,
)

#: Start order; ``down`` stops in reverse.
COMPONENTS: Final = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "kube-state-metrics",
    "gpu-metrics",
    "prometheus",
)
SCRAPE_INTERVAL_SECONDS: Final = 5
#: The apiserver's audit log (JSON lines, under the workdir): every request a service account
#: outside kube-system makes, at Metadata level. Tests prove the chart's RBAC with it.
AUDIT_LOG: Final = "audit.log"
#: Prometheus' file-based discovery of the operator's /metrics endpoints (JSON, under the
#: workdir); :func:`scrape_operator` writes it.
OPERATOR_TARGETS: Final = "operator-targets.json"
#: Requests by the cluster's own controllers are not recorded; every other service account's are.
_AUDIT_POLICY: Final = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        {"level": "None", "userGroups": ["system:serviceaccounts:kube-system"]},
        {"level": "Metadata", "userGroups": ["system:serviceaccounts"]},
        {"level": "None"},
    ],
}


def default_workdir() -> Path:
    """``$STEWARD_DEVCLUSTER_DIR``, or ``<cache>/clusters/default``."""
    configured = os.environ.get("STEWARD_DEVCLUSTER_DIR")
    return Path(configured) if configured else build.cache_root() / "clusters" / "default"


@dataclass
class ClusterState:
    """What a running cluster is and where to reach it; persisted as ``state.json``."""

    workdir: str
    kubeconfig: str
    apiserver_url: str
    prometheus_url: str
    gpu_metrics_url: str
    kube_state_metrics_url: str
    ca_file: str
    token: str
    pids: dict[str, int] = field(default_factory=dict)
    started_at: float = 0.0

    def save(self) -> None:
        path = Path(self.workdir) / "state.json"
        path.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        path.chmod(0o600)

    def env(self) -> dict[str, str]:
        """Environment variables that point tools at this cluster."""
        return {"KUBECONFIG": self.kubeconfig, "PROMETHEUS_URL": self.prometheus_url}


def load(workdir: Path) -> ClusterState | None:
    """The state of the cluster in ``workdir``, or ``None`` when there is none."""
    path = workdir / "state.json"
    if not path.is_file():
        return None
    return ClusterState(**json.loads(path.read_text(encoding="utf-8")))


def status(workdir: Path) -> dict[str, bool]:
    """Whether each component's process is alive (empty when no cluster is there)."""
    state = load(workdir)
    return {} if state is None else {name: alive(pid) for name, pid in state.pids.items()}


def down(workdir: Path) -> bool:
    """Stop every process of the cluster in ``workdir`` and delete the directory.

    Returns whether there was a cluster. Safe to call twice, and on a half-started cluster.
    """
    state = load(workdir)
    if state is not None:
        for name in reversed(COMPONENTS):
            if name in state.pids:
                stop(state.pids[name])
    existed = workdir.exists()
    shutil.rmtree(workdir, ignore_errors=True)
    return existed


def up(
    workdir: Path, *, tie_to_parent: bool = False, report: Callable[[str], None] = print
) -> ClusterState:
    """Start a cluster in ``workdir`` (or return the one running there) and wait until every
    component is ready. On any failure, whatever started is stopped again before raising."""
    existing = load(workdir)
    if existing is not None and all(alive(pid) for pid in existing.pids.values()):
        return existing
    if existing is not None:
        down(workdir)
    absent = build.missing()
    if absent:
        names = ", ".join(c.name for c in absent)
        raise ClusterError(f"not built yet: {names}; run `steward dev-cluster build` first")
    prometheus = build.prometheus_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    launcher = _Launcher(workdir, tie_to_parent, report)
    try:
        return launcher.launch(prometheus)
    except BaseException:
        launcher.state.save()
        down(workdir)
        raise


class _Launcher:
    """Starts the components in order, recording each pid as soon as it exists."""

    def __init__(self, workdir: Path, tie_to_parent: bool, report: Callable[[str], None]):
        self.workdir = workdir
        self.tie = tie_to_parent
        self.report = report
        self.bin = build.binaries()
        self.ports = {
            name: free_port()
            for name in (
                "etcd",
                "etcd-peer",
                "apiserver",
                "controller-manager",
                "scheduler",
                "kwok",
                "ksm",
                "ksm-telemetry",
                "gpu-metrics",
                "prometheus",
            )
        }
        certs = workdir / "certs"
        self.state = ClusterState(
            workdir=str(workdir),
            kubeconfig=str(workdir / "kubeconfig"),
            apiserver_url=f"https://127.0.0.1:{self.ports['apiserver']}",
            prometheus_url=f"http://127.0.0.1:{self.ports['prometheus']}",
            gpu_metrics_url=f"http://127.0.0.1:{self.ports['gpu-metrics']}/metrics",
            kube_state_metrics_url=f"http://127.0.0.1:{self.ports['ksm']}/metrics",
            ca_file=str(certs / "apiserver.crt"),
            token=secrets.token_hex(24),
            started_at=time.time(),
        )

    def _start(
        self, name: str, argv: list[str], ready: Callable[[], bool], timeout: float = 90
    ) -> None:
        self.report(f"starting {name}")
        log = self.workdir / "logs" / f"{name}.log"
        pid = start(argv, log, tie_to_parent=self.tie)
        self.state.pids[name] = pid
        self.state.save()
        wait_until(ready, what=name, pid=pid, log=log, timeout=timeout)

    def launch(self, prometheus: Path) -> ClusterState:
        self._prepare_files()
        self._start_etcd()
        self._start_apiserver()
        self._start_kube_components()
        self._start_observability(prometheus)
        self.state.save()
        return self.state

    def _prepare_files(self) -> None:
        certs = self.workdir / "certs"
        certs.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        (certs / "sa.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        (certs / "sa.pub").write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        (self.workdir / "audit-policy.yaml").write_text(json.dumps(_AUDIT_POLICY) + "\n")
        (self.workdir / OPERATOR_TARGETS).write_text("[]\n")
        tokens = self.workdir / "tokens.csv"
        tokens.write_text(f"{self.state.token},steward-admin,steward-admin,system:masters\n")
        tokens.chmod(0o600)
        kubeconfig = Path(self.state.kubeconfig)
        kubeconfig.write_text(_kubeconfig(self.state), encoding="utf-8")
        kubeconfig.chmod(0o600)

    def _start_etcd(self) -> None:
        client = f"http://127.0.0.1:{self.ports['etcd']}"
        peer = f"http://127.0.0.1:{self.ports['etcd-peer']}"
        self._start(
            "etcd",
            [
                str(self.bin["etcd"]),
                "--name=steward",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=steward={peer}",
                # A throw-away test cluster: durability buys nothing, fsync costs seconds.
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
            lambda: http_ok(f"{client}/health"),
        )

    def _start_apiserver(self) -> None:
        certs = self.workdir / "certs"
        self._start(
            "kube-apiserver",
            [
                str(self.bin["kube-apiserver"]),
                f"--etcd-servers=http://127.0.0.1:{self.ports['etcd']}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.ports['apiserver']}",
                f"--cert-dir={certs}",
                f"--token-auth-file={self.workdir / 'tokens.csv'}",
                "--authorization-mode=RBAC",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-account-key-file={certs / 'sa.pub'}",
                f"--service-account-signing-key-file={certs / 'sa.key'}",
                "--service-cluster-ip-range=10.96.0.0/16",
                "--allow-privileged=true",
                f"--audit-policy-file={self.workdir / 'audit-policy.yaml'}",
                f"--audit-log-path={self.workdir / AUDIT_LOG}",
                "--audit-log-format=json",
                "--audit-log-maxsize=0",
            ],
            lambda: http_ok(
                f"{self.state.apiserver_url}/readyz",
                token=self.state.token,
                ca_file=Path(self.state.ca_file),
            ),
            timeout=120,
        )

    def _start_kube_components(self) -> None:
        kubeconfig = self.state.kubeconfig
        auth = [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            "--leader-elect=false",
        ]
        cm_port, sched_port = self.ports["controller-manager"], self.ports["scheduler"]
        self._start(
            "kube-controller-manager",
            [
                str(self.bin["kube-controller-manager"]),
                *auth,
                f"--secure-port={cm_port}",
                "--use-service-account-credentials=false",
                f"--service-account-private-key-file={self.workdir / 'certs' / 'sa.key'}",
                f"--root-ca-file={self.state.ca_file}",
            ],
            lambda: http_ok(f"https://127.0.0.1:{cm_port}/healthz"),
        )
        self._start(
            "kube-scheduler",
            [
                str(self.bin["kube-scheduler"]),
                *auth,
                f"--secure-port={sched_port}",
            ],
            lambda: http_ok(f"https://127.0.0.1:{sched_port}/healthz"),
        )
        stages = files("steward.devcluster").joinpath("stages.yaml")
        kwok_port = self.ports["kwok"]
        self._start(
            "kwok",
            [
                str(self.bin["kwok"]),
                f"--kubeconfig={kubeconfig}",
                f"--config={stages}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
                f"--server-address=127.0.0.1:{kwok_port}",
                "--node-ip=10.0.0.1",
            ],
            lambda: http_ok(f"http://127.0.0.1:{kwok_port}/healthz"),
        )

    def _start_observability(self, prometheus: Path) -> None:
        kubeconfig = self.state.kubeconfig
        self._start(
            "kube-state-metrics",
            [
                str(self.bin["kube-state-metrics"]),
                f"--kubeconfig={kubeconfig}",
                "--host=127.0.0.1",
                f"--port={self.ports['ksm']}",
                "--telemetry-host=127.0.0.1",
                f"--telemetry-port={self.ports['ksm-telemetry']}",
                "--resources=pods,nodes,jobs,deployments,replicasets,namespaces",
                "--metric-labels-allowlist=nodes=[*],pods=[*]",
            ],
            lambda: http_ok(self.state.kube_state_metrics_url),
        )
        self._start(
            "gpu-metrics",
            [
                sys.executable,
                "-m",
                "steward.devcluster.gpumetrics",
                f"--kubeconfig={kubeconfig}",
                f"--port={self.ports['gpu-metrics']}",
            ],
            lambda: http_ok(self.state.gpu_metrics_url),
        )
        config = self.workdir / "prometheus.yml"
        config.write_text(_prometheus_config(self.ports, self.workdir), encoding="utf-8")
        self._start(
            "prometheus",
            [
                str(prometheus),
                f"--config.file={config}",
                f"--storage.tsdb.path={self.workdir / 'prometheus'}",
                f"--web.listen-address=127.0.0.1:{self.ports['prometheus']}",
                "--storage.tsdb.retention.time=1d",
                "--web.enable-lifecycle",
            ],
            lambda: http_ok(f"{self.state.prometheus_url}/-/ready"),
        )


def _kubeconfig(state: ClusterState) -> str:
    return (
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "steward-dev",
                        "cluster": {
                            "server": state.apiserver_url,
                            "certificate-authority": state.ca_file,
                        },
                    }
                ],
                "users": [{"name": "steward-admin", "user": {"token": state.token}}],
                "contexts": [
                    {
                        "name": "steward-dev",
                        "context": {"cluster": "steward-dev", "user": "steward-admin"},
                    }
                ],
                "current-context": "steward-dev",
            },
            indent=2,
        )
        + "\n"
    )


def _prometheus_config(ports: dict[str, int], workdir: Path) -> str:
    # JSON is YAML: no templating library needed for three jobs.
    jobs = {"kube-state-metrics": ports["ksm"], "dcgm-exporter": ports["gpu-metrics"]}
    operator = {
        "job_name": "steward-operator",
        "file_sd_configs": [{"files": [str(workdir / OPERATOR_TARGETS)], "refresh_interval": "5s"}],
    }
    return (
        json.dumps(
            {
                "global": {
                    "scrape_interval": f"{SCRAPE_INTERVAL_SECONDS}s",
                    "evaluation_interval": f"{SCRAPE_INTERVAL_SECONDS}s",
                },
                "scrape_configs": [
                    *(
                        {
                            "job_name": job,
                            "honor_labels": True,
                            "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
                        }
                        for job, port in jobs.items()
                    ),
                    operator,
                ],
            },
            indent=2,
        )
        + "\n"
    )


def scrape_operator(state: ClusterState, targets: list[str]) -> None:
    """Have Prometheus scrape the operator's /metrics at ``targets`` (``host:port``), as a
    ServiceMonitor would in a real cluster; an empty list stops it."""
    path = Path(state.workdir) / OPERATOR_TARGETS
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps([{"targets": targets}] if targets else []) + "\n")
    temporary.replace(path)  # Prometheus never reads half a file


def audit_events(state: ClusterState) -> list[dict[str, object]]:
    """The audit log's events so far (see :data:`AUDIT_LOG`), oldest first."""
    path = Path(state.workdir) / AUDIT_LOG
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8", errors="replace")
    complete = text[: text.rfind("\n") + 1]  # the apiserver may be writing the last line
    return [json.loads(line) for line in complete.splitlines() if line.startswith("{")]


def kubectl(state: ClusterState, *args: str, stdin: str | None = None) -> str:
    """Run the cluster's own kubectl against it; raise :class:`ClusterError` on failure."""
    result = subprocess.run(
        [str(build.binaries()["kubectl"]), f"--kubeconfig={state.kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise ClusterError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def install_crds(state: ClusterState, directory: Path) -> None:
    """Apply every CRD in ``directory`` and wait until the apiserver serves them."""
    kubectl(state, "apply", "--server-side", "-f", str(directory))
    kubectl(state, "wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
