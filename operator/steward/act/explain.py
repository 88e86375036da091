"""``steward explain``: why the governor did what it did to one workload, from the cluster.

Everything shown is read back from where the operator recorded it: the directive annotation
(actions, reasons with their numbers, policy, time), the workload's status and conditions, the
Budgets whose scope selects it (their figures), and the Events about it.
"""

from __future__ import annotations

from typing import Any

from steward.act.kube import BUDGETS, EVENTS, INFERENCE_SERVICES, TRAINING_JOBS, Kube
from steward.api.directive import read_directive
from steward.api.schema import valid_objects
from steward.api.v1alpha1.budget import Budget
from steward.cost.usage import WorkloadRef
from steward.policy.scope import WorkloadFacts, selects

KINDS = {
    "trainingjob": ("TrainingJob", TRAINING_JOBS),
    "tj": ("TrainingJob", TRAINING_JOBS),
    "inferenceservice": ("InferenceService", INFERENCE_SERVICES),
    "isvc": ("InferenceService", INFERENCE_SERVICES),
}


def explain(kube: Kube, kind: str, namespace: str, name: str) -> list[str]:
    """Lines of the explanation; raises KeyError for an unknown kind, KubeError when missing."""
    kind_name, resource = KINDS[kind.lower()]
    obj = kube.request("GET", resource.path(namespace, name))
    meta, status = obj["metadata"], obj.get("status") or {}
    lines = [f"{kind_name} {namespace}/{name}: phase {status.get('phase', '-')}"]
    directive = read_directive(meta.get("annotations"))
    if directive is None:
        lines.append("governor: no directive in force (runs as its spec says)")
    else:
        actions = ", ".join(a.value for a in directive.actions)
        lines.append(f"governor: {actions} by policy {directive.policy} since "
                     f"{directive.since.isoformat()}")  # fmt: skip
        lines += [f"  why: {reason}" for reason in directive.reasons]
    if status.get("lastDecision"):
        lines.append(f"last decision: {status['lastDecision']}")
    for cond in status.get("conditions") or []:
        lines.append(f"condition {cond['type']}={cond['status']} ({cond.get('reason', '')}): "
                     f"{cond.get('message', '')}")  # fmt: skip
    ns = kube.request("GET", f"/api/v1/namespaces/{namespace}")
    facts = WorkloadFacts(
        ref=WorkloadRef(kind_name, namespace, name),
        labels=meta.get("labels") or {},
        cost_center=(obj.get("spec") or {}).get("costCenter"),
        namespace_labels=ns["metadata"].get("labels") or {},
    )
    lines += _budgets(kube, facts)
    lines += _events(kube, namespace, name)
    return lines


def _budgets(kube: Kube, facts: WorkloadFacts) -> list[str]:
    lines = []
    for budget in valid_objects(kube.list(BUDGETS), Budget):
        if budget.status is None or not selects(budget.spec.scope, facts):
            continue
        s = budget.status
        lines.append(
            f"budget {budget.metadata.name}: {s.state.value}, {s.utilization_percent:.1f}% spent "
            f"(forecast {s.forecast_utilization_percent:.1f}%), actions "
            f"{', '.join(a.value for a in s.active_actions) or 'none'}, spent {s.spent.usd} USD "
            f"of {budget.spec.limits.usd} until {s.accounted_until}"
        )
    return lines


def _events(kube: Kube, namespace: str, name: str) -> list[str]:
    listed: dict[str, Any] = kube.request("GET", EVENTS.path(namespace))
    events = [e for e in listed.get("items", []) if (e.get("regarding") or {}).get("name") == name]
    events.sort(key=_event_time)
    return [f"event {_event_time(e)} {e['reason']}: {e.get('note', '')}" for e in events[-10:]]


def _event_time(event: dict[str, Any]) -> str:
    """RFC 3339 time of an Event; core/v1 Events (kopf's) have only the deprecated timestamps."""
    return str(event.get("eventTime") or event.get("deprecatedFirstTimestamp") or "")
