"""The cluster index: newest version wins, deletions stick, children are found by workload."""

from __future__ import annotations

from typing import Any

from steward.observe.index import ClusterIndex


def _pod(name: str, version: int, workload: str = "ft") -> dict[str, Any]:
    return {
        "metadata": {
            "name": name, "namespace": "ml", "resourceVersion": str(version),
            "labels": {"steward.ai/workload": workload},
        }
    }  # fmt: skip


def test_an_older_version_never_replaces_a_newer_one() -> None:
    index = ClusterIndex()
    assert index.put("Pod", _pod("a", 5))
    assert not index.put("Pod", _pod("a", 3))
    assert index.get("Pod", "ml", "a") == _pod("a", 5)


def test_a_deleted_object_is_not_revived_by_a_late_event() -> None:
    index = ClusterIndex()
    index.put("Pod", _pod("a", 5))
    index.remove("Pod", _pod("a", 6))
    assert not index.put("Pod", _pod("a", 5))
    assert index.get("Pod", "ml", "a") is None
    assert index.put("Pod", _pod("a", 9))  # recreated later under the same name


def test_children_follow_relabelling_and_deletion() -> None:
    index = ClusterIndex()
    index.put("Pod", _pod("a", 1))
    index.put("Pod", _pod("b", 1))
    index.put("Pod", _pod("b", 2, workload="other"))
    assert [p["metadata"]["name"] for p in index.children("Pod", "ml", "ft")] == ["a"]
    index.remove("Pod", _pod("a", 3))
    assert index.children("Pod", "ml", "ft") == []
    assert index.count("Pod") == 1
