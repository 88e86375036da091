"""The governor on the real cluster, driven by real metrics: a team's Budget climbs its ladder and
the actions happen in order (spot shift, inference to its minimum, low-priority training
suspended at a checkpoint, new work blocked), all reversed when the period resets; DryRun
records the same decisions and changes nothing; a killed leader's standby takes over without
applying anything twice."""

from __future__ import annotations

import json
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from steward.api.constants import ANNOTATION_GOVERNOR, GROUP, LEASE_NAME, VERSION
from steward.cli import main
from steward.devcluster import cluster, processes
from steward.devcluster.kube import list_items
from steward.devcluster.nodes import GPUNode, add_node
from steward.observe.prometheus import aligned_end
from steward.observe.queries import DEFAULT_QUERIES
from tests.integration.conftest import (
    ACCOUNTING_STEP,
    LEASE_SECONDS,
    METRICS_PORT,
    ON_DEMAND_USD_PER_HOUR,
    OPERATOR_NAMESPACE,
    Operator,
    eventually,
)
from tests.integration.test_accounting import (
    GROUP_LABEL,
    _events,
    _job,
    _namespace,
    _object,
    _rfc3339,
    custom,
    tag,
)

__all__ = ["custom", "tag"]  # fixtures
pytestmark = pytest.mark.usefixtures("operator")

CHECKPOINT_SECONDS = 20
#: The service's GPUs are 20 % busy (the simulated DCGM metrics): below the policy's 50 %
#: compression trigger.
SERVICE_UTILIZATION = 20
SLOT = "steward.ai/test-slot"
LADDER = [
    {"percent": 20, "actions": ["Notify", "ShiftToSpot"]},
    {"percent": 40, "actions": ["ScaleInferenceToMin"]},
    {"percent": 60, "actions": ["SuspendLowPriority"]},
    {"percent": 80, "actions": ["BlockNewWork"]},
]


def _training(name: str, tag: str, gpus: int, priority: str) -> dict[str, Any]:
    job = _job(name, tag, gpus, "OnDemand")
    job["spec"]["priority"] = priority
    job["spec"]["template"]["spec"]["nodeSelector"][SLOT] = "driver" if gpus == 8 else "rest"
    job["spec"]["checkpoint"]["interval"] = f"{CHECKPOINT_SECONDS}s"
    return job


def _service(tag: str, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferenceService",
        "metadata": {"name": "svc"},
        "spec": {
            "predictor": {
                "model": {"modelFormat": {"name": "pytorch"}, "storageUri": "pvc://models/m"},
                "container": {"image": "example/server:1"},
                "minReplicas": 1, "maxReplicas": replicas, "replicas": replicas,
                "gpusPerReplica": 1, "nodeSelector": {GROUP_LABEL: tag, SLOT: "rest"},
                "podAnnotations": {"steward.ai/gpu-profile": f"{SERVICE_UTILIZATION:g}"},
            },
            "capacity": {"onDemandBase": 1},
            "compression": {
                "allowedMethods": ["DynamicInt8", "BF16"], "sourceFormat": "TorchScript",
                "evaluation": {"datasetUri": "pvc://models/eval.pt"},
            },
        },
    }  # fmt: skip


def _setup(
    core: client.CoreV1Api, custom: client.CustomObjectsApi, tag: str, *, mode: str, usd: float,
    length: str = "150s",
) -> tuple[str, datetime]:  # fmt: skip
    """Nodes, a team with a high-priority driver, a low-priority job and a service, an
    Enforce/DryRun policy and a Budget with the ladder; the namespace and the period's start."""
    team = _namespace(core, f"team-g-{tag}", tag)
    # The driver alone on od1 (so 8 GPUs fit), the rest on od2 or, once shifted, spot1.
    for name, spot, slot in (("od1", False, "driver"), ("od2", False, "rest"),
                             ("spot1", True, "rest")):  # fmt: skip
        add_node(core, GPUNode(f"{name}-{tag}", spot=spot, labels={GROUP_LABEL: tag, SLOT: slot}))
    create = custom.create_namespaced_custom_object
    create(GROUP, VERSION, team, "trainingjobs", _training("driver", tag, 8, "High"))
    create(GROUP, VERSION, team, "trainingjobs", _training("low", tag, 1, "Low"))
    create(GROUP, VERSION, team, "inferenceservices", _service(tag, 3))
    eventually(
        lambda: len(_running_pods(core, team)) == 5, timeout=60, what="the team's 5 pods running"
    )
    custom.create_cluster_custom_object(GROUP, VERSION, "costpolicies", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "CostPolicy",
        "metadata": {"name": f"gov-{tag}"},
        "spec": {"mode": mode, "selector": {"namespaces": [team]},
                 "budgetActions": {"cooldown": "0s"},
                 "compression": {"gpuUtilizationBelowPercent": 50,
                                 "methods": ["DynamicInt8", "LowRank"]}},
    })  # fmt: skip
    anchor = aligned_end(datetime.now(UTC), ACCOUNTING_STEP, 0)
    custom.create_cluster_custom_object(GROUP, VERSION, "budgets", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "Budget",
        "metadata": {"name": f"bud-{tag}"},
        "spec": {"scope": {"namespaces": [team]},
                 "period": {"type": "Custom", "length": length, "anchor": _rfc3339(anchor)},
                 "limits": {"usd": usd}, "thresholds": LADDER},
    })  # fmt: skip
    return team, anchor


def _running_pods(core: client.CoreV1Api, namespace: str) -> list[Any]:
    return [p for p in core.list_namespaced_pod(namespace).items if p.status.phase == "Running"]


def _directive(custom: client.CustomObjectsApi, plural: str, name: str, team: str) -> Any:
    annotations = _object(custom, plural, name, team)["metadata"].get("annotations") or {}
    text = annotations.get(ANNOTATION_GOVERNOR)
    return json.loads(text) if text else None


def _reasons(core: client.CoreV1Api, team: str, name: str) -> list[tuple[str, datetime]]:
    """(reason, time) of the Events on ``team/name``."""
    events = list_items(client.EventsV1Api(core.api_client).list_namespaced_event, namespace=team)
    return [(e["reason"], _event_time(e)) for e in events if e["regarding"]["name"] == name]


def _event_time(event: dict[str, Any]) -> datetime:
    """When an Event was first recorded (``eventTime``, or the deprecated first timestamp)."""
    text = event.get("eventTime") or event.get("deprecatedFirstTimestamp") or ""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _first_event_time(core: client.CoreV1Api, team: str, name: str, reason: str) -> datetime | None:
    times = [t for r, t in _reasons(core, team, name) if r == reason]
    return min(times) if times else None


def _compression_jobs(custom: client.CustomObjectsApi, team: str) -> list[Any]:
    listed = custom.list_namespaced_custom_object(GROUP, VERSION, team, "compressionjobs")
    return list(listed["items"])


def _budget_actions(custom: client.CustomObjectsApi, tag: str) -> list[str]:
    return (_object(custom, "budgets", f"bud-{tag}").get("status") or {}).get("activeActions", [])


def test_the_ladder_acts_in_order_and_reverses_at_the_period_reset(
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    tag: str,
    operator: Operator,
    dev_cluster: cluster.ClusterState,
) -> None:
    # 120 USD/h in scope (8 + 1 + 3 on-demand GPUs at 10 USD/GPU-hour): 80 % in about a minute.
    rate = 12 * ON_DEMAND_USD_PER_HOUR / 8
    team, anchor = _setup(core, custom, tag, mode="Enforce", usd=rate * 60 / 0.8 / 3600)
    batch = client.BatchV1Api(core.api_client)

    # Rung 1: the low-priority job moves to spot at a checkpoint (the High driver stays).
    eventually(
        lambda: (_object(custom, "trainingjobs", "low", team).get("status") or {}).get(
            "capacityType") == "Spot", timeout=90, what="low moved to spot",
    )  # fmt: skip
    assert _directive(custom, "trainingjobs", "driver", team) is None
    # The idle service (20 % busy, from the metrics) gets a CompressionJob, owned by it.
    compression = eventually(lambda: _compression_jobs(custom, team), timeout=60,
                             what="a CompressionJob for svc")  # fmt: skip
    [job] = compression
    assert job["metadata"]["name"] == "svc-cmp-1"
    assert job["metadata"]["ownerReferences"][0]["name"] == "svc"
    assert job["spec"]["methods"] == ["DynamicInt8"]  # the ones both policy and service allow
    assert job["spec"]["target"] == "svc"
    utilization = _object(custom, "inferenceservices", "svc", team)["status"]
    assert abs(utilization["gpuUtilizationPercent"] - SERVICE_UTILIZATION) < 1
    # Rung 2: the service goes to its minimum (its spot replica with it).
    eventually(
        lambda: (_object(custom, "inferenceservices", "svc", team).get("status") or {}).get(
            "replicas") == 1, timeout=60, what="svc scaled to its minimum",
    )  # fmt: skip
    # Rung 3: the low-priority job is suspended, at a checkpoint.
    eventually(
        lambda: _object(custom, "trainingjobs", "low", team)["status"]["phase"] == "Suspended",
        timeout=90, what="low suspended",
    )  # fmt: skip
    jobs = batch.list_namespaced_job(team, label_selector="steward.ai/workload=low").items
    suspended = next(
        j for j in jobs if j.metadata.annotations.get("steward.ai/ended") == "Suspended"
    )
    assert suspended.spec.suspend  # kept as the record; the job resumes from its checkpoint
    # Rung 4: new work waits, with a condition saying why.
    eventually(lambda: "BlockNewWork" in _budget_actions(custom, tag), timeout=60,
               what="BlockNewWork in force")  # fmt: skip
    custom.create_namespaced_custom_object(
        GROUP, VERSION, team, "trainingjobs", _training("late", tag, 1, "Normal")
    )
    blocked = eventually(
        lambda: (s := _object(custom, "trainingjobs", "late", team).get("status") or {}).get(
            "phase") == "Blocked" and s, timeout=30, what="late blocked",
    )  # fmt: skip
    admitted = next(c for c in blocked["conditions"] if c["type"] == "Admitted")
    assert admitted["status"] == "False"
    assert f"bud-{tag}" in admitted["message"]
    assert not batch.list_namespaced_job(team, label_selector="steward.ai/workload=late").items

    # `steward explain` (a person's credentials) says what is in force on low and why.
    explained = CliRunner().invoke(
        main, ["explain", "trainingjob/low", "-n", team, "--kubeconfig", dev_cluster.kubeconfig]
    )
    assert explained.exit_code == 0, explained.output
    assert f"SuspendLowPriority by policy gov-{tag}" in explained.output
    assert f"why: SuspendLowPriority: priority Low, Budget bud-{tag}" in explained.output
    assert f"budget bud-{tag}" in explained.output.lower()
    # The operator's metrics count what it did.
    scraped = urllib.request.urlopen(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=5)
    families = {f.name: f for f in text_string_to_metric_families(scraped.read().decode())}
    applied = {
        s.labels["action"]: s.value for s in families["steward_governor_actions"].samples
        if s.name.endswith("_total") and s.labels["mode"] == "Enforce"
        and s.labels["change"] == "apply"
    }  # fmt: skip
    for action in ("ShiftToSpot", "ScaleInferenceToMin", "SuspendLowPriority", "Compress"):
        assert applied.get(action, 0) >= 1, applied
    # One range query per configured query, whatever the number of workloads.
    queries = families["steward_prometheus_queries_per_cycle"].samples[0].value
    assert queries == len(DEFAULT_QUERIES)
    assert families["steward_leader"].samples[0].value == 1

    # In ladder order, each announced by an Event on its workload.
    order = [
        _first_event_time(core, team, "low", "ShiftToSpot"),
        _first_event_time(core, team, "svc", "ScaleInferenceToMin"),
        _first_event_time(core, team, "low", "SuspendLowPriority"),
        _first_event_time(core, team, "late", "Blocked"),
    ]
    assert None not in order, order
    assert order == sorted(order), order  # type: ignore[type-var]

    # The driver ends; at the period reset every action is reversed.
    custom.delete_namespaced_custom_object(GROUP, VERSION, team, "trainingjobs", "driver")
    reset = anchor + timedelta(seconds=150)
    time.sleep(max((reset - datetime.now(UTC)).total_seconds(), 0))
    eventually(
        lambda: _directive(custom, "trainingjobs", "low", team) is None
        and _directive(custom, "inferenceservices", "svc", team) is None,
        timeout=40, what="directives removed after the reset",
    )  # fmt: skip
    eventually(
        lambda: _object(custom, "trainingjobs", "low", team)["status"]["phase"] == "Running"
        and _object(custom, "inferenceservices", "svc", team)["status"]["replicas"] == 3
        and _object(custom, "trainingjobs", "late", team)["status"]["phase"] != "Blocked",
        timeout=40, what="low resumed, svc back to 3 replicas, late admitted",
    )  # fmt: skip
    low = _object(custom, "trainingjobs", "low", team)["status"]
    assert low["capacityType"] == "OnDemand"  # its spec's own capacity again
    assert _first_event_time(core, team, "low", "ReversedSuspendLowPriority") is not None
    # One CompressionJob all along: the policy's cooldown (24 h) holds the next.
    assert len(_compression_jobs(custom, team)) == 1
    assert [r for r, _ in _reasons(core, team, "svc")].count("Compress") == 1


def test_dry_run_records_every_decision_and_changes_nothing(
    core: client.CoreV1Api, custom: client.CustomObjectsApi, tag: str
) -> None:
    rate = 12 * ON_DEMAND_USD_PER_HOUR / 8
    team, _ = _setup(core, custom, tag, mode="DryRun", usd=rate * 15 / 3600, length="1h")
    eventually(lambda: "BlockNewWork" in _budget_actions(custom, tag), timeout=90,
               what="the whole ladder in force")  # fmt: skip
    custom.create_namespaced_custom_object(
        GROUP, VERSION, team, "trainingjobs", _training("late", tag, 1, "Normal")
    )
    notes = eventually(
        lambda: (n := [note for reason, note in _events(core, f"gov-{tag}")
                       if reason == "BudgetActionDryRun"])
        and all(any(f"would apply {a} to {k}/{team}/{w}" in x for x in n) for a, k, w in (
            ("ShiftToSpot", "TrainingJob", "low"), ("SuspendLowPriority", "TrainingJob", "low"),
            ("ScaleInferenceToMin", "InferenceService", "svc"),
            ("BlockNewWork", "TrainingJob", "late"), ("Compress", "InferenceService", "svc"),
        )) and n,
        timeout=60, what="every decision recorded on the policy",
    )  # fmt: skip
    assert notes
    assert _first_event_time(core, team, "low", "WouldApplySuspendLowPriority") is not None
    # Nothing changed: no directive, the job on its first on-demand attempt, 3 replicas, and the
    # new job started.
    time.sleep(2 * ACCOUNTING_STEP)
    for plural, name in (("trainingjobs", "low"), ("inferenceservices", "svc")):
        assert _directive(custom, plural, name, team) is None
    low = _object(custom, "trainingjobs", "low", team)["status"]
    assert (low["attempt"], low["capacityType"], low["phase"]) == (1, "OnDemand", "Running")
    assert _object(custom, "inferenceservices", "svc", team)["status"]["replicas"] == 3
    assert _object(custom, "trainingjobs", "late", team)["status"]["phase"] != "Blocked"
    assert _first_event_time(core, team, "late", "WouldApplyBlockNewWork") is not None
    assert _compression_jobs(custom, team) == []
    assert _first_event_time(core, team, "svc", "WouldApplyCompress") is not None


def test_a_killed_leaders_standby_takes_over_and_applies_nothing_twice(
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    tag: str,
    operator: Operator,
    tmp_path: Path,
) -> None:
    identity = f"standby-{tag}"
    standby = Operator(operator.kubeconfig, tmp_path / "standby.log", operator.prometheus_url,
                       operator.catalog, metrics_port=0, identity=identity)  # fmt: skip
    standby.start()
    try:
        rate = 12 * ON_DEMAND_USD_PER_HOUR / 8
        team, _ = _setup(core, custom, tag, mode="Enforce", usd=rate * 20 / 3600, length="1h")
        # The leader applies its first directive; it is killed right after, mid-cycle.
        eventually(lambda: _directive(custom, "trainingjobs", "low", team), timeout=90,
                   what="the leader's first directive")  # fmt: skip
        operator.kill()
        killed = time.monotonic()
        leases = client.CoordinationV1Api(core.api_client)
        eventually(
            lambda: leases.read_namespaced_lease(LEASE_NAME, OPERATOR_NAMESPACE)
            .spec.holder_identity == identity,
            timeout=30, what="the standby holding the lease",
        )  # fmt: skip
        # Within the lease time: it expires, and the standby retries every third of it.
        assert time.monotonic() - killed <= LEASE_SECONDS * 4 / 3 + 2
        # The standby carries the ladder on: the service at its minimum, low suspended.
        eventually(
            lambda: _object(custom, "trainingjobs", "low", team)["status"]["phase"] == "Suspended"
            and _object(custom, "inferenceservices", "svc", team)["status"]["replicas"] == 1,
            timeout=120, what="the standby's actions",
        )  # fmt: skip
        time.sleep(3 * ACCOUNTING_STEP)  # a few more cycles: nothing may repeat
        assert len(_compression_jobs(custom, team)) == 1
        for name, reason in (("low", "ShiftToSpot"), ("low", "SuspendLowPriority"),
                             ("svc", "ScaleInferenceToMin"), ("svc", "Compress")):  # fmt: skip
            said = [r for r, _ in _reasons(core, team, name) if r == reason]
            assert len(said) == 1, (name, reason, _reasons(core, team, name))
    finally:
        if standby.pid is not None:
            processes.stop(standby.pid, timeout=10)  # SIGTERM: the lease is released
        if operator.pid is None:
            operator.start()


def test_a_directive_whose_events_a_dead_leader_never_recorded_gets_them_once(
    core: client.CoreV1Api, custom: client.CustomObjectsApi, tag: str
) -> None:
    # As a leader killed between its patch and its Events leaves it: a directive in force that
    # added ShiftToSpot, and no Event saying so. The leader now, which has not seen it, says it.
    team = _namespace(core, f"team-e-{tag}", tag)
    job = _training("orphan", tag, 1, "Low")
    reason = "ShiftToSpot: Budget gone at 85 % of 100 USD (test)"
    directive = {"policy": f"gone-{tag}", "actions": ["ShiftToSpot"], "added": ["ShiftToSpot"],
                 "capacity": {"type": "SpotWithFallback"}, "reasons": [reason],
                 "since": _rfc3339(datetime.now(UTC))}  # fmt: skip
    job["metadata"]["annotations"] = {ANNOTATION_GOVERNOR: json.dumps(directive)}
    custom.create_namespaced_custom_object(GROUP, VERSION, team, "trainingjobs", job)
    eventually(lambda: any(r == "ShiftToSpot" for r, _ in _reasons(core, team, "orphan")),
               timeout=60, what="the directive's ShiftToSpot Event")  # fmt: skip
    time.sleep(3 * ACCOUNTING_STEP)  # a few more cycles: said once
    events = list_items(client.EventsV1Api(core.api_client).list_namespaced_event, namespace=team)
    said = [e["note"] for e in events
            if e["regarding"]["name"] == "orphan" and e["reason"] == "ShiftToSpot"]  # fmt: skip
    assert said == [reason]
