"""The Helm chart lints and renders, its values schema refuses bad values, `helm install`
creates every object on the real apiserver, its CRDs are crds/, and its alert rules pass
promtool with unit tests."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from steward.devcluster import build
from steward.devcluster.cluster import ClusterState, kubectl
from tests.conftest import REPO
from tests.integration.conftest import helm as _helm
from tests.integration.conftest import install_stub_crds, stub_crd

CHART = REPO / "charts" / "steward"
MONITORING_CRDS = (
    stub_crd("monitoring.coreos.com", "v1", "ServiceMonitor", "servicemonitors"),
    stub_crd("monitoring.coreos.com", "v1", "PrometheusRule", "prometheusrules"),
)
#: Every optional part switched on, and Steward objects from values.
EVERYTHING = (
    "--set", "metrics.serviceMonitor.enabled=true",
    "--set", "metrics.prometheusRule.enabled=true",
    "--set", "dashboard.enabled=true",
    "--set", "prometheus.existingSecret=prometheus-credentials",
    "--set", "prometheus.caSecret=prometheus-ca",
    "--set-string", "priceCatalog=instances: []",
    "--set-json", 'budgets=[{"metadata": {"name": "install-test"}, "spec": {"scope": '
    '{"namespaces": ["ml"]}, "period": {"type": "Monthly"}, "limits": {"usd": 1000}, '
    '"thresholds": [{"percent": 80, "actions": ["Notify"]}]}}]',
    "--set-json", 'costPolicies=[{"metadata": {"name": "install-test"}, "spec": '
    '{"mode": "DryRun"}}]',
)  # fmt: skip


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
        "ClusterRole", "ClusterRoleBinding", "Deployment", "NetworkPolicy", "PodDisruptionBudget",
        "Role", "RoleBinding", "Service", "ServiceAccount",
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
        "--lease-seconds=15",
        "--cycle-interval=30",
        "--accounting-step=15",
        "--accounting-lag=30",
        "--max-sample-age=60",
        "--attribution=Requested",
        "--preemptions-per-hour=0.1",
        "--prometheus-timeout=30",
        "--compression-image=ghcr.io/steward-ai/steward-compress:0.1.0",
    ]
    assert deployment["spec"]["replicas"] == 2
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
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


@pytest.mark.parametrize(
    ("setting", "field"),
    [
        ("replicaCount=0", "/replicaCount"),
        ("capacityLabels=azure", "/capacityLabels"),
        ("accounting.attribution=Usage", "/accounting/attribution"),
        ("metrics.port=70000", "/metrics/port"),
        ("prometheus.url=prometheus:9090", "/prometheus/url"),
        ("replicas=2", "replicas"),
    ],
)
def test_values_schema_refuses_bad_values_naming_the_field(
    dev_cluster: ClusterState, setting: str, field: str
) -> None:
    result = subprocess.run(
        [str(build.binaries()["helm"]), "template", "steward", str(CHART), "--set", setting],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert field in result.stderr, result.stderr


def test_prometheus_url_and_token_come_from_a_secret(dev_cluster: ClusterState) -> None:
    rendered = _helm("template", "steward", str(CHART), *EVERYTHING)
    documents = [d for d in yaml.safe_load_all(rendered) if d]
    pod = next(d for d in documents if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["STEWARD_PROMETHEUS_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "prometheus-credentials", "key": "url", "optional": True
    }  # fmt: skip
    assert "--prometheus-token-file=/etc/steward/prometheus/token" in container["args"]
    assert "--prometheus-ca-file=/etc/steward/prometheus-ca/ca.crt" in container["args"]
    assert "--price-catalog=/etc/steward/config/catalog.yaml" in container["args"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["prometheus"]["secret"]["secretName"] == "prometheus-credentials"
    config = next(d for d in documents if d["kind"] == "ConfigMap" and "catalog.yaml" in d["data"])
    assert config["data"]["catalog.yaml"].strip() == "instances: []"


def test_helm_install_creates_every_object(
    dev_cluster: ClusterState, core: client.CoreV1Api, namespace: str
) -> None:
    install_stub_crds(core, *MONITORING_CRDS)
    release = f"it-{uuid.uuid4().hex[:6]}"
    kubeconfig = f"--kubeconfig={dev_cluster.kubeconfig}"
    _helm("install", release, str(CHART), "--namespace", namespace, kubeconfig, *EVERYTHING)
    try:
        manifest = _helm("get", "manifest", release, "--namespace", namespace, kubeconfig)
        objects = [d for d in yaml.safe_load_all(manifest) if d]
        assert sorted(o["kind"] for o in objects) == [
            "Budget", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "ConfigMap", "CostPolicy",
            "Deployment", "NetworkPolicy", "PodDisruptionBudget", "PrometheusRule", "Role",
            "RoleBinding", "Service", "ServiceAccount", "ServiceMonitor",
        ]  # fmt: skip
        for obj in objects:
            meta = obj["metadata"]
            where = ["-n", meta["namespace"]] if meta.get("namespace") else []
            found = json.loads(kubectl(dev_cluster, "get", _resource(obj), meta["name"],
                                       *where, "-o", "json"))  # fmt: skip
            assert found["metadata"]["labels"]["app.kubernetes.io/instance"] == release
        budget = json.loads(kubectl(dev_cluster, "get", "budgets.steward.ai", "install-test",
                                    "-o", "json"))  # fmt: skip
        assert budget["spec"]["limits"] == {"usd": 1000}
    finally:
        _helm("uninstall", release, "--namespace", namespace, kubeconfig, "--wait")


def _resource(obj: dict[str, Any]) -> str:
    group = obj["apiVersion"].rpartition("/")[0]
    plural = {"NetworkPolicy": "networkpolicies", "PodDisruptionBudget": "poddisruptionbudgets",
              "CostPolicy": "costpolicies"}.get(obj["kind"], obj["kind"].lower() + "s")  # fmt: skip
    return f"{plural}.{group}" if group else plural


def test_rendered_crds_equal_the_crds_directory(dev_cluster: ClusterState) -> None:
    rendered = _helm("template", "steward", str(CHART), "--include-crds")
    crds = [
        d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "CustomResourceDefinition"
    ]
    expected = [yaml.safe_load(p.read_text()) for p in sorted((REPO / "crds").glob("*.yaml"))]
    assert sorted(crds, key=_name) == sorted(expected, key=_name)
    assert len(crds) == 6


def _name(obj: dict[str, Any]) -> str:
    return str(obj["metadata"]["name"])


ALERT_TESTS = """
rule_files: [rules.yaml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'steward_budget_utilization_percent{budget="team-a", instance="leader"}'
        values: '50+1x60'
      - series: 'steward_budget_utilization_percent{budget="team-b", instance="leader"}'
        values: '10x60'
      - series: 'steward_leader{instance="leader"}'
        values: '1x10 0x50'
      - series: 'steward_leader{instance="standby"}'
        values: '0x60'
    alert_rule_test:
      - eval_time: 40m
        alertname: StewardBudgetWarning
        exp_alerts: []
      - eval_time: 45m
        alertname: StewardBudgetWarning
        exp_alerts:
          - exp_labels: {severity: warning, budget: team-a}
            exp_annotations:
              summary: "Budget team-a has spent 95 % of its limit"
              description: >-
                Steward's ladder acts at the budget's thresholds; `steward explain` shows
                what it did.
      - eval_time: 52m
        alertname: StewardBudgetExceeded
        exp_alerts: []
      - eval_time: 56m
        alertname: StewardBudgetExceeded
        exp_alerts:
          - exp_labels: {severity: critical, budget: team-a}
            exp_annotations:
              summary: "Budget team-a is over its limit (106 %)"
      - eval_time: 56m
        alertname: StewardBudgetWarning
        exp_alerts: []
      - eval_time: 13m
        alertname: StewardNoLeader
        exp_alerts: []
      - eval_time: 17m
        alertname: StewardNoLeader
        exp_alerts:
          - exp_labels: {severity: critical}
            exp_annotations:
              summary: >-
                No Steward replica holds the lease: budgets are neither accounted nor
                enforced
"""


def test_alert_rules_pass_promtool_and_fire_when_they_should(
    dev_cluster: ClusterState, tmp_path: Path
) -> None:
    rendered = _helm("template", "steward", str(CHART),
                     "--set", "metrics.prometheusRule.enabled=true")  # fmt: skip
    rule = next(d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "PrometheusRule")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule["spec"]))
    (tmp_path / "tests.yaml").write_text(ALERT_TESTS)
    promtool = build.prometheus_binary().with_name("promtool")
    for args in (["check", "rules", "rules.yaml"], ["test", "rules", "tests.yaml"]):
        result = subprocess.run([str(promtool), *args], cwd=tmp_path, capture_output=True,
                                text=True, check=False)  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr


def test_chart_ships_the_generated_crds() -> None:
    shipped = {p.name: p.read_text() for p in (CHART / "crds").glob("*.yaml")}
    assert shipped == {p.name: p.read_text() for p in (REPO / "crds").glob("*.yaml")}
