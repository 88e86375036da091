"""The chart's RBAC, proven on the real apiserver: the whole integration suite runs the operator
(and the node-pool providers) as the chart's ServiceAccount (conftest), the apiserver's audit log
records each request it makes, and here, after every other test: no request was denied, and
every permission the chart grants was used by the suite (least privilege: nothing granted "just
in case"), but for the few listed in UNEXERCISED with the reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from steward.act.kube import DEPLOYMENTS, JOBS, SERVICES, Kube, Resource, load_client
from steward.devcluster import cluster
from tests.integration.conftest import (
    OPERATOR_NAMESPACE,
    OPERATOR_RELEASE,
    chart_rbac,
    operator_kubeconfig,
)

pytestmark = [pytest.mark.usefixtures("operator"), pytest.mark.after_suite]
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_RELEASE}"
#: The audit annotations the authorizer sets on every request.
DECISION = "authorization.k8s.io/decision"
REASON = "authorization.k8s.io/reason"
#: (API group, resource[/subresource], verb)
Permission = tuple[str, str, str]
#: Granted for code the suite does not reach, each with why it is still needed.
UNEXERCISED: dict[Permission, str] = {
    ("cluster.x-k8s.io", "machinepools/scale", "get"): "MachinePool pools: the suite drives a "
    "MachineDeployment through the same scale-subresource code",
    ("cluster.x-k8s.io", "machinepools/scale", "patch"): "as above",
}


def granted() -> set[Permission]:
    """Every permission the chart's ClusterRole and Role grant, as the suite installed them."""
    documents = [d for d in yaml.safe_load_all(chart_rbac()) if d]
    roles = [d for d in documents if d["kind"] in ("ClusterRole", "Role")]
    return {
        (group, resource, verb)
        for role in roles
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def requests(dev_cluster: cluster.ClusterState) -> list[dict[str, Any]]:
    """The operator's resource requests in the audit log."""
    events = cluster.audit_events(dev_cluster)
    return [e for e in events if e.get("user", {}).get("username") == OPERATOR_USER]


def _permission(event: dict[str, Any]) -> Permission | None:
    ref = event.get("objectRef")
    if not ref or "resource" not in ref:
        return None  # discovery (/api, /apis): every authenticated user may
    resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
    return ref.get("apiGroup", ""), resource, event["verb"]


POD = {"containers": [{"name": "c", "image": "example/c:1"}], "restartPolicy": "Never"}
LABELS = {"app": "again"}


@pytest.mark.parametrize(
    ("resource", "kind", "spec"),
    [
        (JOBS, "Job", {"suspend": True, "template": {"spec": POD}}),
        (DEPLOYMENTS, "Deployment", {"replicas": 0, "selector": {"matchLabels": LABELS},
                                     "template": {"metadata": {"labels": LABELS},
                                                  "spec": {**POD, "restartPolicy": "Always"}}}),
        (SERVICES, "Service", {"selector": LABELS, "ports": [{"port": 80}]}),
    ],
)  # fmt: skip
def test_a_repeated_create_returns_the_object_already_there(
    dev_cluster: cluster.ClusterState,
    namespace: str,
    resource: Resource,
    kind: str,
    spec: dict[str, Any],
) -> None:
    """After a restart the operator may create what it created before: it gets that object."""
    kube = Kube(load_client(str(operator_kubeconfig(dev_cluster))))
    group_version = resource.group_version
    manifest = {"apiVersion": group_version, "kind": kind,
                "metadata": {"name": "again", "namespace": namespace}, "spec": spec}  # fmt: skip
    first = kube.create(resource, manifest)
    again = kube.create(resource, manifest)
    assert again["metadata"]["uid"] == first["metadata"]["uid"]


def test_the_operator_made_requests_as_the_charts_service_account_and_none_was_denied(
    dev_cluster: cluster.ClusterState,
) -> None:
    made = requests(dev_cluster)
    assert len(made) > 20, "the operator's requests are missing from the audit log"
    assert all(DECISION in e.get("annotations", {}) for e in made if e.get("objectRef"))
    # RBAC's verdict, not the status code: a 403 also answers writes into a namespace that is
    # being deleted, which the tests do all the time.
    denied = sorted(
        {f"{e['verb']} {e.get('requestURI')}: {e['annotations'].get(REASON, '')}" for e in made
         if e.get("annotations", {}).get(DECISION) == "forbid"}
    )  # fmt: skip
    assert not denied, "denied to the chart's ServiceAccount:\n" + "\n".join(denied)
    outside = {_permission(e) for e in made} - {None} - granted()
    assert not outside, outside  # would have been denied: the audit log agrees with RBAC


def test_every_permission_the_chart_grants_was_used_by_the_suite(
    dev_cluster: cluster.ClusterState, request: pytest.FixtureRequest
) -> None:
    ran = {Path(str(item.path)).name for item in request.session.items}
    suite = {p.name for p in Path(__file__).parent.glob("test_*.py")}
    missing = sorted(suite - ran)
    used = {p for e in requests(dev_cluster) if (p := _permission(e)) is not None}
    unused = sorted(f"{verb} {resource} ({group or 'core'})"
                    for group, resource, verb in granted() - used - set(UNEXERCISED))  # fmt: skip
    print("granted and never used by the suite:", unused or "none")
    assert set(UNEXERCISED) <= granted(), "UNEXERCISED lists a permission the chart lacks"
    if missing:
        pytest.skip(f"judges the whole integration suite; this run left out {missing}")
    assert not unused, "granted but never used by the suite:\n" + "\n".join(unused)
