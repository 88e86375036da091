"""Typed, read-only views of the Kubernetes objects Steward decides on.

Built from raw API JSON (what watches and list calls return) by pure functions, so decisions
take these instead of client models or dicts. Only the fields decisions read are kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from steward.api.constants import (
    ANNOTATION_ENDED,
    ANNOTATION_ENDED_AT,
    ANNOTATION_SPEC_HASH,
    LABEL_ATTEMPT,
    LABEL_CAPACITY_TYPE,
    LABEL_SHARE,
)

Raw = dict[str, Any]


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp from the API ("2026-11-22T10:00:00Z"), or None."""
    if not isinstance(value, str) or not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _meta(obj: Raw) -> Raw:
    meta: Raw = obj.get("metadata") or {}
    return meta


def _int_label(labels: dict[str, str], key: str) -> int:
    value = labels.get(key, "")
    return int(value) if value.isdigit() else 0


def _conditions(obj: Raw) -> dict[str, Raw]:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return {str(c.get("type")): c for c in conditions}


@dataclass(frozen=True)
class NodeRecord:
    name: str
    labels: dict[str, str]
    taints: tuple[Raw, ...]

    @classmethod
    def parse(cls, obj: Raw) -> NodeRecord:
        meta = _meta(obj)
        taints = tuple((obj.get("spec") or {}).get("taints") or ())
        return cls(name=meta["name"], labels=dict(meta.get("labels") or {}), taints=taints)


@dataclass(frozen=True)
class PodRecord:
    """A pod of a workload; ``unschedulable`` when the scheduler found no node for it."""

    name: str
    node_name: str | None
    phase: str
    ready: bool
    unschedulable: bool
    unschedulable_since: datetime | None
    disrupted: bool
    attempt: int
    capacity: str | None
    share: str | None
    created: datetime | None
    started: datetime | None
    deleting: bool

    @classmethod
    def parse(cls, obj: Raw) -> PodRecord:
        meta = _meta(obj)
        labels = dict(meta.get("labels") or {})
        status = obj.get("status") or {}
        conditions = _conditions(obj)
        scheduled = conditions.get("PodScheduled", {})
        unschedulable = (
            scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable"
        )
        return cls(
            name=meta["name"],
            node_name=(obj.get("spec") or {}).get("nodeName"),
            phase=status.get("phase", "Pending"),
            ready=conditions.get("Ready", {}).get("status") == "True",
            unschedulable=unschedulable,
            unschedulable_since=(
                parse_time(scheduled.get("lastTransitionTime")) if unschedulable else None
            ),
            disrupted=conditions.get("DisruptionTarget", {}).get("status") == "True",
            attempt=_int_label(labels, LABEL_ATTEMPT),
            capacity=labels.get(LABEL_CAPACITY_TYPE),
            share=labels.get(LABEL_SHARE),
            created=parse_time(meta.get("creationTimestamp")),
            started=parse_time(status.get("startTime")),
            deleting=meta.get("deletionTimestamp") is not None,
        )


@dataclass(frozen=True)
class JobRecord:
    """One attempt of a TrainingJob: a batch/v1 Job Steward created."""

    name: str
    attempt: int
    capacity: str | None
    created: datetime | None
    started: datetime | None
    suspended: bool
    complete: bool
    failed: bool
    failed_reason: str | None
    failed_message: str
    failed_at: datetime | None
    completed_at: datetime | None
    ended: str | None
    ended_at: datetime | None

    @classmethod
    def parse(cls, obj: Raw) -> JobRecord:
        meta = _meta(obj)
        labels = dict(meta.get("labels") or {})
        annotations = dict(meta.get("annotations") or {})
        conditions = _conditions(obj)
        failed = conditions.get("Failed", {})
        return cls(
            name=meta["name"],
            attempt=_int_label(labels, LABEL_ATTEMPT),
            capacity=labels.get(LABEL_CAPACITY_TYPE),
            created=parse_time(meta.get("creationTimestamp")),
            started=parse_time((obj.get("status") or {}).get("startTime")),
            suspended=bool((obj.get("spec") or {}).get("suspend")),
            complete=conditions.get("Complete", {}).get("status") == "True",
            failed=failed.get("status") == "True",
            failed_reason=failed.get("reason"),
            failed_message=str(failed.get("message", "")),
            failed_at=parse_time(failed.get("lastTransitionTime")),
            completed_at=parse_time(conditions.get("Complete", {}).get("lastTransitionTime")),
            ended=annotations.get(ANNOTATION_ENDED),
            ended_at=parse_time(annotations.get(ANNOTATION_ENDED_AT)),
        )


@dataclass(frozen=True)
class DeploymentRecord:
    name: str
    share: str | None
    replicas: int
    ready_replicas: int
    spec_hash: str | None

    @classmethod
    def parse(cls, obj: Raw) -> DeploymentRecord:
        meta = _meta(obj)
        status = obj.get("status") or {}
        return cls(
            name=meta["name"],
            share=(meta.get("labels") or {}).get(LABEL_SHARE),
            replicas=int((obj.get("spec") or {}).get("replicas", 0)),
            ready_replicas=int(status.get("readyReplicas", 0)),
            spec_hash=(meta.get("annotations") or {}).get(ANNOTATION_SPEC_HASH),
        )
