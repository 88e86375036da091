"""The Helm chart lints, renders, and its objects pass the real apiserver's validation."""

from __future__ import annotations

import subprocess

import yaml

from steward.devcluster import build
from steward.devcluster.cluster import ClusterState, kubectl
from tests.conftest import REPO

CHART = REPO / "charts" / "steward"


def _helm(*args: str) -> str:
    result = subprocess.run(
        [str(build.binaries()["helm"]), *args], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_chart_lints_clean(dev_cluster: ClusterState) -> None:
    output = _helm("lint", "--strict", str(CHART))
    assert "0 chart(s) failed" in output


def test_rendered_chart_is_valid_on_the_apiserver(
    dev_cluster: ClusterState, namespace: str
) -> None:
    rendered = _helm(
        "template",
        "steward",
        str(CHART),
        "--namespace",
        namespace,
        "--set",
        "watchNamespaces={team-a,team-b}",
        "--set",
        "jsonLogs=true",
        "--set",
        "capacityLabels=gke",
    )
    documents = [d for d in yaml.safe_load_all(rendered) if d]
    kinds = sorted(d["kind"] for d in documents)
    assert kinds == [
        "ClusterRole", "ClusterRoleBinding", "Deployment", "Role", "RoleBinding", "ServiceAccount"
    ]  # fmt: skip
    role = next(d for d in documents if d["kind"] == "Role")
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
         "verbs": ["get", "create", "update"]}
    ]  # fmt: skip
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["args"] == [
        "run",
        "--liveness=http://0.0.0.0:8080/healthz",
        "--capacity-labels=gke",
        "--resync-seconds=30",
        "--namespace=team-a",
        "--namespace=team-b",
        "--json-logs",
        "--metrics-port=9108",
    ]
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in container["env"]}
    assert env == {"POD_NAMESPACE": "metadata.namespace", "POD_NAME": "metadata.name"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    kubectl(dev_cluster, "apply", "--dry-run=server", "-f", "-", stdin=rendered)


def test_node_pool_providers_add_only_their_permissions(dev_cluster: ClusterState) -> None:
    def rules(*sets: str) -> list[dict[str, object]]:
        args = [a for s in sets for a in ("--set", s)]
        rendered = _helm("template", "steward", str(CHART), *args)
        role = next(d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "ClusterRole")
        return list(role["rules"])

    base = rules()
    assert not any("nodepools" in r["resources"] or "machines" in r["resources"] for r in base)
    assert not any("delete" in r["verbs"] for r in base)
    karpenter = rules("nodePoolProviders.karpenter=true")
    added = [r for r in karpenter if r not in base]
    assert added == [
        {"apiGroups": ["karpenter.sh"], "resources": ["nodepools"], "verbs": ["get", "patch"]},
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["delete"]},
    ]
    capi = [r for r in rules("nodePoolProviders.clusterAPI=true") if r not in base]
    assert {"apiGroups": ["cluster.x-k8s.io"], "resources": ["machines"],
            "verbs": ["patch"]} in capi  # fmt: skip
    kwok = [r for r in rules("nodePoolProviders.kwok=true") if r not in base]
    assert kwok == [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["delete", "create"]}]


def test_chart_ships_the_generated_crds() -> None:
    shipped = {p.name: p.read_text() for p in (CHART / "crds").glob("*.yaml")}
    assert shipped == {p.name: p.read_text() for p in (REPO / "crds").glob("*.yaml")}
