"""The chart's RBAC, proven on the real apiserver: the whole integration suite runs the operator
as the chart's ServiceAccount (conftest), the apiserver's audit log records each request it
makes, and here, after every other test: no request was denied, and every permission the chart
grants was used by the suite (least privilege: nothing granted "just in case")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from steward.devcluster import cluster
from tests.integration.conftest import OPERATOR_NAMESPACE, OPERATOR_RELEASE, chart_rbac

pytestmark = [pytest.mark.usefixtures("operator"), pytest.mark.after_suite]
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_RELEASE}"
#: (API group, resource[/subresource], verb)
Permission = tuple[str, str, str]


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


def test_the_operator_made_requests_as_the_charts_service_account_and_none_was_denied(
    dev_cluster: cluster.ClusterState,
) -> None:
    made = requests(dev_cluster)
    assert len(made) > 100, "the operator's requests are missing from the audit log"
    denied = sorted(
        {f"{e['verb']} {e.get('requestURI')}" for e in made
         if e.get("responseStatus", {}).get("code") == 403}
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
                    for group, resource, verb in granted() - used)  # fmt: skip
    print("granted and never used by the suite:", unused or "none")
    if missing:
        pytest.skip(f"judges the whole integration suite; this run left out {missing}")
    assert not unused, "granted but never used by the suite:\n" + "\n".join(unused)
