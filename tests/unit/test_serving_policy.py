"""InferenceService replica split and spot-loss compensation."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from steward.api.constants import variant_label_value
from steward.api.v1alpha1.inferenceservice import InferenceService, InferenceServiceStatus
from steward.policy.placement import PLATFORMS
from steward.policy.serving import (
    SPOT_PATIENCE,
    ServingObservation,
    decide_serving,
    split_replicas,
)
from steward.snapshot import NodeRecord, PodRecord

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
KARPENTER = PLATFORMS["karpenter"]
SPOT_NODE = NodeRecord("s1", {"karpenter.sh/capacity-type": "spot"}, ())
OD_NODE = NodeRecord("o1", {"karpenter.sh/capacity-type": "on-demand"}, ())


@given(desired=st.integers(0, 200), base=st.integers(0, 200), percent=st.floats(0, 100))
def test_the_split_keeps_the_base_on_demand_and_adds_up(
    desired: int, base: int, percent: float
) -> None:
    split = split_replicas(desired, base, percent)
    assert split.on_demand + split.spot == desired
    assert split.on_demand >= min(base, desired)
    assert split.spot <= (desired - min(base, desired)) * percent / 100


def _service() -> InferenceService:
    return InferenceService.model_validate(
        {
            "metadata": {"name": "chat", "namespace": "ml"},
            "spec": {
                "predictor": {
                    "model": {"modelFormat": {"name": "pytorch"}, "storageUri": "pvc://m/v1"},
                    "container": {"image": "server:1"},
                    "minReplicas": 5,
                    "maxReplicas": 5,
                },
                "capacity": {"onDemandBase": 1, "maxSpotPercent": 75},
            },
        }
    )


def _pod(n: int, node: str | None, **fields: Any) -> PodRecord:
    base = PodRecord(
        name=f"chat-spot-{n}", node_name=node, phase="Running" if node else "Pending",
        ready=node is not None, unschedulable=False, unschedulable_since=None, disrupted=False,
        attempt=0, capacity="spot", share="spot", created=NOW, started=NOW, deleting=False,
    )  # fmt: skip
    return replace(base, **fields)


def _decide(pods: list[PodRecord], nodes: list[NodeRecord]) -> Any:
    observation = ServingObservation(
        _service(), (), tuple(pods), {n.name: n for n in nodes}, NOW, KARPENTER
    )
    return decide_serving(observation)


def test_healthy_spot_replicas_stay_on_spot() -> None:
    plan = _decide([_pod(i, "s1") for i in range(3)], [SPOT_NODE, OD_NODE])
    assert (plan.on_demand, plan.spot, plan.base) == (2, 3, 1)
    assert plan.status.spot_replicas == 3


def test_replicas_on_a_vanished_spot_node_move_to_on_demand_at_once() -> None:
    plan = _decide([_pod(i, "s1") for i in range(3)], [OD_NODE])
    assert plan.on_demand == 5
    assert plan.status.ready_replicas == 0  # pods on a gone node do not count as serving
    assert plan.status.conditions[-1].reason == "Degraded"


@pytest.mark.parametrize(
    ("waited", "expected_on_demand"), [(timedelta(seconds=5), 2), (SPOT_PATIENCE, 5)]
)
def test_unschedulable_spot_replicas_get_patience_while_spot_nodes_exist(
    waited: timedelta, expected_on_demand: int
) -> None:
    pods = [_pod(i, None, unschedulable=True, unschedulable_since=NOW - waited) for i in range(3)]
    assert _decide(pods, [SPOT_NODE, OD_NODE]).on_demand == expected_on_demand


def test_without_any_spot_node_waiting_replicas_move_at_once() -> None:
    pods = [_pod(i, None) for i in range(3)]
    assert _decide(pods, [OD_NODE]).on_demand == 5


def test_a_promoted_variant_is_served() -> None:
    service = _service()
    plan = decide_serving(ServingObservation(service, (), (), {}, NOW, KARPENTER))
    assert plan.variant == "original"
    assert plan.storage_uri == "pvc://m/v1"
    service.status = plan.status.model_copy(deep=True)
    assert service.status.active_model is not None
    service.status.active_model.variant = "int8"
    service.status.active_model.storage_uri = "pvc://m/v1-int8"
    promoted = decide_serving(ServingObservation(service, (), (), {}, NOW, KARPENTER))
    assert (promoted.variant, promoted.storage_uri) == ("int8", "pvc://m/v1-int8")


PROMOTED_AT = NOW - timedelta(minutes=30)


def _promoted(p95_ms: float, requests: int = 500, window_start: datetime = PROMOTED_AT,
              slo_ms: float | None = 300, variant: str = "int8", total_ms: float | None = None,
              others: tuple[tuple[str, float], ...] = ()) -> InferenceService:  # fmt: skip
    """A service serving ``variant`` since PROMOTED_AT; in the newest window its pods measured
    ``p95_ms`` over ``requests`` (no row for it where ``p95_ms`` is NaN), the whole service
    ``total_ms`` (default the same), and ``others`` (label, p95) 50 requests each."""
    service = _service()
    service.spec.slo.latency_p95_ms = slo_ms
    rows = [{"variant": label, "p95Ms": ms, "requests": 50} for label, ms in others]
    if not math.isnan(p95_ms):
        rows.append({"variant": variant_label_value(variant), "p95Ms": p95_ms,
                     "requests": requests})  # fmt: skip
    total = p95_ms if total_ms is None else total_ms
    service.status = InferenceServiceStatus.model_validate({
        "activeModel": {"variant": variant, "storageUri": "pvc://m/v1-int8",
                        "compressionJob": "chat-compress", "since": PROMOTED_AT.isoformat()},
        "latency": {"p95Ms": total, "requests": requests + 50 * len(others),
                    "windowStart": window_start.isoformat(), "windowEnd": NOW.isoformat(),
                    "variants": rows},
    })  # fmt: skip
    return service


def _serve(service: InferenceService) -> Any:
    return decide_serving(ServingObservation(service, (), (), {}, NOW, KARPENTER))


def test_a_promoted_variant_breaking_the_latency_slo_is_rolled_back() -> None:
    plan = _serve(_promoted(412.5))
    assert (plan.variant, plan.storage_uri) == ("original", "pvc://m/v1")
    assert plan.status.active_model is not None
    assert (plan.status.active_model.variant, plan.status.active_model.since) == ("original", NOW)
    [note] = [n for n in plan.notes if n.reason == "RolledBack"]
    assert note.type == "Warning"
    assert "p95 latency 412.5 ms over 500 requests served by variant int8's pods" in note.message
    assert "above the SLO's 300 ms" in note.message
    [condition] = [c for c in plan.status.conditions if c.type == "RolledBack"]
    assert (condition.status, condition.reason) == ("True", "LatencySLOBreached")
    # Served from the original now: the same measurement rolls nothing back again.
    service = _promoted(412.5)
    service.status = plan.status
    again = _serve(service)
    assert again.variant == "original"
    assert not [n for n in again.notes if n.reason == "RolledBack"]


@pytest.mark.parametrize(
    ("service", "why"),
    [
        (_promoted(412.5, window_start=PROMOTED_AT - timedelta(seconds=1)), "window before"),
        (_promoted(412.5, requests=99), "too few requests"),
        (_promoted(300.0), "at the SLO"),
        (_promoted(412.5, slo_ms=None), "no SLO"),
        (_promoted(412.5, variant="original"), "the original"),
        (_promoted(math.nan, total_ms=412.5), "no figures for the variant's own pods"),
        (_promoted(120.0, total_ms=412.5, others=(("original", 900.0),)), "the original slow"),
    ],
)
def test_no_rollback_without_a_clear_breach_by_the_variant(
    service: InferenceService, why: str
) -> None:
    plan = _serve(service)
    assert not [n for n in plan.notes if n.reason == "RolledBack"], why
    assert plan.variant == service.status.active_model.variant, why  # type: ignore[union-attr]


def test_a_later_promotion_clears_the_rolled_back_condition() -> None:
    rolled = _serve(_promoted(412.5)).status
    service = _promoted(120.0)  # a new variant promoted, within its SLO
    service.status.conditions = rolled.conditions  # type: ignore[union-attr]
    plan = _serve(service)
    assert plan.variant == "int8"
    [condition] = [c for c in plan.status.conditions if c.type == "RolledBack"]
    assert (condition.status, condition.reason) == ("False", "Promoted")


def test_the_variant_is_judged_on_its_own_pods() -> None:
    # The rollout's last original pods were fast and pull the service's p95 under the SLO; the
    # variant's own pods are over it. A name that is no label value is found by its hash.
    for variant in ("int8", "int8 dynamic (torchao)"):
        service = _promoted(412.5, variant=variant, total_ms=250.0, others=(("original", 90.0),))
        plan = _serve(service)
        assert plan.variant == "original", variant
        [note] = [n for n in plan.notes if n.reason == "RolledBack"]
        assert f"served by variant {variant}'s pods" in note.message
