"""Capacity placement is added to the user's scheduling constraints, never replacing them."""

from __future__ import annotations

from steward.api.v1alpha1.common import CapacityType
from steward.policy.placement import PLATFORMS, SPOT_TOLERATIONS, is_disrupting, node_matches, place
from steward.snapshot import NodeRecord


def test_spot_placement_requires_the_label_and_tolerates_spot_taints() -> None:
    user = {"containers": [{"name": "c"}], "tolerations": [{"key": "team", "operator": "Exists"}]}
    placed = place(user, CapacityType.SPOT, PLATFORMS["karpenter"])
    [term] = placed["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert term["matchExpressions"] == [
        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]}
    ]
    assert placed["tolerations"][0] == {"key": "team", "operator": "Exists"}
    assert all(t in placed["tolerations"] for t in SPOT_TOLERATIONS)
    assert "affinity" not in user  # the input is not modified


def test_every_user_term_gets_the_requirement() -> None:
    user = {
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]},
                        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]},
                    ]
                }
            }
        }
    }
    placed = place(user, CapacityType.ON_DEMAND, PLATFORMS["gke"])
    terms = placed["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    gke_on_demand = {"key": "cloud.google.com/gke-spot", "operator": "DoesNotExist"}
    assert [t["matchExpressions"][-1] for t in terms] == [gke_on_demand, gke_on_demand]
    assert "tolerations" not in placed  # on-demand work does not tolerate spot taints


def test_node_matching_and_disruption_taints() -> None:
    node = NodeRecord("n", {"karpenter.sh/capacity-type": "spot"}, ())
    spot = [{"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]}]
    assert node_matches(node, spot)
    assert not node_matches(
        node, [{"key": "karpenter.sh/capacity-type", "operator": "DoesNotExist"}]
    )
    assert is_disrupting([{"key": "karpenter.sh/disrupted", "effect": "NoSchedule"}])
    assert is_disrupting([{"key": "gpu", "effect": "NoSchedule"}]) is None
