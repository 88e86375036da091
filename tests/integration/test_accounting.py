"""Accounting and Budgets on the real cluster with real Prometheus: dollars, kWh and kgCO2e per
job and per Budget match prices x time and the measured power curve; node cost splits exactly
into workloads and idle; the ladder moves and hands its actions to a DryRun policy; a paused
Prometheus makes budgets stale without enforcing anything, and they recover."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes import client

from steward.api.constants import GROUP, VERSION
from steward.cost.accounting import account
from steward.cost.catalog import parse_catalog
from steward.cost.power import curve_for
from steward.cost.usage import Grid
from steward.devcluster import cluster
from steward.devcluster.kube import list_items
from steward.devcluster.nodes import GPUNode, add_node, delete_node
from steward.observe.prometheus import Prometheus, PrometheusSettings, aligned_end
from steward.observe.queries import QueryConfig
from steward.observe.usage import build_usage
from steward.policy.placement import PLATFORMS
from tests.integration.conftest import (
    ACCOUNTING_STEP,
    GRAMS_CO2E_PER_KWH,
    ON_DEMAND_USD_PER_HOUR,
    PUE,
    SPOT_USD_PER_HOUR,
    TEST_CATALOG,
    Operator,
    eventually,
)

pytestmark = pytest.mark.usefixtures("operator")

GROUP_LABEL = "steward.ai/test"
UTILIZATION = 85.0
WATTS = curve_for("NVIDIA-H100-80GB-HBM3").watts(UTILIZATION)
TOLERANCE = 0.01


@pytest.fixture
def custom(core: client.CoreV1Api) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(core.api_client)


@pytest.fixture
def tag(core: client.CoreV1Api, custom: client.CustomObjectsApi) -> Iterator[str]:
    """A unique suffix; this test's nodes, namespaces and cluster objects go afterwards."""
    name = uuid.uuid4().hex[:6]
    yield name
    for node in core.list_node(label_selector=f"{GROUP_LABEL}={name}").items:
        delete_node(core, node.metadata.name)
    for plural in ("budgets", "costpolicies"):
        for obj in custom.list_cluster_custom_object(GROUP, VERSION, plural)["items"]:
            if obj["metadata"]["name"].endswith(name):
                custom.delete_cluster_custom_object(GROUP, VERSION, plural, obj["metadata"]["name"])
    for ns in core.list_namespace(label_selector=f"{GROUP_LABEL}={name}").items:
        core.delete_namespace(ns.metadata.name)


def _namespace(core: client.CoreV1Api, name: str, tag: str) -> str:
    core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels={GROUP_LABEL: tag}))
    )
    return name


def _job(name: str, tag: str, gpus: int, capacity: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": {
            "gpusPerWorker": gpus,
            "priority": "Low",
            "checkpoint": {"path": "/checkpoints/run", "interval": "1m"},
            "capacity": {"type": capacity},
            "template": {
                "metadata": {
                    "annotations": {
                        "steward.ai/run-time": "30m",
                        "steward.ai/gpu-profile": f"{UTILIZATION:g}",
                    }
                },
                "spec": {
                    "nodeSelector": {GROUP_LABEL: tag},
                    "containers": [{"name": "trainer", "image": "example/trainer:1"}],
                },
            },
        },
    }


def _budget(name: str, namespace: str, anchor: datetime, usd: float) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Budget",
        "metadata": {"name": name},
        "spec": {
            "scope": {"namespaces": [namespace]},
            "period": {"type": "Custom", "length": "1h", "anchor": _rfc3339(anchor)},
            "limits": {"usd": usd},
            "thresholds": [
                {"percent": 80, "actions": ["Notify", "ShiftToSpot"]},
                {"percent": 100, "actions": ["SuspendLowPriority", "BlockNewWork"]},
            ],
        },
    }


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _running(core: client.CoreV1Api, namespace: str) -> Any:
    pods = [p for p in core.list_namespaced_pod(namespace).items if p.status.phase == "Running"]
    return pods[0] if pods else None


def _object(custom: client.CustomObjectsApi, plural: str, name: str, namespace: str = "") -> Any:
    if namespace:
        return custom.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
    return custom.get_cluster_custom_object(GROUP, VERSION, plural, name)


def _status_after(
    custom: client.CustomObjectsApi, plural: str, name: str, after: datetime, namespace: str = ""
) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        status = _object(custom, plural, name, namespace).get("status") or {}
        until = status.get("accountedUntil")
        return status if until and _time(until) >= after else None

    return eventually(ready, timeout=90, what=f"{name} accounted past {after}")


def _close(actual: float, expected: float) -> bool:
    return abs(actual - expected) <= TOLERANCE * expected


def _events(core: client.CoreV1Api, name: str) -> list[tuple[str, str]]:
    events = list_items(client.EventsV1Api(core.api_client).list_event_for_all_namespaces)
    return [(e["reason"], e.get("note", "")) for e in events if e["regarding"]["name"] == name]


def test_job_and_budget_figures_match_prices_and_power_and_the_ladder_hands_on(
    core: client.CoreV1Api, custom: client.CustomObjectsApi, tag: str, dev_cluster: Any
) -> None:
    team_a = _namespace(core, f"team-a-{tag}", tag)
    team_b = _namespace(core, f"team-b-{tag}", tag)
    on_demand = f"od-{tag}"
    spot = f"spot-{tag}"
    add_node(core, GPUNode(on_demand, spot=False, labels={GROUP_LABEL: tag}))
    add_node(core, GPUNode(spot, spot=True, labels={GROUP_LABEL: tag}))
    custom.create_namespaced_custom_object(
        GROUP, VERSION, team_a, "trainingjobs", _job("train", tag, 2, "OnDemand")
    )
    custom.create_namespaced_custom_object(
        GROUP, VERSION, team_b, "trainingjobs", _job("train", tag, 4, "Spot")
    )
    pod_a = eventually(lambda: _running(core, team_a), what="team a's worker running")
    pod_b = eventually(lambda: _running(core, team_b), what="team b's worker running")
    assert (pod_a.spec.node_name, pod_b.spec.node_name) == (on_demand, spot)

    # Periods start once both workers run, so the whole period is steady and exactly priced.
    anchor = aligned_end(datetime.now(UTC), ACCOUNTING_STEP, -2 * ACCOUNTING_STEP)
    rate_a = 2 / 8 * ON_DEMAND_USD_PER_HOUR  # USD/h: 2 of 8 on-demand GPUs
    rate_b = 4 / 8 * SPOT_USD_PER_HOUR
    limit_a = rate_a * 60 / 3600  # used up one minute into the period
    policy = f"dryrun-{tag}"
    custom.create_cluster_custom_object(
        GROUP, VERSION, "costpolicies",
        {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "CostPolicy",
            "metadata": {"name": policy},
            "spec": {"mode": "DryRun", "selector": {"namespaces": [team_a]}},
        },
    )  # fmt: skip
    for name, namespace, usd in ((f"a-{tag}", team_a, limit_a), (f"b-{tag}", team_b, 1000.0)):
        custom.create_cluster_custom_object(
            GROUP, VERSION, "budgets", _budget(name, namespace, anchor, usd)
        )

    first = _status_after(custom, "budgets", f"b-{tag}", anchor + timedelta(seconds=15))
    job_first = _status_after(custom, "trainingjobs", "train", anchor, team_b)
    later = _status_after(
        custom, "budgets", f"b-{tag}", _time(first["accountedUntil"]) + timedelta(seconds=30)
    )
    job_later = _status_after(
        custom, "trainingjobs", "train", _time(job_first["accountedUntil"]) + timedelta(seconds=30),
        team_b,
    )  # fmt: skip

    # Per Budget: spend since the period began, and between two reads, equal price x time.
    # Steps with late scrapes (a loaded machine) are uncovered, reported, and not charged.
    seconds = (_time(later["accountedUntil"]) - anchor).total_seconds()
    seconds -= later.get("uncoveredSeconds", 0)
    assert later.get("uncoveredSeconds", 0) <= 2 * ACCOUNTING_STEP, later
    kwh = 4 * WATTS * seconds * PUE / 3.6e6
    assert _close(later["spent"]["usd"], rate_b * seconds / 3600), (later, seconds)
    assert _close(later["spent"]["kwh"], kwh), (later, kwh)
    assert _close(later["spent"]["kgCO2e"], kwh * GRAMS_CO2E_PER_KWH / 1000)
    assert _close(later["burnRatePerHour"]["usd"], rate_b)
    between = (_time(later["accountedUntil"]) - _time(first["accountedUntil"])).total_seconds()
    between -= later.get("uncoveredSeconds", 0) - first.get("uncoveredSeconds", 0)
    assert _close(later["spent"]["usd"] - first["spent"]["usd"], rate_b * between / 3600)
    assert later["state"] == "Ok"

    # Per job: the spot job's cost and energy grow at the spot price and the measured power,
    # over the seconds accounted (its 4 GPUs' hours; at most two late steps uncovered).
    elapsed = (
        _time(job_later["accountedUntil"]) - _time(job_first["accountedUntil"])
    ).total_seconds()
    between = (job_later["gpuHours"] - job_first["gpuHours"]) * 3600 / 4
    assert elapsed - 2 * ACCOUNTING_STEP - 1 <= between <= elapsed + 1, (job_first, job_later)
    spot_usd = job_later["cost"]["spotUSD"] - job_first["cost"]["spotUSD"]
    assert _close(spot_usd, rate_b * between / 3600), (job_first, job_later)
    assert job_later["cost"].get("onDemandUSD", 0) == 0
    energy = job_later["energyKWh"] - job_first["energyKWh"]
    assert _close(energy, 4 * WATTS * between * PUE / 3.6e6)
    assert _close(
        job_later["carbonKgCO2e"] - job_first["carbonKgCO2e"],
        energy * GRAMS_CO2E_PER_KWH / 1000,
    )

    _assert_ladder_handed_to_dry_run(core, custom, tag, policy, team_a, pod_a)

    _assert_node_pool_splits(
        dev_cluster, {team_a: (on_demand, rate_a, 2), team_b: (spot, rate_b, 4)}
    )


def _assert_ladder_handed_to_dry_run(
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    tag: str,
    policy: str,
    team_a: str,
    pod_a: Any,
) -> None:
    # Team a's budget climbs the ladder: Warning at 80 %, Exceeded at 100 %, Events for each.
    exceeded = eventually(
        lambda: (s := _object(custom, "budgets", f"a-{tag}").get("status") or {}).get("state")
        == "Exceeded" and s,
        timeout=120, what="team a's budget exceeded",
    )  # fmt: skip
    assert exceeded["activeActions"] == [
        "Notify", "ShiftToSpot", "SuspendLowPriority", "BlockNewWork"
    ]  # fmt: skip
    reasons = [reason for reason, _ in _events(core, f"a-{tag}")]
    assert reasons.count("ThresholdReached") == 2
    assert {"BudgetWarning", "BudgetExceeded"} <= set(reasons)
    # The DryRun policy records what it would do, and nothing is done.
    dry_runs = eventually(
        lambda: [note for reason, note in _events(core, policy) if reason == "BudgetActionDryRun"],
        what="DryRun hand-off recorded on the policy",
    )
    assert any("would apply ShiftToSpot to TrainingJob/" + team_a + "/train" in n for n in dry_runs)
    status_a = _object(custom, "trainingjobs", "train", team_a)["status"]
    assert (status_a["attempt"], status_a["capacityType"]) == (1, "OnDemand")
    assert _running(core, team_a).metadata.name == pod_a.metadata.name


def _assert_node_pool_splits(dev_cluster: Any, teams: dict[str, tuple[str, float, int]]) -> None:
    """Each node's cost is its price x time and splits exactly into workloads and idle; idle is
    the GPUs nobody requested. ``teams``: namespace -> (its node, its USD/h, its GPUs)."""
    ledger = _ledger_of_last_minute(dev_cluster)
    for node, rate, used in teams.values():
        total = ledger.nodes[node]
        covered = float(total.gpu_seconds / 8)
        assert covered > 0
        assert _close(float(total.usd), rate * 8 / used * covered / 3600)
        assert _close(float(ledger.idle[node].usd), float(total.usd) * (8 - used) / 8)
        assert float(ledger.idle[node].kwh) > 0  # idle GPUs draw power too
    assert _close(
        sum(float(a.usd) for a in ledger.pods.values())
        + sum(float(a.usd) for a in ledger.idle.values()),
        sum(float(a.usd) for a in ledger.nodes.values()),
    )
    # Each team's pod pays its GPU share for the seconds its node was accounted (a step whose
    # scrapes were late is uncovered for everyone, so never assume the full minute).
    for team, (node, rate, _) in teams.items():
        paid = sum(float(a.usd) for (ns, _), a in ledger.pods.items() if ns == team)
        covered = float(ledger.nodes[node].gpu_seconds / 8)
        assert _close(paid, rate * covered / 3600), (team, paid, covered)


def _ledger_of_last_minute(state: cluster.ClusterState) -> Any:
    """The same accounting the operator runs, over the newest minute, read here."""
    prometheus = Prometheus(PrometheusSettings(url=state.prometheus_url), QueryConfig())
    end = aligned_end(datetime.now(UTC), ACCOUNTING_STEP, 10)
    grid = Grid(end - timedelta(seconds=60), ACCOUNTING_STEP, 60 // ACCOUNTING_STEP)
    usage = build_usage(
        prometheus.window(grid),
        grid,
        capacity_labels=PLATFORMS["karpenter"],
        required_jobs=QueryConfig().required_jobs,
        max_sample_age_seconds=12,
    )
    assert prometheus.queries_issued == len(prometheus.query_names)
    return account(usage, parse_catalog(TEST_CATALOG, "test"))


def test_paused_prometheus_makes_budgets_stale_without_enforcing_and_they_recover(
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    tag: str,
    dev_cluster: Any,
    operator: Operator,
) -> None:
    team = _namespace(core, f"team-s-{tag}", tag)
    add_node(core, GPUNode(f"od-{tag}", spot=False, labels={GROUP_LABEL: tag}))
    custom.create_namespaced_custom_object(
        GROUP, VERSION, team, "trainingjobs", _job("train", tag, 8, "OnDemand")
    )
    eventually(lambda: _running(core, team), what="the worker running")
    anchor = aligned_end(datetime.now(UTC), ACCOUNTING_STEP, 0)
    name = f"s-{tag}"
    # Exhausted within ~20 s of spend: were missing data read as spend, it would escalate.
    custom.create_cluster_custom_object(
        GROUP, VERSION, "budgets", _budget(name, team, anchor, 80.0 * 60 / 3600)
    )
    _status_after(custom, "budgets", name, anchor + timedelta(seconds=5))

    pid = dev_cluster.pids["prometheus"]
    os.kill(pid, signal.SIGSTOP)
    try:
        stale = eventually(
            lambda: _stale(custom, name), timeout=60, what="the budget marked DataStale"
        )
        time.sleep(10)
        held = _object(custom, "budgets", name)["status"]
        assert held["spent"] == stale["spent"]
        assert held["state"] == stale["state"]
        assert held["accountedUntil"] == stale["accountedUntil"]
    finally:
        os.kill(pid, signal.SIGCONT)
    resumed = datetime.now(UTC)
    fresh = eventually(
        lambda: (s := _object(custom, "budgets", name)["status"])
        and _condition(s, "DataStale") == "False"
        and _time(s["accountedUntil"]) >= resumed + timedelta(seconds=ACCOUNTING_STEP) and s,
        timeout=90, what="the budget fresh again, past the pause",
    )  # fmt: skip
    # The paused minutes had no fresh data: not counted as spend, said as uncovered.
    assert fresh["uncoveredSeconds"] >= 5
    reasons = [reason for reason, _ in _events(core, name)]
    assert "DataStale" in reasons
    assert "DataFresh" in reasons


def _condition(status: dict[str, Any], type_: str) -> str | None:
    found = [c for c in status.get("conditions", []) if c["type"] == type_]
    return found[0]["status"] if found else None


def _stale(custom: client.CustomObjectsApi, name: str) -> dict[str, Any] | None:
    status = _object(custom, "budgets", name).get("status") or {}
    return status if _condition(status, "DataStale") == "True" else None
